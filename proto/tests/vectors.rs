//! The hex test vectors and encoding examples of `PROTOCOL.md`, checked against the codec.
//!
//! The vectors are parsed out of `PROTOCOL.md` itself, so the document cannot drift from the
//! bytes the codec produces:
//!
//! - every fenced block opened with ```` ```hex name=NAME type=TYPE ```` is a vector; its body is
//!   the hex bytes (whitespace ignored). The test encodes the value named `NAME` below and
//!   compares with the hex, then decodes the hex and compares with the value. Every value below
//!   must appear in the document and every vector in the document must have a value below.
//! - every row of the table between `<!-- encoding-examples:begin -->` and
//!   `<!-- encoding-examples:end -->` (`| type | value | hex | ...`) is an example of one
//!   encoding rule, checked the same way.
//!
//! To add a vector: add it to [`vectors`], run
//! `cargo test -p milepost-proto --test vectors -- --ignored --nocapture print_vectors` and paste
//! the printed block into `PROTOCOL.md`.

use std::collections::BTreeMap;
use std::fmt::Debug;

use milepost_proto::frame;
use milepost_proto::route::{
    DeliveryChange, DriverEvent, DriverUpdate, FailureReason, MessageFrom, Outcome, Parcel,
    ParcelEvent, ParcelState, ParcelStatus, ParcelUpdate, Point, Proof, Route, Stop, TimeWindow,
    Update,
};
use milepost_proto::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

const DOC: &str = include_str!("../PROTOCOL.md");

// ---------------------------------------------------------------------------------------------
// The values behind the vectors.
// ---------------------------------------------------------------------------------------------

/// A fix with only the mandatory fields (Dublin, 2024-05-29T16:26:40Z, 8 m).
fn fix_minimal() -> Fix {
    Fix::new(1_717_000_000_000, 533_498_000, -62_603_000, 8.0)
}

/// A fix with every optional field set.
fn fix_full() -> Fix {
    Fix {
        t_ms: 1_717_000_001_000,
        lat_e7: 533_498_450,
        lon_e7: -62_602_700,
        accuracy_m: 4.5,
        speed_mps: Some(12.5),
        heading_deg: Some(270.0),
        altitude_m: Some(57.25),
        battery_pct: Some(87),
        activity: Some(Activity::InVehicle),
        mock: true,
    }
}

fn hello() -> ClientMsg {
    hello_speaking(1)
}

fn hello_speaking(version: u16) -> ClientMsg {
    ClientMsg::Hello(Hello {
        version,
        token: "mp1.eyJyIjoiZHJpdmVyIn0.c2lnbmF0dXJl".into(),
        subject: "drv-42".into(),
        device: DeviceInfo {
            device_id: "a1b2c3".into(),
            app: "milepost-driver/3.2.1".into(),
            os: "Android 14".into(),
        },
    })
}

fn fix_batch() -> ClientMsg {
    ClientMsg::FixBatch(FixBatch {
        first_seq: Seq(1000),
        fixes: vec![fix_minimal(), fix_full()],
    })
}

fn welcome() -> ServerMsg {
    ServerMsg::Welcome(Welcome {
        server_time_ms: 1_717_000_005_000,
        limits: Limits {
            max_frame: DEFAULT_MAX_FRAME,
            max_batch: DEFAULT_MAX_BATCH,
            max_fixes_per_s: 10,
        },
        watermark: Seq(999),
    })
}

fn ack_clean() -> ServerMsg {
    ServerMsg::Ack(Ack {
        first_seq: Seq(1000),
        count: 2,
        duplicates: 0,
        rejected: vec![],
        watermark: Seq(1001),
    })
}

fn ack_rejection() -> ServerMsg {
    ServerMsg::Ack(Ack {
        first_seq: Seq(1000),
        count: 2,
        duplicates: 1,
        rejected: vec![Rejection {
            seq: Seq(1001),
            reason: RejectReason::ImplausibleJump,
        }],
        watermark: Seq(1001),
    })
}

fn error_rate_limited() -> ServerMsg {
    ServerMsg::Error(ErrorFrame {
        code: ErrorCode::RateLimited,
        message: "max 10 fixes/s".into(),
    })
}

fn query_within() -> ClientMsg {
    ClientMsg::Query(Query {
        id: 1,
        kind: QueryKind::Within {
            min_lat_e7: 533_000_000,
            min_lon_e7: -63_000_000,
            max_lat_e7: 534_000_000,
            max_lon_e7: -62_000_000,
        },
    })
}

fn query_nearby() -> ClientMsg {
    ClientMsg::Query(Query {
        id: 2,
        kind: QueryKind::Nearby {
            lat_e7: 533_498_000,
            lon_e7: -62_603_000,
            radius_m: 1500.0,
        },
    })
}

fn query_nearest() -> ClientMsg {
    ClientMsg::Query(Query {
        id: 300,
        kind: QueryKind::Nearest {
            lat_e7: 533_498_000,
            lon_e7: -62_603_000,
            k: 5,
        },
    })
}

fn query_result() -> ServerMsg {
    ServerMsg::QueryResult(QueryResult {
        id: 2,
        drivers: vec![DriverPosition {
            driver: DriverId::from("drv-42"),
            seq: Seq(1001),
            fix: fix_minimal(),
            distance_m: 42.5,
        }],
        truncated: false,
    })
}

fn query_result_empty() -> ServerMsg {
    ServerMsg::QueryResult(QueryResult {
        id: 300,
        drivers: vec![],
        truncated: true,
    })
}

fn live_fix() -> ClientDatagram {
    ClientDatagram::LiveFix {
        seq: Seq(1002),
        fix: fix_minimal(),
    }
}

fn route() -> Route {
    Route {
        id: "R-17".into(),
        depot: "DUB1".into(),
        driver: "drv-42".into(),
        planned_start_ms: 1_717_000_000_000,
        start: Some(Point {
            lat: 53.3498,
            lon: -6.2603,
        }),
        stops: vec![Stop {
            id: "S1".into(),
            lat: 53.35,
            lon: -6.26,
            radius_m: None,
            parcels: vec![Parcel {
                tracking: "T1".into(),
                otp: None,
            }],
            window: Some(TimeWindow {
                start_ms: 1_717_003_600_000,
                end_ms: 1_717_007_200_000,
            }),
            service_s: Some(90),
            planned_arrival_ms: None,
            path: vec![],
            instructions: String::new(),
            otp_required: false,
        }],
    }
}

