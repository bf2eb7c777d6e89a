//! Fuzz target `datagram`: `milepost_proto::decode::<ClientDatagram>` over arbitrary bytes.
//!
//! Decoding must never panic, and whatever decodes must re-encode (the encoder accepts every
//! value the decoder produces) into bytes that decode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use milepost_proto::{decode, encode, ClientDatagram};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode::<ClientDatagram>(data) {
        let bytes = encode(&msg).expect("a decoded message re-encodes");
        assert!(
            bytes.len() <= data.len(),
            "the shortest form is never longer"
        );
        decode::<ClientDatagram>(&bytes).expect("a re-encoded message decodes");
    }
});
