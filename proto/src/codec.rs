//! The codec: the only module in the project that names the encoder crate.
//!
//! The wire format is bincode 2's *standard* configuration (little-endian, variable-length
//! integers, see `PROTOCOL.md`) driven through serde. bincode is pinned at `=2.0.1`, its last
//! working release: the crate is unmaintained, so should it ever have to go, this module is
//! replaced by a hand-written encoder of the same bytes and nothing else changes. The test
//! vectors in `tests/vectors.rs` pin those bytes.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::frame::FRAME_HEADER_LEN;
use crate::MAX_FRAME_HARD;

/// The configuration: standard (varint, little-endian) with an allocation limit, so that a
/// hostile length inside a message (a `Vec` or string length) cannot make the decoder allocate
/// more than one maximal frame.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_HARD>()
}

/// An encoding or decoding failure.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a valid encoding of the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The bytes decode to a message but some bytes are left over.
    #[error("{0} trailing bytes after message")]
    TrailingBytes(usize),
    /// The message could not be encoded (larger than the hard limit).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Encodes a message to its bytes (no frame header).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(msg, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Appends a whole frame (length header + message) to `buf`.
pub fn encode_into<T: Serialize>(msg: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    if let Err(e) = bincode::serde::encode_into_std_write(msg, buf, config()) {
        buf.truncate(start);
        return Err(CodecError::Encode(e.to_string()));
    }
    let len = buf.len() - start - FRAME_HEADER_LEN;
    if len > MAX_FRAME_HARD {
        buf.truncate(start);
        return Err(CodecError::Encode(format!(
            "{len} bytes exceeds the hard frame limit"
        )));
    }
    buf[start..start + FRAME_HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Decodes exactly one message from `bytes` (no frame header). Trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (msg, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(msg)
}

/// Decodes exactly one value from trusted local bytes (a CRC-checked snapshot file) with no
/// allocation limit: a snapshot of a large fleet is far bigger than any frame. Never use it on
/// network input.
pub fn decode_trusted<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (msg, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientMsg, FixBatch, Seq};

    #[test]
    fn hostile_vec_length_does_not_allocate() {
        // FixBatch variant (1), first_seq 1, then a Vec length of u64::MAX (marker 253).
        let mut bytes = vec![1u8, 1, 253];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<ClientMsg>(&bytes).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&ClientMsg::FixBatch(FixBatch {
            first_seq: Seq(1),
            fixes: vec![],
        }))
        .unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<ClientMsg>(&bytes),
            Err(CodecError::TrailingBytes(1))
        ));
    }
}