fn update_eta() -> Update {
    Update::Parcel(ParcelUpdate {
        tracking: "T1".into(),
        fix_t_ms: 1_717_000_000_000,
        kind: ParcelEvent::EtaChanged {
            eta_ms: 1_717_004_000_000,
            earliest_ms: 1_717_003_700_000,
            latest_ms: 1_717_004_300_000,
        },
    })
}

fn outcome_returned() -> Outcome {
    Outcome::Returned {
        note: "refused".into(),
    }
}

/// Handed to "Ana", proven by the one-time code.
fn outcome_delivered_to() -> Outcome {
    Outcome::DeliveredTo {
        proof: Proof {
            photo_sha256: None,
            signature_sha256: None,
            otp: Some("4711".into()),
        },
        received_by: "Ana".into(),
    }
}

/// The recipient's event for it: delivered at 1717000000000 to "Ana", code checked.
fn update_delivered_to() -> Update {
    Update::Parcel(ParcelUpdate {
        tracking: "T1".into(),
        fix_t_ms: 1_717_000_000_000,
        kind: ParcelEvent::DeliveredTo {
            proof: milepost_proto::route::ProofSummary {
                photo_sha256: None,
                signature_sha256: None,
                otp_verified: true,
            },
            at_ms: 1_717_000_000_000,
            received_by: "Ana".into(),
        },
    })
}

/// The header of a 5-byte upload, the bytes `photo`.
fn upload() -> ClientMsg {
    ClientMsg::Upload(Upload {
        id: 12,
        sha256: "55c64d0fcd6f9d5f7c828093857e3fdfda68478bb4e9bd24d481ef391c7804e8".into(),
        size: 5,
    })
}

fn outcome_failed() -> Outcome {
    Outcome::Failed {
        reason: FailureReason::RecipientAbsent,
        note: "no answer".into(),
    }
}

fn command_assign_route() -> ClientMsg {
    ClientMsg::Command(Command {
        id: 7,
        kind: CommandKind::AssignRoute(route()),
    })
}

fn command_resequence() -> ClientMsg {
    ClientMsg::Command(Command {
        id: 8,
        kind: CommandKind::Resequence {
            route_id: "R-17".into(),
            order: vec!["S2".into(), "S1".into()],
        },
    })
}

fn command_report_outcome() -> ClientMsg {
    ClientMsg::Command(Command {
        id: 9,
        kind: CommandKind::ReportOutcome {
            stop: "S1".into(),
            tracking: Some("T1".into()),
            outcome: Outcome::Delivered {
                proof: Proof {
                    photo_sha256: None,
                    signature_sha256: None,
                    otp: Some("4711".into()),
                },
            },
        },
    })
}

fn command_set_instructions() -> ClientMsg {
    ClientMsg::Command(Command {
        id: 10,
        kind: CommandKind::SetInstructions {
            tracking: "T1".into(),
            text: "leave at the door".into(),
        },
    })
}

fn command_parcel_status() -> ClientMsg {
    ClientMsg::Command(Command {
        id: 11,
        kind: CommandKind::ParcelStatus {
            tracking: "T1".into(),
        },
    })
}

fn subscribe_parcel() -> ClientMsg {
    ClientMsg::Subscribe(Subscribe {
        target: FeedTarget::Parcel("T1".into()),
        after: None,
    })
}

fn subscribe_depot() -> ClientMsg {
    ClientMsg::Subscribe(Subscribe {
        target: FeedTarget::Depot,
        after: Some(42),
    })
}

fn subscribe_area() -> ClientMsg {
    ClientMsg::Subscribe(Subscribe {
        target: FeedTarget::Area {
            min_lat_e7: 533_000_000,
            min_lon_e7: -63_000_000,
            max_lat_e7: 534_000_000,
            max_lon_e7: -62_000_000,
        },
        after: None,
    })
}

fn done() -> ServerMsg {
    ServerMsg::Done { id: 7 }
}

fn eta_update() -> ParcelUpdate {
    match update_eta() {
        Update::Parcel(p) => p,
        _ => unreachable!(),
    }
}

fn parcel_status_answer() -> ServerMsg {
    ServerMsg::ParcelStatus {
        id: 11,
        status: ParcelStatus {
            tracking: "T1".into(),
            route_id: "R-17".into(),
            stop: "S1".into(),
            state: ParcelState::OutForDelivery,
            stops_away: Some(2),
            eta_ms: Some(1_717_004_000_000),
            earliest_ms: Some(1_717_003_700_000),
            latest_ms: Some(1_717_004_300_000),
            window: Some(TimeWindow {
                start_ms: 1_717_003_600_000,
                end_ms: 1_717_007_200_000,
            }),
            last_event: Some(eta_update()),
        },
    }
}

fn live_position(seq: u64) -> DriverPosition {
    DriverPosition {
        driver: DriverId::from("drv-42"),
        seq: Seq(seq),
        fix: fix_minimal(),
        distance_m: 0.0,
    }
}

fn feed_snapshot() -> ServerMsg {
    ServerMsg::FeedSnapshot(FeedSnapshot {
        offset: 3,
        parcel: None,
        positions: vec![live_position(1001)],
    })
}

fn feed_event() -> ServerMsg {
    ServerMsg::FeedEvent {
        offset: 4,
        update: update_eta(),
    }
}

fn feed_position() -> ServerMsg {
    ServerMsg::FeedPosition(live_position(1002))
}

fn push_instructions() -> ServerMsg {
    ServerMsg::Push(DriverUpdate {
        driver: "drv-42".into(),
        route_id: "R-17".into(),
        kind: DriverEvent::Instructions {
            stop: "S1".into(),
            tracking: "T1".into(),
            text: "leave at the door".into(),
        },
    })
}

fn v2_send_message() -> ClientMsg {
    ClientMsg::Command(Command {
        id: 20,
        kind: CommandKind::SendMessage {
            tracking: "T1".into(),
            text: "gate 42".into(),
        },
    })
}

