//! Property tests of the codec and the framing:
//!
//! - arbitrary `ClientMsg`, `ServerMsg` and `ClientDatagram` values (every variant: sessions,
//!   batches, queries, commands with routes and outcomes, subscriptions, feed frames, pushes)
//!   round-trip through `encode`/`decode` and through `encode_into` + `frame::parse`, however
//!   the byte stream is cut;
//! - arbitrary or corrupted bytes never make `decode` or `frame::parse` panic;
//! - every truncation of a valid encoding is an error (never a panic, never another message),
//!   and every truncation of a frame is "need more bytes".
//!
//! Floats are generated over all bit patterns' classes (NaN, infinities, subnormals, -0.0), so
//! values are compared by their Debug text *and* by re-encoding: NaN != NaN under `PartialEq`,
//! and re-encoding is bit-exact where Debug is not.

use std::fmt::Debug;

use milepost_proto::frame::{self, FrameError};
use milepost_proto::route::{
    DeliveryChange, DispatchEvent, DispatchUpdate, DriverEvent, DriverUpdate, FailureReason,
    MessageFrom, Outcome, Parcel, ParcelEvent, ParcelState, ParcelStatus, ParcelUpdate, Point,
    Proof, ProofSummary, Route, Stop, TimeWindow, Update,
};
use milepost_proto::*;
use proptest::collection::vec;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

// ---------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------

fn arb_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => any::<f32>(),
        1 => any::<u32>().prop_map(f32::from_bits), // every bit pattern, signalling NaNs too
        1 => prop_oneof![
            Just(0.0f32),
            Just(-0.0f32),
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            Just(f32::MIN_POSITIVE),
        ],
    ]
}

/// Integers biased towards the varint boundaries.
fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..300,
        prop_oneof![
            Just(250u64),
            Just(251),
            Just(65535),
            Just(65536),
            Just(u32::MAX as u64),
            Just(1 << 32),
            Just(u64::MAX),
        ],
        (0u32..64).prop_map(|s| 1u64 << s),
    ]
}

fn arb_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        0u32..300,
        prop_oneof![
            Just(250u32),
            Just(251),
            Just(65535),
            Just(65536),
            Just(u32::MAX)
        ],
    ]
}

fn arb_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        any::<i32>(),
        -130i32..130,
        -900_000_000i32..=900_000_000,
        prop_oneof![Just(i32::MIN), Just(i32::MAX), Just(-126), Just(125)],
    ]
}

fn arb_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        -130i64..130,
        1_600_000_000_000i64..1_900_000_000_000,
        prop_oneof![Just(i64::MIN), Just(i64::MAX)],
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        "[a-z0-9-]{0,8}",
        (0usize..400).prop_map(|n| "x".repeat(n)), // lengths across the 251 boundary
    ]
}

fn arb_seq() -> impl Strategy<Value = Seq> {
    arb_u64().prop_map(Seq)
}

fn arb_activity() -> impl Strategy<Value = Activity> {
    prop_oneof![
        Just(Activity::Unknown),
        Just(Activity::Still),
        Just(Activity::Walking),
        Just(Activity::Running),
        Just(Activity::Cycling),
        Just(Activity::InVehicle),
    ]
}

