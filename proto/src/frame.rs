//! Framing: every message on a QUIC stream is `u32` little-endian payload length, then the
//! payload. The parser is pure (mini-redis style): it returns `Ok(None)` when the buffer holds
//! no whole frame yet, and refuses an over-long length before anything is allocated.

/// Bytes in a frame header.
pub const FRAME_HEADER_LEN: usize = 4;

/// A framing failure.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The announced payload length exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

/// Reads the payload length from a frame header and checks it against `max`.
pub fn payload_len(header: [u8; FRAME_HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Finds the first whole frame in `buf`. Returns the payload and the number of bytes the frame
/// used, or `Ok(None)` if more bytes are needed.
pub fn parse(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(header) = buf.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    let mut h = [0u8; FRAME_HEADER_LEN];
    h.copy_from_slice(header);
    let len = payload_len(h, max)?;
    let end = FRAME_HEADER_LEN + len;
    match buf.get(FRAME_HEADER_LEN..end) {
        Some(payload) => Ok(Some((payload, end))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_then_complete() {
        assert_eq!(parse(&[3, 0], 10), Ok(None));
        assert_eq!(parse(&[3, 0, 0, 0, 1, 2], 10), Ok(None));
        assert_eq!(
            parse(&[3, 0, 0, 0, 1, 2, 3, 9], 10),
            Ok(Some((&[1u8, 2, 3][..], 7)))
        );
    }

    #[test]
    fn too_large_is_refused_from_the_header() {
        assert_eq!(
            parse(&[0xff, 0xff, 0xff, 0xff], 1024),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 1024
            })
        );
    }
}