fn v2_change_delivery() -> ClientMsg {
    ClientMsg::Command(Command {
        id: 21,
        kind: CommandKind::ChangeDelivery {
            tracking: "T1".into(),
            change: DeliveryChange::SafePlace {
                place: "porch".into(),
            },
        },
    })
}

fn v2_get_route() -> ClientMsg {
    ClientMsg::Command(Command {
        id: 22,
        kind: CommandKind::GetRoute {
            route_id: "R-17".into(),
        },
    })
}

fn v2_push_message() -> ServerMsg {
    ServerMsg::Push(DriverUpdate {
        driver: "drv-42".into(),
        route_id: "R-17".into(),
        kind: DriverEvent::Message {
            stop: "S1".into(),
            tracking: "T1".into(),
            text: "gate 42".into(),
            at_ms: 1_700_000_000_000,
        },
    })
}

fn v2_push_delivery_changed() -> ServerMsg {
    ServerMsg::Push(DriverUpdate {
        driver: "drv-42".into(),
        route_id: "R-17".into(),
        kind: DriverEvent::DeliveryChanged {
            stop: "S1".into(),
            tracking: "T1".into(),
            change: DeliveryChange::Reschedule {
                window: TimeWindow {
                    start_ms: 1_700_000_000_000,
                    end_ms: 1_700_014_400_000,
                },
            },
        },
    })
}

fn v2_update_message() -> Update {
    Update::Parcel(ParcelUpdate {
        tracking: "T1".into(),
        fix_t_ms: 1_700_000_000_000,
        kind: ParcelEvent::Message {
            from: MessageFrom::Driver,
            text: "5 min".into(),
            at_ms: 1_700_000_000_000,
        },
    })
}

fn v2_update_delivery_changed() -> Update {
    Update::Parcel(ParcelUpdate {
        tracking: "T1".into(),
        fix_t_ms: 1_700_000_000_000,
        kind: ParcelEvent::DeliveryChanged {
            change: DeliveryChange::Neighbour {
                name: "Ana".into(),
                address: "no. 14".into(),
            },
        },
    })
}

fn push_route_assigned() -> ServerMsg {
    ServerMsg::Push(DriverUpdate {
        driver: "drv-42".into(),
        route_id: "R-17".into(),
        kind: DriverEvent::RouteAssigned,
    })
}

/// What a vector's bytes are, and the value they encode.
enum Expected {
    Fix(Fix),
    Client(ClientMsg),
    Server(ServerMsg),
    Datagram(ClientDatagram),
    /// A whole frame (4-byte length header, then the payload).
    ClientFrame(ClientMsg),
    /// A whole frame (4-byte length header, then the payload).
    ServerFrame(ServerMsg),
    Route(Route),
    Update(Update),
    Outcome(Outcome),
}

impl Expected {
    /// The `type=` the document states for the vector.
    fn type_name(&self) -> &'static str {
        match self {
            Expected::Fix(_) => "Fix",
            Expected::Client(_) => "ClientMsg",
            Expected::Server(_) => "ServerMsg",
            Expected::Datagram(_) => "ClientDatagram",
            Expected::ClientFrame(_) => "frame(ClientMsg)",
            Expected::ServerFrame(_) => "frame(ServerMsg)",
            Expected::Route(_) => "Route",
            Expected::Update(_) => "Update",
            Expected::Outcome(_) => "Outcome",
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Expected::Fix(v) => encode(v).unwrap(),
            Expected::Client(v) => encode(v).unwrap(),
            Expected::Server(v) => encode(v).unwrap(),
            Expected::Datagram(v) => encode(v).unwrap(),
            Expected::ClientFrame(v) => framed(v),
            Expected::ServerFrame(v) => framed(v),
            Expected::Route(v) => encode(v).unwrap(),
            Expected::Update(v) => encode(v).unwrap(),
            Expected::Outcome(v) => encode(v).unwrap(),
        }
    }

    /// Decodes `bytes` as this vector's type and compares with the value.
    fn check_decode(&self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Expected::Fix(v) => same(v, decode::<Fix>(bytes)),
            Expected::Client(v) => same(v, decode::<ClientMsg>(bytes)),
            Expected::Server(v) => same(v, decode::<ServerMsg>(bytes)),
            Expected::Datagram(v) => same(v, decode::<ClientDatagram>(bytes)),
            Expected::ClientFrame(v) => same(v, decode::<ClientMsg>(unframe(bytes)?)),
            Expected::ServerFrame(v) => same(v, decode::<ServerMsg>(unframe(bytes)?)),
            Expected::Route(v) => same(v, decode::<Route>(bytes)),
            Expected::Update(v) => same(v, decode::<Update>(bytes)),
            Expected::Outcome(v) => same(v, decode::<Outcome>(bytes)),
        }
    }
}

fn framed<T: Serialize>(v: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(v, &mut buf).unwrap();
    buf
}

/// The payload of the one whole frame that `bytes` must be.
fn unframe(bytes: &[u8]) -> Result<&[u8], String> {
    match frame::parse(bytes, MAX_FRAME_HARD) {
        Ok(Some((payload, used))) if used == bytes.len() => Ok(payload),
        other => Err(format!("not exactly one frame: {other:?}")),
    }
}

fn same<T: PartialEq + Debug>(want: &T, got: Result<T, CodecError>) -> Result<(), String> {
    match got {
        Ok(got) if &got == want => Ok(()),
        Ok(got) => Err(format!("decoded {got:?}, expected {want:?}")),
        Err(e) => Err(format!("decode failed: {e}")),
    }
}