fn arb_fix() -> BoxedStrategy<Fix> {
    ((
        arb_i64(),
        arb_i32(),
        arb_i32(),
        arb_f32(),
        proptest::option::of(arb_f32()),
        proptest::option::of(arb_f32()),
        proptest::option::of(arb_f32()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(arb_activity()),
        any::<bool>(),
    )
        .prop_map(
            |(
                t_ms,
                lat_e7,
                lon_e7,
                accuracy_m,
                speed,
                heading,
                altitude,
                battery,
                activity,
                mock,
            )| {
                Fix {
                    t_ms,
                    lat_e7,
                    lon_e7,
                    accuracy_m,
                    speed_mps: speed,
                    heading_deg: heading,
                    altitude_m: altitude,
                    battery_pct: battery,
                    activity,
                    mock,
                }
            },
        ))
    .boxed()
}

fn arb_hello() -> BoxedStrategy<Hello> {
    ((
        any::<u16>(),
        arb_string(),
        arb_string(),
        arb_string(),
        arb_string(),
        arb_string(),
    )
        .prop_map(|(version, token, subject, device_id, app, os)| Hello {
            version,
            token,
            subject,
            device: DeviceInfo { device_id, app, os },
        }))
    .boxed()
}

fn arb_query_kind() -> BoxedStrategy<QueryKind> {
    (prop_oneof![
        (arb_i32(), arb_i32(), arb_i32(), arb_i32()).prop_map(|(a, b, c, d)| QueryKind::Within {
            min_lat_e7: a,
            min_lon_e7: b,
            max_lat_e7: c,
            max_lon_e7: d,
        }),
        (arb_i32(), arb_i32(), arb_f32()).prop_map(|(lat_e7, lon_e7, radius_m)| {
            QueryKind::Nearby {
                lat_e7,
                lon_e7,
                radius_m,
            }
        }),
        (arb_i32(), arb_i32(), arb_u32()).prop_map(|(lat_e7, lon_e7, k)| QueryKind::Nearest {
            lat_e7,
            lon_e7,
            k
        }),
    ])
    .boxed()
}

// Routes, outcomes, updates (the payloads of commands, feeds and pushes).

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -180.0f64..180.0,
        1 => any::<u64>().prop_map(f64::from_bits),
        1 => prop_oneof![Just(0.0f64), Just(-0.0f64), Just(f64::NAN), Just(f64::INFINITY)],
    ]
}

fn arb_point() -> impl Strategy<Value = Point> {
    (arb_f64(), arb_f64()).prop_map(|(lat, lon)| Point { lat, lon })
}

fn arb_window() -> impl Strategy<Value = TimeWindow> {
    (arb_i64(), arb_i64()).prop_map(|(start_ms, end_ms)| TimeWindow { start_ms, end_ms })
}

fn arb_opt_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(arb_string())
}

fn arb_stop() -> BoxedStrategy<Stop> {
    ((
        (
            arb_string(),
            arb_f64(),
            arb_f64(),
            proptest::option::of(arb_f64()),
        ),
        vec(
            (arb_string(), arb_opt_string()).prop_map(|(t, otp)| Parcel {
                tracking: t.as_str().into(),
                otp,
            }),
            0..3,
        ),
        proptest::option::of(arb_window()),
        proptest::option::of(arb_u32()),
        proptest::option::of(arb_i64()),
        vec(arb_point(), 0..3),
        arb_string(),
        any::<bool>(),
    )
        .prop_map(
            |(
                (id, lat, lon, radius_m),
                parcels,
                window,
                service_s,
                planned_arrival_ms,
                path,
                instructions,
                otp_required,
            )| Stop {
                id: id.as_str().into(),
                lat,
                lon,
                radius_m,
                parcels,
                window,
                service_s,
                planned_arrival_ms,
                path,
                instructions,
                otp_required,
            },
        ))
    .boxed()
}

fn arb_route() -> BoxedStrategy<Route> {
    ((
        arb_string(),
        arb_string(),
        arb_string(),
        arb_i64(),
        proptest::option::of(arb_point()),
        vec(arb_stop(), 0..3),
    )
        .prop_map(
            |(id, depot, driver, planned_start_ms, start, stops)| Route {
                id: id.as_str().into(),
                depot: depot.as_str().into(),
                driver: DriverId(driver),
                planned_start_ms,
                start,
                stops,
            },
        ))
    .boxed()
}

fn arb_failure_reason() -> impl Strategy<Value = FailureReason> {
    proptest::sample::select(FailureReason::ALL.to_vec())
}

