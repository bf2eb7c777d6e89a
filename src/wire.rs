//! Frames over quinn streams: the async glue between [`milepost_proto`]'s pure framing and
//! codec and a QUIC stream, shared by the server and the client.

use milepost_proto::frame::{payload_len, FRAME_HEADER_LEN};
use milepost_proto::{ErrorCode, FrameError};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The frame's length exceeds the limit.
    #[error(transparent)]
    TooLarge(#[from] FrameError),
    /// The payload is not a valid message.
    #[error(transparent)]
    Malformed(#[from] milepost_proto::CodecError),
    /// The stream or connection failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// The stream or connection failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
}

impl WireError {
    /// The protocol error code to close the connection with.
    pub fn code(&self) -> ErrorCode {
        match self {
            WireError::TooLarge(_) => ErrorCode::FrameTooLarge,
            _ => ErrorCode::ProtocolViolation,
        }
    }
}

/// Reads one message. `Ok(None)` when the peer finished the stream at a frame boundary.
///
/// # Cancel safety
/// Not cancel safe: a cancelled read may leave half a frame consumed.
pub async fn read_msg<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<Option<T>, WireError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let mut got = 0;
    while got < FRAME_HEADER_LEN {
        match recv.read(&mut header[got..]).await? {
            Some(n) => got += n,
            None if got == 0 => return Ok(None),
            None => return Err(WireError::Truncated),
        }
    }
    let len = payload_len(header, max)?;
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => WireError::Truncated,
        quinn::ReadExactError::ReadError(e) => WireError::Read(e),
    })?;
    Ok(Some(milepost_proto::decode(&payload)?))
}

/// Writes one message as a frame.
pub async fn write_msg<T: Serialize>(
    send: &mut quinn::SendStream,
    msg: &T,
) -> Result<(), WireError> {
    let mut buf = Vec::with_capacity(64);
    milepost_proto::encode_into(msg, &mut buf)?;
    send.write_all(&buf).await?;
    Ok(())
}

/// The protocol error code a closed connection carried, if the peer closed it with one.
pub fn close_code(err: &quinn::ConnectionError) -> Option<ErrorCode> {
    match err {
        quinn::ConnectionError::ApplicationClosed(c) => u32::try_from(c.error_code.into_inner())
            .ok()
            .and_then(ErrorCode::from_u32),
        _ => None,
    }
}