/// Every vector the document must contain, by name.
fn vectors() -> BTreeMap<&'static str, Expected> {
    BTreeMap::from([
        ("fix-minimal", Expected::Fix(fix_minimal())),
        ("fix-full", Expected::Fix(fix_full())),
        ("hello", Expected::Client(hello())),
        ("v2-hello", Expected::Client(hello_speaking(2))),
        ("v2-cmd-send-message", Expected::Client(v2_send_message())),
        (
            "v2-cmd-change-delivery",
            Expected::Client(v2_change_delivery()),
        ),
        ("v2-cmd-get-route", Expected::Client(v2_get_route())),
        ("v2-push-message", Expected::Server(v2_push_message())),
        (
            "v2-push-delivery-changed",
            Expected::Server(v2_push_delivery_changed()),
        ),
        ("v2-update-message", Expected::Update(v2_update_message())),
        (
            "v2-update-delivery-changed",
            Expected::Update(v2_update_delivery_changed()),
        ),
        ("fixbatch", Expected::Client(fix_batch())),
        ("query-within", Expected::Client(query_within())),
        ("query-nearby", Expected::Client(query_nearby())),
        ("query-nearest", Expected::Client(query_nearest())),
        ("welcome", Expected::Server(welcome())),
        ("ack", Expected::Server(ack_clean())),
        ("ack-rejection", Expected::Server(ack_rejection())),
        ("error", Expected::Server(error_rate_limited())),
        ("queryresult", Expected::Server(query_result())),
        ("queryresult-empty", Expected::Server(query_result_empty())),
        ("livefix", Expected::Datagram(live_fix())),
        ("frame-fixbatch", Expected::ClientFrame(fix_batch())),
        ("frame-ack", Expected::ServerFrame(ack_rejection())),
        ("route", Expected::Route(route())),
        ("update-eta", Expected::Update(update_eta())),
        ("outcome-failed", Expected::Outcome(outcome_failed())),
        ("outcome-returned", Expected::Outcome(outcome_returned())),
        (
            "outcome-delivered-to",
            Expected::Outcome(outcome_delivered_to()),
        ),
        (
            "update-delivered-to",
            Expected::Update(update_delivered_to()),
        ),
        ("upload", Expected::Client(upload())),
        (
            "command-assign-route",
            Expected::Client(command_assign_route()),
        ),
        ("command-resequence", Expected::Client(command_resequence())),
        (
            "command-report-outcome",
            Expected::Client(command_report_outcome()),
        ),
        (
            "command-set-instructions",
            Expected::Client(command_set_instructions()),
        ),
        (
            "command-parcel-status",
            Expected::Client(command_parcel_status()),
        ),
        ("subscribe-parcel", Expected::Client(subscribe_parcel())),
        ("subscribe-depot", Expected::Client(subscribe_depot())),
        ("subscribe-area", Expected::Client(subscribe_area())),
        ("done", Expected::Server(done())),
        ("parcelstatus", Expected::Server(parcel_status_answer())),
        ("feed-snapshot", Expected::Server(feed_snapshot())),
        ("feed-event", Expected::Server(feed_event())),
        ("feed-position", Expected::Server(feed_position())),
        ("feed-resync", Expected::Server(ServerMsg::FeedResync)),
        ("push", Expected::Server(push_instructions())),
        (
            "push-route-assigned",
            Expected::Server(push_route_assigned()),
        ),
        ("frame-push", Expected::ServerFrame(push_route_assigned())),
    ])
}

// ---------------------------------------------------------------------------------------------
// Reading the document.
// ---------------------------------------------------------------------------------------------