fn arb_outcome() -> BoxedStrategy<Outcome> {
    (prop_oneof![
        (arb_opt_string(), arb_opt_string(), arb_opt_string()).prop_map(
            |(photo_sha256, signature_sha256, otp)| Outcome::Delivered {
                proof: Proof {
                    photo_sha256,
                    signature_sha256,
                    otp,
                },
            }
        ),
        (arb_failure_reason(), arb_string())
            .prop_map(|(reason, note)| Outcome::Failed { reason, note }),
        arb_string().prop_map(|note| Outcome::Returned { note }),
        (
            arb_opt_string(),
            arb_opt_string(),
            arb_opt_string(),
            arb_string()
        )
            .prop_map(|(photo_sha256, signature_sha256, otp, received_by)| {
                Outcome::DeliveredTo {
                    proof: Proof {
                        photo_sha256,
                        signature_sha256,
                        otp,
                    },
                    received_by,
                }
            }),
    ])
    .boxed()
}

fn arb_change() -> BoxedStrategy<DeliveryChange> {
    (prop_oneof![
        (arb_i64(), arb_i64()).prop_map(|(start_ms, end_ms)| DeliveryChange::Reschedule {
            window: TimeWindow { start_ms, end_ms }
        }),
        (arb_string(), arb_string())
            .prop_map(|(name, address)| DeliveryChange::Neighbour { name, address }),
        (arb_string(), arb_string())
            .prop_map(|(id, name)| DeliveryChange::PickupPoint { id, name }),
        arb_string().prop_map(|place| DeliveryChange::SafePlace { place }),
    ])
    .boxed()
}

fn arb_parcel_event() -> BoxedStrategy<ParcelEvent> {
    (prop_oneof![
        Just(ParcelEvent::OutForDelivery),
        arb_u32().prop_map(|n| ParcelEvent::StopsAway { n }),
        (arb_i64(), arb_i64(), arb_i64()).prop_map(|(eta_ms, earliest_ms, latest_ms)| {
            ParcelEvent::EtaChanged {
                eta_ms,
                earliest_ms,
                latest_ms,
            }
        }),
        Just(ParcelEvent::ArrivingSoon),
        Just(ParcelEvent::Arrived),
        (arb_opt_string(), arb_opt_string(), any::<bool>(), arb_i64()).prop_map(
            |(photo_sha256, signature_sha256, otp_verified, at_ms)| ParcelEvent::Delivered {
                proof: ProofSummary {
                    photo_sha256,
                    signature_sha256,
                    otp_verified,
                },
                at_ms,
            }
        ),
        (arb_failure_reason(), arb_string())
            .prop_map(|(reason, note)| ParcelEvent::Failed { reason, note }),
        (arb_i64(), arb_i64()).prop_map(|(eta_ms, window_end_ms)| ParcelEvent::Delayed {
            eta_ms,
            window_end_ms
        }),
        arb_string().prop_map(|note| ParcelEvent::Returned { note }),
        (
            arb_opt_string(),
            arb_opt_string(),
            any::<bool>(),
            arb_i64(),
            arb_string()
        )
            .prop_map(
                |(photo_sha256, signature_sha256, otp_verified, at_ms, received_by)| {
                    ParcelEvent::DeliveredTo {
                        proof: ProofSummary {
                            photo_sha256,
                            signature_sha256,
                            otp_verified,
                        },
                        at_ms,
                        received_by,
                    }
                }
            ),
        arb_change().prop_map(|change| ParcelEvent::DeliveryChanged { change }),
        (any::<bool>(), arb_string(), arb_i64()).prop_map(|(d, text, at_ms)| {
            ParcelEvent::Message {
                from: if d {
                    MessageFrom::Driver
                } else {
                    MessageFrom::Recipient
                },
                text,
                at_ms,
            }
        }),
    ])
    .boxed()
}

