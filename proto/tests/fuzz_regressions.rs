//! Regression seeds for the decoder and the framer, from fuzzing (`fuzz/`, see fuzz/README.md).
//!
//! Every input a fuzz target ever crashed on is added here as a hex string with the expected
//! outcome. The seeds below also pin the trickiest hostile inputs by hand (a huge `Vec` or
//! `String` length, truncated and over-wide varints, unknown enum indexes, bad `bool` and
//! `Option` tags, invalid UTF-8, trailing bytes): decoding must return `Err`, never panic, and
//! never try to allocate what a hostile length announces.

use milepost_proto::frame::{parse, FrameError};
use milepost_proto::route::{Outcome, Route, Update};
use milepost_proto::{
    decode, encode, ClientDatagram, ClientMsg, Fix, Seq, ServerMsg, MAX_FRAME_HARD,
};
use serde::de::DeserializeOwned;

/// Fix A of PROTOCOL.md section 10.1 (29 bytes).
const FIX_A: &str =
    "fd 00 a4 59 8a 1f 03 00 00 fc 20 11 99 3f fc ef 7d 76 07 00 00 00 41 00 00 00 00 00 00";

/// Bytes from a hex string with optional spaces.
fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len() % 2 == 0, "odd hex: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Asserts that `hex` does not decode as a `T` (and does not panic).
fn rejects<T: DeserializeOwned + std::fmt::Debug>(what: &str, h: &str) {
    let r = decode::<T>(&hex(h));
    assert!(
        r.is_err(),
        "{what}: {h} decoded as {} = {r:?}",
        std::any::type_name::<T>()
    );
}

#[test]
fn empty_input_is_an_error_for_every_type() {
    rejects::<ClientMsg>("empty", "");
    rejects::<ServerMsg>("empty", "");
    rejects::<ClientDatagram>("empty", "");
    rejects::<Fix>("empty", "");
    rejects::<Route>("empty", "");
    rejects::<Update>("empty", "");
    rejects::<Outcome>("empty", "");
}

#[test]
fn hostile_vec_lengths_are_refused_without_allocating() {
    // FixBatch, first_seq 1, fix count u64::MAX.
    rejects::<ClientMsg>("count u64::MAX", "01 01 fd ff ff ff ff ff ff ff ff");
    // Count 2^32 - 1, then one fix.
    rejects::<ClientMsg>("count u32::MAX", &format!("01 01 fc ff ff ff ff {FIX_A}"));
    // Count just over the 1 MiB allocation limit.
    rejects::<ClientMsg>("count 1 MiB + 1", "01 01 fc 01 00 10 00");
    // Count 2, one fix present.
    rejects::<ClientMsg>("count 2, 1 fix", &format!("01 01 02 {FIX_A}"));
    // Ack with a u64::MAX rejection count.
    rejects::<ServerMsg>(
        "rejections u64::MAX",
        "01 01 01 00 fd ff ff ff ff ff ff ff ff",
    );
    // QueryResult with 2^32 - 1 drivers.
    rejects::<ServerMsg>("drivers u32::MAX", "03 01 fc ff ff ff ff");
    // Route with u64::MAX stops.
    rejects::<Route>(
        "stops u64::MAX",
        "01 52 01 44 01 64 00 00 fd ff ff ff ff ff ff ff ff",
    );
}

#[test]
fn hostile_string_lengths_are_refused() {
    // Hello, version 1, token length u64::MAX.
    rejects::<ClientMsg>("token len u64::MAX", "00 01 fd ff ff ff ff ff ff ff ff");
    // Token length 36 with 3 bytes present.
    rejects::<ClientMsg>("token truncated", "00 01 24 6d 70 31");
    // Error frame whose message is 2^31 bytes long.
    rejects::<ServerMsg>("message 2 GiB", "02 09 fc 00 00 00 80 41 42");
}

#[test]
fn truncated_varints_are_errors() {
    rejects::<ClientMsg>("first_seq FB, 1 byte", "01 fb e8");
    rejects::<ClientMsg>("first_seq FC, 2 bytes", "01 fc 00 00");
    rejects::<ClientMsg>("first_seq FD, 7 bytes", "01 fd 00 00 00 00 00 00 01");
    rejects::<ClientDatagram>("seq marker only", "00 fd");
    // Fix A cut inside t_ms, inside lon_e7, and before `mock`.
    let a = hex(FIX_A);
    for cut in [1, 5, 9, 12, 17, 22, 28] {
        assert!(decode::<Fix>(&a[..cut]).is_err(), "fix A cut at {cut}");
    }
    assert!(decode::<Fix>(&a).is_ok());
}