struct DocVector {
    name: String,
    ty: String,
    bytes: Vec<u8>,
    line: usize,
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits in {s:?}"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|e| format!("{s:?}: {e}")))
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Hex as printed in the document: 16 bytes a line.
fn to_hex_lines(bytes: &[u8]) -> String {
    bytes.chunks(16).map(to_hex).collect::<Vec<_>>().join("\n")
}

/// The ```` ```hex name=... type=... ```` blocks of the document.
fn doc_vectors() -> Vec<DocVector> {
    let mut out = Vec::new();
    let mut lines = DOC.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.trim().strip_prefix("```hex") else {
            continue;
        };
        let mut name = None;
        let mut ty = None;
        for word in info.split_whitespace() {
            if let Some(v) = word.strip_prefix("name=") {
                name = Some(v.to_owned());
            } else if let Some(v) = word.strip_prefix("type=") {
                ty = Some(v.to_owned());
            } else {
                panic!("PROTOCOL.md:{}: unknown attribute {word:?}", n + 1);
            }
        }
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        out.push(DocVector {
            name: name.unwrap_or_else(|| panic!("PROTOCOL.md:{}: hex block without name=", n + 1)),
            ty: ty.unwrap_or_else(|| panic!("PROTOCOL.md:{}: hex block without type=", n + 1)),
            bytes: parse_hex(&body).unwrap_or_else(|e| panic!("PROTOCOL.md:{}: {e}", n + 1)),
            line: n + 1,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The vector tests.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_document_vector_matches_the_codec() {
    let expected = vectors();
    let doc = doc_vectors();
    assert!(!doc.is_empty(), "no ```hex blocks found in PROTOCOL.md");
    let mut failures = Vec::new();
    for v in &doc {
        let Some(exp) = expected.get(v.name.as_str()) else {
            failures.push(format!(
                "PROTOCOL.md:{}: vector {:?} has no value in tests/vectors.rs",
                v.line, v.name
            ));
            continue;
        };
        if v.ty != exp.type_name() {
            failures.push(format!(
                "PROTOCOL.md:{}: vector {:?} says type={} but is a {}",
                v.line,
                v.name,
                v.ty,
                exp.type_name()
            ));
        }
        let encoded = exp.encode();
        if encoded != v.bytes {
            failures.push(format!(
                "PROTOCOL.md:{}: vector {:?}: the codec encodes\n{}\nbut the document says\n{}",
                v.line,
                v.name,
                to_hex_lines(&encoded),
                to_hex_lines(&v.bytes)
            ));
        }
        if let Err(e) = exp.check_decode(&v.bytes) {
            failures.push(format!("PROTOCOL.md:{}: vector {:?}: {e}", v.line, v.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn every_vector_is_in_the_document_once() {
    let doc = doc_vectors();
    for name in vectors().keys() {
        let n = doc.iter().filter(|v| v.name == *name).count();
        assert_eq!(n, 1, "vector {name:?} appears {n} times in PROTOCOL.md");
    }
}

#[test]
fn the_document_covers_every_message_and_variant() {
    let all = vectors();
    let has = |pred: &dyn Fn(&Expected) -> bool| all.values().any(pred);
    assert!(has(&|e| matches!(e, Expected::Client(ClientMsg::Hello(_)))));
    assert!(has(&|e| matches!(
        e,
        Expected::Client(ClientMsg::FixBatch(_))
    )));
    for k in 0..3 {
        assert!(has(&|e| matches!(e, Expected::Client(ClientMsg::Query(q))
            if matches!((&q.kind, k),
                (QueryKind::Within { .. }, 0) | (QueryKind::Nearby { .. }, 1) | (QueryKind::Nearest { .. }, 2))
        )));
    }
    assert!(has(&|e| matches!(
        e,
        Expected::Server(ServerMsg::Welcome(_))
    )));
    assert!(has(
        &|e| matches!(e, Expected::Server(ServerMsg::Ack(a)) if !a.rejected.is_empty())
    ));
    assert!(has(&|e| matches!(e, Expected::Server(ServerMsg::Error(_)))));
    assert!(has(
        &|e| matches!(e, Expected::Server(ServerMsg::QueryResult(r)) if !r.drivers.is_empty())
    ));
    assert!(has(&|e| matches!(
        e,
        Expected::Datagram(ClientDatagram::LiveFix { .. })
    )));
    assert!(has(&|e| matches!(e, Expected::ClientFrame(_))));
    assert!(has(&|e| matches!(e, Expected::ServerFrame(_))));
    // Every command kind, every feed target, every server answer and feed frame.
    for k in 0..5 {
        assert!(
            has(&|e| matches!(e, Expected::Client(ClientMsg::Command(c))
            if matches!((&c.kind, k),
                (CommandKind::AssignRoute(_), 0)
                | (CommandKind::Resequence { .. }, 1)
                | (CommandKind::ReportOutcome { .. }, 2)
                | (CommandKind::SetInstructions { .. }, 3)
                | (CommandKind::ParcelStatus { .. }, 4)))),
            "command kind {k}"
        );
    }
    for k in 0..3 {
        assert!(
            has(&|e| matches!(e, Expected::Client(ClientMsg::Subscribe(s))
            if matches!((&s.target, k),
                (FeedTarget::Parcel(_), 0) | (FeedTarget::Depot, 1) | (FeedTarget::Area { .. }, 2)))),
            "feed target {k}"
        );
    }
    assert!(has(&|e| matches!(
        e,
        Expected::Server(ServerMsg::Done { .. })
    )));
    assert!(has(&|e| matches!(
        e,
        Expected::Server(ServerMsg::ParcelStatus { status, .. }) if status.last_event.is_some()
    )));
    assert!(has(
        &|e| matches!(e, Expected::Server(ServerMsg::FeedSnapshot(s)) if !s.positions.is_empty())
    ));
    assert!(has(&|e| matches!(
        e,
        Expected::Server(ServerMsg::FeedEvent {
            update: Update::Parcel(_),
            ..
        })
    )));
    assert!(has(&|e| matches!(
        e,
        Expected::Server(ServerMsg::FeedPosition(_))
    )));
    assert!(has(&|e| matches!(
        e,
        Expected::Server(ServerMsg::FeedResync)
    )));
    assert!(has(&|e| matches!(e, Expected::Server(ServerMsg::Push(_)))));
    // The all-optional-fields fix really has every option set.
    let f = fix_full();
    assert!(
        f.speed_mps.is_some()
            && f.heading_deg.is_some()
            && f.altitude_m.is_some()
            && f.battery_pct.is_some()
            && f.activity.is_some()
            && f.mock
    );
}

/// Prints every vector as a PROTOCOL.md block, for pasting.
#[test]
#[ignore]
fn print_vectors() {
    for (name, exp) in vectors() {
        let bytes = exp.encode();
        println!(
            "<!-- {} bytes -->\n```hex name={name} type={}\n{}\n```\n",
            bytes.len(),
            exp.type_name(),
            to_hex_lines(&bytes)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The encoding-rule examples table.
// ---------------------------------------------------------------------------------------------

/// Encodes `value` (as written in the document) as type `ty`, and checks the decode of `hex`.
fn example(ty: &str, value: &str, hex: &[u8]) -> Result<(), String> {
    fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(
        v: T,
        hex: &[u8],
    ) -> Result<(), String> {
        let enc = encode(&v).map_err(|e| e.to_string())?;
        if enc != hex {
            return Err(format!("encodes to {}", to_hex(&enc)));
        }
        same(&v, decode::<T>(hex))
    }
    fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
        let s = s.replace('_', "");
        let s = s.trim();
        // Powers of two are written 2^n (possibly -1 / prefixed with -).
        if let Some(e) = s.strip_prefix("2^") {
            let (e, minus_one) = match e.strip_suffix("-1") {
                Some(e) => (e, true),
                None => (e, false),
            };
            let v = 1u128 << e.parse::<u32>().map_err(|e| e.to_string())?;
            let v = if minus_one { v - 1 } else { v };
            return v.to_string().parse().map_err(|_| format!("bad number {s}"));
        }
        if let Some(e) = s.strip_prefix("-2^") {
            let v = 1i128 << e.parse::<u32>().map_err(|e| e.to_string())?;
            return (-v)
                .to_string()
                .parse()
                .map_err(|_| format!("bad number {s}"));
        }
        s.parse().map_err(|_| format!("bad number {s}"))
    }
    fn unquote(s: &str) -> Result<String, String> {
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .map(str::to_owned)
            .ok_or_else(|| format!("expected a quoted string, got {s}"))
    }
    let value = value.trim_matches('`');
    match ty {
        "u8" => check(num::<u8>(value)?, hex),
        "u16" => check(num::<u16>(value)?, hex),
        "u32" => check(num::<u32>(value)?, hex),
        "u64" => check(num::<u64>(value)?, hex),
        "i16" => check(num::<i16>(value)?, hex),
        "i32" => check(num::<i32>(value)?, hex),
        "i64" => check(num::<i64>(value)?, hex),
        "f32" => check(num::<f32>(value)?, hex),
        "f64" => check(num::<f64>(value)?, hex),
        "bool" => check(num::<bool>(value)?, hex),
        "Option<u32>" => match value {
            "None" => check(None::<u32>, hex),
            v => {
                let inner = v
                    .strip_prefix("Some(")
                    .and_then(|v| v.strip_suffix(')'))
                    .ok_or("expected None or Some(n)")?;
                check(Some(num::<u32>(inner)?), hex)
            }
        },
        "Option<u8>" => match value {
            "None" => check(None::<u8>, hex),
            v => {
                let inner = v
                    .strip_prefix("Some(")
                    .and_then(|v| v.strip_suffix(')'))
                    .ok_or("expected None or Some(n)")?;
                check(Some(num::<u8>(inner)?), hex)
            }
        },
        "String" => check(unquote(value)?, hex),
        "Seq" => check(Seq(num(value)?), hex),
        "DriverId" => check(DriverId(unquote(value)?), hex),
        "[u8; 4]" | "Vec<u8>" | "Vec<u16>" => {
            let items = value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .ok_or("expected [a, b, ...]")?;
            let items: Vec<&str> = items
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            match ty {
                "[u8; 4]" => {
                    let v: Vec<u8> = items.iter().map(|s| num(s)).collect::<Result<_, _>>()?;
                    let arr: [u8; 4] = v.try_into().map_err(|_| "need 4 items")?;
                    check(arr, hex)
                }
                "Vec<u8>" => check(
                    items
                        .iter()
                        .map(|s| num::<u8>(s))
                        .collect::<Result<Vec<_>, _>>()?,
                    hex,
                ),
                _ => check(
                    items
                        .iter()
                        .map(|s| num::<u16>(s))
                        .collect::<Result<Vec<_>, _>>()?,
                    hex,
                ),
            }
        }
        "Activity" => {
            let a = [
                Activity::Unknown,
                Activity::Still,
                Activity::Walking,
                Activity::Running,
                Activity::Cycling,
                Activity::InVehicle,
            ]
            .into_iter()
            .find(|a| format!("{a:?}") == value)
            .ok_or("unknown Activity")?;
            check(a, hex)
        }
        "ErrorCode" => {
            let c = ErrorCode::ALL
                .into_iter()
                .find(|c| format!("{c:?}") == value)
                .ok_or("unknown ErrorCode")?;
            check(c, hex)
        }
        "RejectReason" => {
            let r = RejectReason::ALL
                .into_iter()
                .find(|r| format!("{r:?}") == value)
                .ok_or("unknown RejectReason")?;
            check(r, hex)
        }
        other => Err(format!("the test does not know type {other}")),
    }
}

#[test]
fn every_document_encoding_example_matches_the_codec() {
    let begin = DOC
        .find("<!-- encoding-examples:begin -->")
        .expect("encoding-examples:begin marker in PROTOCOL.md");
    let end = DOC
        .find("<!-- encoding-examples:end -->")
        .expect("encoding-examples:end marker in PROTOCOL.md");
    let mut rows = 0;
    let mut failures = Vec::new();
    for line in DOC[begin..end].lines() {
        let line = line.trim();
        if !line.starts_with('|') || line.starts_with("| type") || line.starts_with("|--") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 3 {
            failures.push(format!("row {line:?}: fewer than 3 cells"));
            continue;
        }
        let ty = cells[0].trim_matches('`');
        let hex = match parse_hex(cells[2].trim_matches('`')) {
            Ok(h) => h,
            Err(e) => {
                failures.push(format!("row {line:?}: {e}"));
                continue;
            }
        };
        rows += 1;
        if let Err(e) = example(ty, cells[1], &hex) {
            failures.push(format!("row {line:?}: {e}"));
        }
    }
    assert!(rows >= 30, "only {rows} encoding examples found");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The encoding rules, tested directly (independently of the document).
// ---------------------------------------------------------------------------------------------

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    encode(v).unwrap()
}

/// The varint rule, written out independently of bincode.
fn varint(v: u64) -> Vec<u8> {
    if v < 251 {
        vec![v as u8]
    } else if v <= u16::MAX as u64 {
        let mut b = vec![0xfb];
        b.extend_from_slice(&(v as u16).to_le_bytes());
        b
    } else if v <= u32::MAX as u64 {
        let mut b = vec![0xfc];
        b.extend_from_slice(&(v as u32).to_le_bytes());
        b
    } else {
        let mut b = vec![0xfd];
        b.extend_from_slice(&v.to_le_bytes());
        b
    }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

#[test]
fn varint_boundaries() {
    assert_eq!(enc(&0u64), [0x00]);
    assert_eq!(enc(&250u64), [0xfa]);
    assert_eq!(enc(&251u64), [0xfb, 0xfb, 0x00]);
    assert_eq!(enc(&65535u64), [0xfb, 0xff, 0xff]);
    assert_eq!(enc(&65536u64), [0xfc, 0x00, 0x00, 0x01, 0x00]);
    assert_eq!(enc(&(u32::MAX as u64)), [0xfc, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        enc(&(1u64 << 32)),
        [0xfd, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]
    );
    assert_eq!(
        enc(&u64::MAX),
        [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
    );
    // The same rule for u16 and u32, whatever the declared width.
    assert_eq!(enc(&250u16), [0xfa]);
    assert_eq!(enc(&251u16), [0xfb, 0xfb, 0x00]);
    assert_eq!(enc(&u16::MAX), [0xfb, 0xff, 0xff]);
    assert_eq!(enc(&250u32), [0xfa]);
    assert_eq!(enc(&65535u32), [0xfb, 0xff, 0xff]);
    assert_eq!(enc(&65536u32), [0xfc, 0x00, 0x00, 0x01, 0x00]);
    // The independent rule agrees with the codec across the boundaries.
    let probes = [
        0u64,
        1,
        249,
        250,
        251,
        252,
        255,
        256,
        65534,
        65535,
        65536,
        65537,
        (1 << 32) - 1,
        1 << 32,
        (1 << 32) + 1,
        u64::MAX - 1,
        u64::MAX,
    ];
    for v in probes {
        assert_eq!(enc(&v), varint(v), "u64 {v}");
        if let Ok(v32) = u32::try_from(v) {
            assert_eq!(enc(&v32), varint(v), "u32 {v}");
        }
        if let Ok(v16) = u16::try_from(v) {
            assert_eq!(enc(&v16), varint(v), "u16 {v}");
        }
    }
}

#[test]
fn seq_and_driver_id_are_their_inner_value() {
    assert_eq!(enc(&Seq(1000)), enc(&1000u64));
    assert_eq!(enc(&Seq(1000)), [0xfb, 0xe8, 0x03]);
    assert_eq!(enc(&DriverId::from("d1")), enc(&"d1".to_owned()));
    assert_eq!(enc(&DriverId::from("d1")), [0x02, b'd', b'1']);
}

#[test]
fn zigzag_signed_integers() {
    assert_eq!(enc(&0i32), [0x00]);
    assert_eq!(enc(&-1i32), [0x01]);
    assert_eq!(enc(&1i32), [0x02]);
    assert_eq!(enc(&-2i32), [0x03]);
    assert_eq!(enc(&-125i32), [0xf9]);
    assert_eq!(enc(&125i32), [0xfa]);
    assert_eq!(enc(&-126i32), [0xfb, 0xfb, 0x00]);
    assert_eq!(enc(&i32::MIN), [0xfc, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(enc(&i32::MAX), [0xfc, 0xfe, 0xff, 0xff, 0xff]);
    assert_eq!(enc(&-62_603_000i32), varint(zigzag(-62_603_000)));
    assert_eq!(enc(&i16::MIN), [0xfb, 0xff, 0xff]);
    assert_eq!(enc(&-1i16), [0x01]);
    assert_eq!(enc(&i64::MIN), varint(u64::MAX));
    assert_eq!(
        enc(&-1_717_000_000_000i64),
        varint(zigzag(-1_717_000_000_000))
    );
    for n in [
        0i64,
        1,
        -1,
        125,
        -125,
        126,
        -126,
        i32::MIN as i64,
        i32::MAX as i64,
        i64::MIN,
        i64::MAX,
    ] {
        assert_eq!(enc(&n), varint(zigzag(n)), "i64 {n}");
        if let Ok(n32) = i32::try_from(n) {
            // zigzag with bits = 32: (n << 1) ^ (n >> 31), as u32.
            let z = ((n32 << 1) ^ (n32 >> 31)) as u32;
            assert_eq!(enc(&n32), varint(z as u64), "i32 {n}");
        }
    }
}

#[test]
fn u8_is_one_raw_byte() {
    assert_eq!(enc(&0u8), [0x00]);
    assert_eq!(enc(&250u8), [0xfa]);
    assert_eq!(enc(&251u8), [0xfb]);
    assert_eq!(enc(&255u8), [0xff]);
    // ... unlike u16, which is a varint.
    assert_eq!(enc(&255u16), [0xfb, 0xff, 0x00]);
    for b in 0..=255u8 {
        assert_eq!(decode::<u8>(&[b]).unwrap(), b);
    }
}

#[test]
fn floats_bools_options() {
    assert_eq!(enc(&1.0f32), [0x00, 0x00, 0x80, 0x3f]);
    assert_eq!(enc(&-2.5f32), (-2.5f32).to_le_bytes());
    assert_eq!(enc(&f32::NAN), f32::NAN.to_le_bytes());
    assert_eq!(enc(&53.3498f64), 53.3498f64.to_le_bytes());
    assert_eq!(enc(&false), [0x00]);
    assert_eq!(enc(&true), [0x01]);
    assert!(decode::<bool>(&[0x02]).is_err(), "bool other than 0/1");
    assert_eq!(enc(&None::<u32>), [0x00]);
    assert_eq!(enc(&Some(7u32)), [0x01, 0x07]);
    assert_eq!(enc(&Some(0u32)), [0x01, 0x00]);
    assert_eq!(enc(&Some(1.0f32)), [0x01, 0x00, 0x00, 0x80, 0x3f]);
    assert_eq!(enc(&Some(Some(1u8))), [0x01, 0x01, 0x01]);
    assert!(
        decode::<Option<u32>>(&[0x02, 0x07]).is_err(),
        "option tag 2"
    );
}

#[test]
fn strings_vecs_arrays() {
    assert_eq!(enc(&String::new()), [0x00]);
    assert_eq!(enc(&"hé".to_owned()), [0x03, b'h', 0xc3, 0xa9]);
    let long = "x".repeat(300);
    let mut want = vec![0xfb, 0x2c, 0x01];
    want.extend_from_slice(long.as_bytes());
    assert_eq!(enc(&long), want);
    assert!(
        decode::<String>(&[0x02, 0xc3, 0x28]).is_err(),
        "invalid UTF-8 is refused"
    );
    assert_eq!(enc(&Vec::<u16>::new()), [0x00]);
    assert_eq!(enc(&vec![1u16, 300]), [0x02, 0x01, 0xfb, 0x2c, 0x01]);
    // Vec<u8> goes through serde's sequence path: a varint count, then one raw byte each.
    assert_eq!(enc(&vec![1u8, 255]), [0x02, 0x01, 0xff]);
    // A fixed-size array has no length prefix: N elements back to back.
    assert_eq!(enc(&[1u8, 2, 3, 4]), [0x01, 0x02, 0x03, 0x04]);
    assert_eq!(enc(&[0xabu8; 16]), [0xab; 16]);
    assert_eq!(enc(&[300u16, 1]), [0xfb, 0x2c, 0x01, 0x01]);
    assert_eq!(decode::<[u8; 4]>(&[9, 8, 7, 6]).unwrap(), [9, 8, 7, 6]);
}

#[test]
fn enums_are_variant_index_then_fields() {
    assert_eq!(enc(&Activity::Unknown), [0x00]);
    assert_eq!(enc(&Activity::InVehicle), [0x05]);
    for (i, c) in ErrorCode::ALL.into_iter().enumerate() {
        // The serde variant index equals the numeric code (declaration order = numeric order).
        assert_eq!(c.as_u32() as usize, i);
        assert_eq!(enc(&c), varint(i as u64));
        assert_eq!(decode::<ErrorCode>(&varint(i as u64)).unwrap(), c);
        assert_eq!(ErrorCode::from_u32(i as u32), Some(c));
    }
    assert!(decode::<ErrorCode>(&[ErrorCode::ALL.len() as u8]).is_err());
    for (i, r) in RejectReason::ALL.into_iter().enumerate() {
        assert_eq!(r as usize, i);
        assert_eq!(enc(&r), varint(i as u64));
    }
    assert!(decode::<RejectReason>(&[RejectReason::ALL.len() as u8]).is_err());
    // Message enums: index, then the fields of the variant's struct.
    assert_eq!(
        enc(&ClientMsg::FixBatch(FixBatch {
            first_seq: Seq(1),
            fixes: vec![]
        })),
        [0x01, 0x01, 0x00]
    );
    // The first index past the last variant (ClientMsg has 5 variants, ServerMsg 11), followed
    // by enough bytes that the error cannot be a truncation.
    assert!(
        decode::<ClientMsg>(&[0x05, 0, 0, 0, 0]).is_err(),
        "unknown ClientMsg variant"
    );
    assert!(
        decode::<ServerMsg>(&[0x0b, 0, 0, 0, 0]).is_err(),
        "unknown ServerMsg variant"
    );
    // The last known variants decode (FeedResync has no fields).
    assert_eq!(decode::<ServerMsg>(&[0x0a]).unwrap(), ServerMsg::FeedResync);
    assert!(
        decode::<ClientMsg>(&[0x04, 0x01, 0x00]).is_ok(),
        "Subscribe Depot, after None"
    );
    assert!(
        decode::<ClientMsg>(&[0x04, 0x03, 0x00]).is_err(),
        "unknown FeedTarget"
    );
    assert!(
        decode::<ClientMsg>(&[0x03, 0x01, 0x05, 0x02, b'T', b'1']).is_err(),
        "unknown CommandKind"
    );
    assert!(
        decode::<ClientDatagram>(&[0x01]).is_err(),
        "unknown datagram variant"
    );
    // The variant index is a u32 varint: an index beyond u32 is malformed, not "unknown".
    assert!(decode::<ClientMsg>(&[0xfd, 0, 0, 0, 0, 1, 0, 0, 0]).is_err());
}

#[test]
fn structs_are_fields_in_order_without_names() {
    let fix = Fix::new(-1, 1, -2, 1.0);
    // t_ms -1 -> 01, lat 1 -> 02, lon -2 -> 03, accuracy 1.0, five None, mock false.
    assert_eq!(
        enc(&fix),
        [0x01, 0x02, 0x03, 0x00, 0x00, 0x80, 0x3f, 0, 0, 0, 0, 0, 0x00]
    );
    let limits = Limits {
        max_frame: 1,
        max_batch: 2,
        max_fixes_per_s: 3,
    };
    assert_eq!(enc(&limits), [1, 2, 3]);
}

#[test]
fn decoder_strictness() {
    // Non-shortest varints: the reference decoder accepts them (encoders must not produce them).
    assert_eq!(decode::<u32>(&[0xfb, 0x05, 0x00]).unwrap(), 5);
    assert_eq!(decode::<u64>(&[0xfc, 0x05, 0, 0, 0]).unwrap(), 5);
    // A marker wider than the field is refused.
    assert!(decode::<u16>(&[0xfc, 0x05, 0, 0, 0]).is_err());
    assert!(decode::<u32>(&[0xfd, 0x05, 0, 0, 0, 0, 0, 0, 0]).is_err());
    // 0xFE (u128) and 0xFF (reserved) are never valid for the protocol's integers.
    assert!(decode::<u64>(&[0xfe; 17]).is_err());
    assert!(decode::<u64>(&[0xff; 9]).is_err());
    // Trailing bytes after a message are an error.
    assert!(matches!(
        decode::<u32>(&[0x01, 0x00]),
        Err(CodecError::TrailingBytes(1))
    ));
    // A string or vector longer than the bytes that follow is an error, not an allocation.
    assert!(decode::<String>(&[0xfc, 0xff, 0xff, 0xff, 0x7f]).is_err());
    assert!(decode::<Vec<Fix>>(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
}

#[test]
fn frame_header_is_u32_le_length() {
    let mut buf = Vec::new();
    encode_into(&ack_clean(), &mut buf).unwrap();
    let payload = enc(&ack_clean());
    assert_eq!(buf[..4], (payload.len() as u32).to_le_bytes());
    assert_eq!(buf[4..], payload[..]);
    assert_eq!(FRAME_HEADER_LEN, 4);
    // The limit applies to the payload length, not counting the header.
    let mut frame = (65536u32).to_le_bytes().to_vec();
    frame.resize(4 + 65536, 0);
    assert!(frame::parse(&frame, 65536).unwrap().is_some());
    assert!(frame::parse(&frame, 65535).is_err());
    // The refusal comes from the header alone.
    assert!(frame::parse(&(MAX_FRAME_HARD as u32 + 1).to_le_bytes(), MAX_FRAME_HARD).is_err());
    // A zero-length frame is a valid frame (whose empty payload no message decodes from).
    assert_eq!(frame::parse(&[0, 0, 0, 0], 16), Ok(Some((&[][..], 4))));
    assert!(decode::<ClientMsg>(&[]).is_err());
    assert_eq!(MAX_FRAME_HARD, 1 << 20);
    assert_eq!(DEFAULT_MAX_FRAME, 65536);
    assert_eq!(ALPN, b"milepost/2");
    assert_eq!(ALPN_V1, b"milepost/1");
    assert_eq!(PROTOCOL_VERSION, 2);
    assert_eq!(version_of_alpn(b"milepost/1"), Some(1));
    assert_eq!(version_of_alpn(b"milepost/3"), None);
}

/// Worst-case sizes quoted in the document.
#[test]
fn largest_fix_and_live_fix() {
    let worst = Fix {
        t_ms: i64::MIN,
        lat_e7: i32::MIN,
        lon_e7: i32::MIN,
        accuracy_m: 1.0,
        speed_mps: Some(1.0),
        heading_deg: Some(1.0),
        altitude_m: Some(1.0),
        battery_pct: Some(255),
        activity: Some(Activity::InVehicle),
        mock: true,
    };
    assert_eq!(enc(&worst).len(), 43);
    let dg = ClientDatagram::LiveFix {
        seq: Seq(u64::MAX),
        fix: worst,
    };
    assert_eq!(enc(&dg).len(), 53);
    assert_eq!(enc(&fix_minimal()).len(), 29);
}