fn arb_parcel_update() -> BoxedStrategy<ParcelUpdate> {
    ((arb_string(), arb_i64(), arb_parcel_event()).prop_map(|(t, fix_t_ms, kind)| ParcelUpdate {
        tracking: t.as_str().into(),
        fix_t_ms,
        kind,
    }))
    .boxed()
}

fn arb_dispatch_event() -> BoxedStrategy<DispatchEvent> {
    (prop_oneof![
        Just(DispatchEvent::RouteStarted),
        (arb_u32(), arb_u32())
            .prop_map(|(delivered, failed)| DispatchEvent::RouteFinished { delivered, failed }),
        (arb_u32(), any::<bool>())
            .prop_map(|(idle_s, no_fix)| DispatchEvent::DriverStalled { idle_s, no_fix }),
        (arb_string(), arb_u32()).prop_map(|(s, minutes)| DispatchEvent::RunningLate {
            stop: s.as_str().into(),
            minutes
        }),
        (arb_string(), arb_failure_reason()).prop_map(|(s, reason)| {
            DispatchEvent::AttemptFailed {
                stop: s.as_str().into(),
                reason,
            }
        }),
        arb_f32().prop_map(|distance_m| DispatchEvent::OffRoute { distance_m }),
        Just(DispatchEvent::BackOnRoute),
        (arb_string(), arb_i64()).prop_map(|(s, at_ms)| DispatchEvent::StopArrived {
            stop: s.as_str().into(),
            at_ms
        }),
        (arb_string(), arb_u32()).prop_map(|(s, dwell_s)| DispatchEvent::StopDeparted {
            stop: s.as_str().into(),
            dwell_s
        }),
        arb_string().prop_map(|s| DispatchEvent::StopPassed {
            stop: s.as_str().into()
        }),
        Just(DispatchEvent::DriverMoving),
    ])
    .boxed()
}

fn arb_driver_update() -> BoxedStrategy<DriverUpdate> {
    let kind = prop_oneof![
        Just(DriverEvent::RouteAssigned),
        vec(arb_string(), 0..4).prop_map(|o| DriverEvent::Resequenced {
            order: o.iter().map(|s| s.as_str().into()).collect()
        }),
        (arb_string(), arb_string(), arb_string()).prop_map(|(s, t, text)| {
            DriverEvent::Instructions {
                stop: s.as_str().into(),
                tracking: t.as_str().into(),
                text,
            }
        }),
        (arb_string(), arb_string(), arb_string(), arb_i64()).prop_map(|(s, t, text, at_ms)| {
            DriverEvent::Message {
                stop: s.as_str().into(),
                tracking: t.as_str().into(),
                text,
                at_ms,
            }
        }),
        (arb_string(), arb_string(), arb_change()).prop_map(|(s, t, change)| {
            DriverEvent::DeliveryChanged {
                stop: s.as_str().into(),
                tracking: t.as_str().into(),
                change,
            }
        }),
    ];
    ((arb_string(), arb_string(), kind).prop_map(|(d, r, kind)| DriverUpdate {
        driver: DriverId(d),
        route_id: r.as_str().into(),
        kind,
    }))
    .boxed()
}

fn arb_update() -> BoxedStrategy<Update> {
    (prop_oneof![
        arb_parcel_update().prop_map(Update::Parcel),
        (arb_string(), arb_string(), arb_i64(), arb_dispatch_event()).prop_map(
            |(r, d, fix_t_ms, kind)| Update::Dispatch(DispatchUpdate {
                route_id: r.as_str().into(),
                driver: DriverId(d),
                fix_t_ms,
                kind,
            })
        ),
        arb_driver_update().prop_map(Update::Driver),
    ])
    .boxed()
}