#[test]
fn reserved_and_over_wide_varint_markers_are_errors() {
    // FE (128-bit) and FF (reserved) as a Seq.
    rejects::<ClientDatagram>("seq FE", &format!("00 fe {} {FIX_A}", "00 ".repeat(16)));
    rejects::<ClientDatagram>("seq FF", &format!("00 ff {FIX_A}"));
    // FC where a u16 is expected (Hello.version).
    rejects::<ClientMsg>("u16 with FC", "00 fc 01 00 00 00 00 00 00 00 00 00");
    // FD where a u32 is expected (Ack.count).
    rejects::<ServerMsg>("u32 with FD", "01 01 fd 01 00 00 00 00 00 00 00 00 00 01");
    // FD where an i32 is expected (Fix.lat_e7).
    rejects::<Fix>(
        "i32 with FD",
        "00 fd 00 00 00 00 00 00 00 00 00 00 00 00 41 00 00 00 00 00 00",
    );
    // An enum index with an FD marker (indexes are u32).
    rejects::<ClientMsg>("enum index FD", "fd 00 00 00 00 00 00 00 00");
}

#[test]
fn non_shortest_varints_are_accepted_as_documented() {
    // PROTOCOL.md 3.1: "the reference decoder also accepts a longer form of a small value".
    let mut bytes = hex("00 fb 05 00");
    bytes.extend(hex(FIX_A));
    match decode::<ClientDatagram>(&bytes).unwrap() {
        ClientDatagram::LiveFix { seq, .. } => assert_eq!(seq, Seq(5)),
    }
}

#[test]
fn unknown_enum_indexes_are_errors() {
    // Indexes far above any variant (enums only grow by appending, PROTOCOL.md 11), so these
    // seeds stay unknown when variants are added.
    rejects::<ClientMsg>("ClientMsg 200", "c8");
    rejects::<ClientMsg>("ClientMsg 256", "fb 00 01");
    rejects::<ClientMsg>("ClientMsg u32::MAX", "fc ff ff ff ff");
    rejects::<ServerMsg>("ServerMsg 200", "c8");
    rejects::<ClientDatagram>("ClientDatagram 200", &format!("c8 01 {FIX_A}"));
    // QueryKind 200.
    rejects::<ClientMsg>("QueryKind 200", "02 01 c8 00 00 05");
    // Activity 200 in a fix: Fix A with `activity` Some(200).
    let mut f = hex(FIX_A);
    let n = f.len();
    f[n - 2] = 1;
    f.insert(n - 1, 200);
    assert!(decode::<Fix>(&f).is_err(), "activity 200");
    f[n - 1] = 5;
    assert!(decode::<Fix>(&f).is_ok(), "activity 5 (InVehicle)");
    // RejectReason 200 in an Ack.
    rejects::<ServerMsg>("RejectReason 200", "01 01 01 00 01 01 c8 01");
    // ErrorCode 200 in an Error frame: strict decoders refuse unknown codes (PROTOCOL.md 5.2 vs 11).
    rejects::<ServerMsg>("ErrorCode 200", "02 c8 00");
    // Outcome 200, FailureReason 200.
    rejects::<Outcome>("Outcome 200", "c8");
    rejects::<Outcome>("FailureReason 200", "01 c8 00");
}

#[test]
fn bad_bool_and_option_tags_are_errors() {
    // Fix A with `mock` = 02.
    let mut f = hex(FIX_A);
    *f.last_mut().unwrap() = 2;
    assert!(decode::<Fix>(&f).is_err(), "bool 02");
    // Fix A with the `speed_mps` tag = 02.
    let mut f = hex(FIX_A);
    f[23] = 2;
    assert!(decode::<Fix>(&f).is_err(), "option tag 02");
    // QueryResult `truncated` = ff.
    rejects::<ServerMsg>("truncated ff", "03 01 00 ff");
}

#[test]
fn invalid_utf8_is_an_error() {
    // Hello whose token is the bytes ff fe.
    rejects::<ClientMsg>("token ff fe", "00 01 02 ff fe 00 00 00 00");
    // Error message with a lone continuation byte.
    rejects::<ServerMsg>("message 80", "02 01 01 80");
    // A truncated 2-byte sequence.
    rejects::<ServerMsg>("message c3", "02 01 01 c3");
}

