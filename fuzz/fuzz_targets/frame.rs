//! Fuzz target `frame`: `milepost_proto::frame::parse` over arbitrary bytes with a small limit.
//!
//! The first two input bytes choose the limit (0..=1023), the rest is a stream buffer. The
//! buffer is cut into frames exactly as a receiver does; every invariant of `parse` is checked
//! and every payload is decoded as a `ClientMsg` (must not panic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use milepost_proto::frame::{parse, FrameError};
use milepost_proto::{decode, ClientMsg, FRAME_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max = usize::from(u16::from_le_bytes([data[0], data[1]]) % 1024);
    let mut buf = &data[2..];
    loop {
        match parse(buf, max) {
            Ok(Some((payload, used))) => {
                assert_eq!(used, FRAME_HEADER_LEN + payload.len());
                assert!(used <= buf.len());
                assert!(payload.len() <= max);
                assert_eq!(payload, &buf[FRAME_HEADER_LEN..used]);
                let _ = decode::<ClientMsg>(payload);
                buf = &buf[used..];
            }
            Ok(None) => {
                // Incomplete: either no header yet, or a header announcing more than is left.
                if buf.len() >= FRAME_HEADER_LEN {
                    let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                    assert!(len <= max && FRAME_HEADER_LEN + len > buf.len());
                }
                break;
            }
            Err(FrameError::TooLarge { len, max: m }) => {
                assert_eq!(m, max);
                assert!(len > max);
                break;
            }
        }
    }
});