fn arb_parcel_status() -> BoxedStrategy<ParcelStatus> {
    ((
        (arb_string(), arb_string(), arb_string()),
        proptest::sample::select(vec![
            ParcelState::Planned,
            ParcelState::OutForDelivery,
            ParcelState::ArrivingSoon,
            ParcelState::Arrived,
            ParcelState::Delivered,
            ParcelState::Failed,
        ]),
        proptest::option::of(arb_u32()),
        (
            proptest::option::of(arb_i64()),
            proptest::option::of(arb_i64()),
            proptest::option::of(arb_i64()),
        ),
        proptest::option::of(arb_window()),
        proptest::option::of(arb_parcel_update()),
    )
        .prop_map(
            |(
                (t, r, s),
                state,
                stops_away,
                (eta_ms, earliest_ms, latest_ms),
                window,
                last_event,
            )| {
                ParcelStatus {
                    tracking: t.as_str().into(),
                    route_id: r.as_str().into(),
                    stop: s.as_str().into(),
                    state,
                    stops_away,
                    eta_ms,
                    earliest_ms,
                    latest_ms,
                    window,
                    last_event,
                }
            },
        ))
    .boxed()
}

fn arb_command_kind() -> BoxedStrategy<CommandKind> {
    (prop_oneof![
        arb_route().prop_map(CommandKind::AssignRoute),
        (arb_string(), vec(arb_string(), 0..4)).prop_map(|(r, o)| CommandKind::Resequence {
            route_id: r.as_str().into(),
            order: o.iter().map(|s| s.as_str().into()).collect(),
        }),
        (arb_string(), arb_opt_string(), arb_outcome()).prop_map(|(s, t, outcome)| {
            CommandKind::ReportOutcome {
                stop: s.as_str().into(),
                tracking: t.map(|t| t.as_str().into()),
                outcome,
            }
        }),
        (arb_string(), arb_string()).prop_map(|(t, text)| CommandKind::SetInstructions {
            tracking: t.as_str().into(),
            text,
        }),
        arb_string().prop_map(|t| CommandKind::ParcelStatus {
            tracking: t.as_str().into()
        }),
        (arb_string(), arb_string()).prop_map(|(t, text)| CommandKind::SendMessage {
            tracking: t.as_str().into(),
            text,
        }),
        (arb_string(), arb_change()).prop_map(|(t, change)| CommandKind::ChangeDelivery {
            tracking: t.as_str().into(),
            change,
        }),
        arb_string().prop_map(|r| CommandKind::GetRoute {
            route_id: r.as_str().into()
        }),
    ])
    .boxed()
}

fn arb_feed_target() -> BoxedStrategy<FeedTarget> {
    (prop_oneof![
        arb_string().prop_map(|t| FeedTarget::Parcel(t.as_str().into())),
        Just(FeedTarget::Depot),
        (arb_i32(), arb_i32(), arb_i32(), arb_i32()).prop_map(|(a, b, c, d)| FeedTarget::Area {
            min_lat_e7: a,
            min_lon_e7: b,
            max_lat_e7: c,
            max_lon_e7: d,
        }),
    ])
    .boxed()
}

fn arb_client_msg() -> BoxedStrategy<ClientMsg> {
    (prop_oneof![
        arb_hello().prop_map(ClientMsg::Hello),
        (arb_seq(), vec(arb_fix(), 0..6))
            .prop_map(|(first_seq, fixes)| ClientMsg::FixBatch(FixBatch { first_seq, fixes })),
        (arb_u32(), arb_query_kind()).prop_map(|(id, kind)| ClientMsg::Query(Query { id, kind })),
        (arb_u32(), arb_command_kind())
            .prop_map(|(id, kind)| ClientMsg::Command(Command { id, kind })),
        (arb_feed_target(), proptest::option::of(arb_u64()))
            .prop_map(|(target, after)| ClientMsg::Subscribe(Subscribe { target, after })),
        (arb_u32(), arb_string(), arb_u64())
            .prop_map(|(id, sha256, size)| ClientMsg::Upload(Upload { id, sha256, size })),
    ])
    .boxed()
}

fn arb_error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

fn arb_reject_reason() -> impl Strategy<Value = RejectReason> {
    proptest::sample::select(RejectReason::ALL.to_vec())
}

