//! Fuzz target `server_msg`: `milepost_proto::decode::<ServerMsg>` over arbitrary bytes.
//!
//! Decoding must never panic, and whatever decodes must re-encode (the encoder accepts every
//! value the decoder produces) into bytes that decode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use milepost_proto::{decode, encode, ServerMsg};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode::<ServerMsg>(data) {
        let bytes = encode(&msg).expect("a decoded message re-encodes");
        assert!(
            bytes.len() <= data.len(),
            "the shortest form is never longer"
        );
        decode::<ServerMsg>(&bytes).expect("a re-encoded message decodes");
    }
});