#[test]
fn trailing_bytes_are_errors() {
    rejects::<ServerMsg>("Ack + 1 byte", "01 fb e8 03 02 00 00 fb e9 03 00");
    rejects::<ClientDatagram>("LiveFix + 1 byte", &format!("00 01 {FIX_A} 00"));
    assert!(decode::<ServerMsg>(&hex("01 fb e8 03 02 00 00 fb e9 03")).is_ok());
}

#[test]
fn nan_payloads_survive_a_roundtrip() {
    // Fix A with accuracy = a signalling NaN with a payload (7f a0 00 01): kept bit for bit.
    let mut f = hex(FIX_A);
    f[19..23].copy_from_slice(&[0x01, 0x00, 0xa0, 0x7f]);
    let fix: Fix = decode(&f).unwrap();
    assert!(fix.accuracy_m.is_nan());
    assert_eq!(encode(&fix).unwrap(), f);
}

#[test]
fn frame_parser_edge_cases() {
    // Fewer than 4 header bytes: need more.
    assert_eq!(parse(&[0xff, 0xff, 0xff], 16), Ok(None));
    // u32::MAX length: refused from the header alone.
    assert_eq!(
        parse(&[0xff, 0xff, 0xff, 0xff], MAX_FRAME_HARD),
        Err(FrameError::TooLarge {
            len: u32::MAX as usize,
            max: MAX_FRAME_HARD
        })
    );
    // Limit 0: a zero-length frame is well formed, and decodes to no message.
    let (payload, used) = parse(&[0, 0, 0, 0, 9], 0).unwrap().unwrap();
    assert_eq!((payload, used), (&[][..], 4));
    assert!(decode::<ClientMsg>(payload).is_err());
    // One byte over the limit.
    assert_eq!(
        parse(&[5, 0, 0, 0], 4),
        Err(FrameError::TooLarge { len: 5, max: 4 })
    );
    // Exactly the limit, payload incomplete: need more.
    assert_eq!(parse(&[4, 0, 0, 0, 1, 2, 3], 4), Ok(None));
}

#[test]
fn commands_subscriptions_and_feed_frames_refuse_hostile_inputs() {
    // ClientMsg::Command (3) / CommandKind index 200.
    rejects::<ClientMsg>("CommandKind 200", "03 01 c8 02 54 31");
    // ClientMsg::Subscribe (4) / FeedTarget index 200.
    rejects::<ClientMsg>("FeedTarget 200", "04 c8 00");
    // Subscribe Depot with `after` option tag 02.
    rejects::<ClientMsg>("after tag 02", "04 01 02 2a");
    // Subscribe Depot with `after` FE marker (u64 fields never take 128-bit values).
    rejects::<ClientMsg>("after FE", &format!("04 01 01 fe {}", "00 ".repeat(16)));
    // Command id with an FD marker (ids are u32).
    rejects::<ClientMsg>("command id FD", "03 fd 01 00 00 00 00 00 00 00 04 02 54 31");
    // Resequence whose order claims 2^32 - 1 stop ids.
    rejects::<ClientMsg>("order u32::MAX", "03 01 01 01 52 fc ff ff ff ff");
    // ReportOutcome whose Outcome index is 200.
    rejects::<ClientMsg>("Outcome 200", "03 01 02 02 53 31 00 c8");
    // SetInstructions whose text is invalid UTF-8.
    rejects::<ClientMsg>("instructions ff", "03 01 03 02 54 31 01 ff");
    // ServerMsg index 11 (one past FeedResync) and 200.
    rejects::<ServerMsg>("ServerMsg 11", "0b 00 00 00");
    // Done with nothing after the index; FeedResync with a trailing byte.
    rejects::<ServerMsg>("Done truncated", "04");
    rejects::<ServerMsg>("FeedResync + 1 byte", "0a 00");
    assert_eq!(
        decode::<ServerMsg>(&hex("0a")).unwrap(),
        ServerMsg::FeedResync
    );
    // FeedEvent whose Update index is 200; Push whose DriverEvent index is 200.
    rejects::<ServerMsg>("Update 200", "08 01 c8");
    rejects::<ServerMsg>("DriverEvent 200", "06 01 64 01 52 c8");
    // ParcelStatus whose ParcelState index is 200.
    rejects::<ServerMsg>(
        "ParcelState 200",
        "05 01 01 54 01 52 01 53 c8 00 00 00 00 00 00",
    );
    // FeedSnapshot whose positions count runs past the end.
    rejects::<ServerMsg>("positions 5, none present", "07 00 00 05");
}
