//! Fuzz target `roundtrip`: decode, re-encode, decode again must give an equal value.
//!
//! The first input byte picks the type (every wire message type and the route types of
//! PROTOCOL.md section 9), the rest is the encoding. Equality is checked on the values
//! (`PartialEq`) when the value equals itself (it holds no NaN), and always on the bytes: the
//! re-encoding of the second decode must equal the first re-encoding (NaN payloads are kept, so
//! this also holds with NaNs).
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use milepost_proto::route::{Outcome, ParcelStatus, Route, Update};
use milepost_proto::{decode, encode, ClientDatagram, ClientMsg, Fix, ServerMsg};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let Ok(v1) = decode::<T>(data) else { return };
    let b1 = encode(&v1).expect("a decoded value re-encodes");
    let v2 = decode::<T>(&b1).expect("a re-encoded value decodes");
    #[allow(clippy::eq_op)]
    if v1 == v1 {
        assert_eq!(v1, v2);
    }
    let b2 = encode(&v2).expect("re-encodes");
    assert_eq!(b1, b2, "encoding is not stable");
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 8 {
        0 => check::<ClientMsg>(rest),
        1 => check::<ServerMsg>(rest),
        2 => check::<ClientDatagram>(rest),
        3 => check::<Fix>(rest),
        4 => check::<Route>(rest),
        5 => check::<Update>(rest),
        6 => check::<Outcome>(rest),
        _ => check::<ParcelStatus>(rest),
    }
});