fn arb_driver_position() -> BoxedStrategy<DriverPosition> {
    ((arb_string(), arb_seq(), arb_fix(), arb_f32()).prop_map(|(driver, seq, fix, distance_m)| {
        DriverPosition {
            driver: DriverId(driver),
            seq,
            fix,
            distance_m,
        }
    }))
    .boxed()
}

fn arb_server_msg() -> BoxedStrategy<ServerMsg> {
    (prop_oneof![
        (arb_i64(), arb_u32(), arb_u32(), arb_u32(), arb_seq()).prop_map(
            |(server_time_ms, max_frame, max_batch, max_fixes_per_s, watermark)| {
                ServerMsg::Welcome(Welcome {
                    server_time_ms,
                    limits: Limits {
                        max_frame,
                        max_batch,
                        max_fixes_per_s,
                    },
                    watermark,
                })
            }
        ),
        (
            arb_seq(),
            arb_u32(),
            arb_u32(),
            vec(
                (arb_seq(), arb_reject_reason())
                    .prop_map(|(seq, reason)| Rejection { seq, reason }),
                0..6
            ),
            arb_seq()
        )
            .prop_map(|(first_seq, count, duplicates, rejected, watermark)| {
                ServerMsg::Ack(Ack {
                    first_seq,
                    count,
                    duplicates,
                    rejected,
                    watermark,
                })
            }),
        (arb_error_code(), arb_string())
            .prop_map(|(code, message)| ServerMsg::Error(ErrorFrame { code, message })),
        (arb_u32(), vec(arb_driver_position(), 0..5), any::<bool>()).prop_map(
            |(id, drivers, truncated)| ServerMsg::QueryResult(QueryResult {
                id,
                drivers,
                truncated
            })
        ),
        arb_u32().prop_map(|id| ServerMsg::Done { id }),
        (arb_u32(), arb_parcel_status())
            .prop_map(|(id, status)| ServerMsg::ParcelStatus { id, status }),
        arb_driver_update().prop_map(ServerMsg::Push),
        (
            arb_u64(),
            proptest::option::of(arb_parcel_status()),
            vec(arb_driver_position(), 0..3)
        )
            .prop_map(|(offset, parcel, positions)| {
                ServerMsg::FeedSnapshot(FeedSnapshot {
                    offset,
                    parcel,
                    positions,
                })
            }),
        (arb_u64(), arb_update())
            .prop_map(|(offset, update)| ServerMsg::FeedEvent { offset, update }),
        arb_driver_position().prop_map(ServerMsg::FeedPosition),
        Just(ServerMsg::FeedResync),
    ])
    .boxed()
}

fn arb_datagram() -> impl Strategy<Value = ClientDatagram> {
    (arb_seq(), arb_fix()).prop_map(|(seq, fix)| ClientDatagram::LiveFix { seq, fix })
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the three message types.
// ---------------------------------------------------------------------------------------------

/// `decode(encode(v))` is `v` (by Debug text and bit-exact re-encoding).
fn check_roundtrip<T>(v: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + Debug,
{
    let bytes = encode(v).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T = decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e} for {v:?}")))?;
    prop_assert_eq!(format!("{back:?}"), format!("{v:?}"));
    prop_assert_eq!(encode(&back).unwrap(), bytes);
    Ok(())
}

/// Every proper prefix of the encoding is an error; one extra byte is an error too.
fn check_truncations<T>(v: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + Debug,
{
    let bytes = encode(v).unwrap();
    for cut in 0..bytes.len() {
        let r = decode::<T>(&bytes[..cut]);
        prop_assert!(
            r.is_err(),
            "prefix of {} of {} bytes decoded to {:?}",
            cut,
            bytes.len(),
            r
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    prop_assert!(matches!(
        decode::<T>(&longer),
        Err(CodecError::TrailingBytes(1))
    ));
    Ok(())
}

/// Frames of `msgs` concatenated in one buffer parse back to the same messages, and every cut of
/// the buffer yields the whole frames before the cut and "need more bytes" after.
fn check_frames<T>(msgs: &[T], cut: prop::sample::Index) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + Debug,
{
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    for m in msgs {
        encode_into(m, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        ends.push(buf.len());
    }
    // Parse everything back.
    let mut at = 0;
    for (m, &end) in msgs.iter().zip(&ends) {
        let (payload, used) = frame::parse(&buf[at..], MAX_FRAME_HARD)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .ok_or_else(|| TestCaseError::fail("whole frame reported incomplete"))?;
        prop_assert_eq!(at + used, end);
        prop_assert_eq!(used, FRAME_HEADER_LEN + payload.len());
        prop_assert_eq!(payload, &encode(m).unwrap()[..]);
        let back: T = decode(payload).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(format!("{back:?}"), format!("{m:?}"));
        at += used;
    }
    prop_assert_eq!(frame::parse(&buf[at..], MAX_FRAME_HARD), Ok(None));
    // Cut the stream anywhere: the frame the cut falls in is incomplete.
    if !buf.is_empty() {
        let cut = cut.index(buf.len());
        let start = std::iter::once(0)
            .chain(ends.iter().copied())
            .take_while(|&e| e <= cut)
            .last()
            .unwrap();
        prop_assert_eq!(frame::parse(&buf[start..cut], MAX_FRAME_HARD), Ok(None));
    }
    // A limit below a frame's payload length refuses it from the header alone.
    if let Some(first_end) = ends.first() {
        let len = first_end - FRAME_HEADER_LEN;
        if len > 0 {
            prop_assert_eq!(
                frame::parse(&buf[..FRAME_HEADER_LEN], len - 1),
                Err(FrameError::TooLarge { len, max: len - 1 })
            );
        }
    }
    Ok(())
}

/// Decoding arbitrary bytes as every protocol type returns (Ok or Err) without panicking.
fn decode_everything(bytes: &[u8]) {
    let _ = decode::<ClientMsg>(bytes);
    let _ = decode::<ServerMsg>(bytes);
    let _ = decode::<ClientDatagram>(bytes);
    let _ = decode::<Fix>(bytes);
    let _ = decode::<milepost_proto::route::Update>(bytes);
    let _ = decode::<milepost_proto::route::Route>(bytes);
    let _ = decode::<Outcome>(bytes);
    let _ = decode::<ParcelStatus>(bytes);
}

// ---------------------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_msg_roundtrips(m in arb_client_msg()) {
        check_roundtrip(&m)?;
    }

    #[test]
    fn server_msg_roundtrips(m in arb_server_msg()) {
        check_roundtrip(&m)?;
    }

    #[test]
    fn datagram_roundtrips(d in arb_datagram()) {
        check_roundtrip(&d)?;
    }

    #[test]
    fn fix_roundtrips_and_is_13_to_43_bytes(f in arb_fix()) {
        check_roundtrip(&f)?;
        let n = encode(&f).unwrap().len();
        prop_assert!((13..=43).contains(&n), "{} bytes", n);
    }

    #[test]
    fn client_frames_roundtrip(ms in vec(arb_client_msg(), 0..5), cut in any::<prop::sample::Index>()) {
        check_frames(&ms, cut)?;
    }

    #[test]
    fn server_frames_roundtrip(ms in vec(arb_server_msg(), 0..5), cut in any::<prop::sample::Index>()) {
        check_frames(&ms, cut)?;
    }

    #[test]
    fn client_msg_truncations_are_errors(m in arb_client_msg()) {
        check_truncations(&m)?;
    }

    #[test]
    fn server_msg_truncations_are_errors(m in arb_server_msg()) {
        check_truncations(&m)?;
    }

    #[test]
    fn datagram_truncations_are_errors(d in arb_datagram()) {
        check_truncations(&d)?;
    }

    #[test]
    fn truncated_frames_need_more_bytes(m in arb_client_msg()) {
        let mut buf = Vec::new();
        encode_into(&m, &mut buf).unwrap();
        for cut in 0..buf.len() {
            prop_assert_eq!(frame::parse(&buf[..cut], MAX_FRAME_HARD), Ok(None));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        decode_everything(&bytes);
    }

    /// Bytes that start like a real message (a valid variant index, then plausible structure)
    /// reach deeper into the decoders than uniformly random bytes.
    #[test]
    fn arbitrary_bytes_after_a_variant_index_never_panic(
        index in 0u8..12,
        rest in vec(prop_oneof![any::<u8>(), Just(0u8), Just(1u8), Just(0xfbu8), Just(0xfcu8), Just(0xfdu8)], 0..120),
    ) {
        let mut bytes = vec![index];
        bytes.extend_from_slice(&rest);
        decode_everything(&bytes);
    }

    #[test]
    fn arbitrary_frames_never_panic(bytes in vec(any::<u8>(), 0..64), max in prop_oneof![Just(MAX_FRAME_HARD), 0usize..80]) {
        match frame::parse(&bytes, max) {
            Ok(Some((payload, used))) => {
                prop_assert!(used <= bytes.len());
                prop_assert!(payload.len() <= max);
                prop_assert_eq!(used, FRAME_HEADER_LEN + payload.len());
                decode_everything(payload);
            }
            Ok(None) => {}
            Err(FrameError::TooLarge { len, max: m }) => {
                prop_assert_eq!(m, max);
                prop_assert!(len > max);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Corrupting one or more bytes of a valid encoding never panics; when the result still
    /// decodes, it is a message whose own encoding decodes to itself.
    #[test]
    fn corrupted_client_msgs_never_panic(
        m in arb_client_msg(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&m).unwrap();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        decode_everything(&bytes);
        if let Ok(other) = decode::<ClientMsg>(&bytes) {
            check_roundtrip(&other)?;
        }
    }

    #[test]
    fn corrupted_server_msgs_never_panic(
        m in arb_server_msg(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&m).unwrap();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        decode_everything(&bytes);
        if let Ok(other) = decode::<ServerMsg>(&bytes) {
            check_roundtrip(&other)?;
        }
    }

    #[test]
    fn corrupted_datagrams_never_panic(
        d in arb_datagram(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&d).unwrap();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        decode_everything(&bytes);
        if let Ok(other) = decode::<ClientDatagram>(&bytes) {
            check_roundtrip(&other)?;
        }
    }
}

/// A hostile length inside a message (string or vector) is refused without allocating it: the
/// decoder is bounded by the hard frame limit.
#[test]
fn hostile_lengths_are_refused() {
    // Hello with a token length of 2^32 - 1.
    let bytes = [0x00, 0x01, 0xfc, 0xff, 0xff, 0xff, 0xff];
    assert!(decode::<ClientMsg>(&bytes).is_err());
    // QueryResult with 2^64 - 1 drivers.
    let mut bytes = vec![0x03, 0x01, 0xfd];
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(decode::<ServerMsg>(&bytes).is_err());
    // Ack with 2^32 rejections.
    let mut bytes = vec![0x01, 0x01, 0x01, 0x00, 0xfd];
    bytes.extend_from_slice(&(1u64 << 32).to_le_bytes());
    assert!(decode::<ServerMsg>(&bytes).is_err());
    // Resequence with 2^64 - 1 stop ids.
    let mut bytes = vec![0x03, 0x01, 0x01, 0x01, b'R', 0xfd];
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(decode::<ClientMsg>(&bytes).is_err());
    // FeedSnapshot with 2^32 - 1 positions.
    let bytes = [0x07, 0x00, 0x00, 0xfc, 0xff, 0xff, 0xff, 0xff];
    assert!(decode::<ServerMsg>(&bytes).is_err());
}
