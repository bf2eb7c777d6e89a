//! The edges of the wire protocol a client written from PROTOCOL.md alone had to guess, each
//! answered in the spec and pinned here against an in-process gateway over real QUIC: a
//! session stream that ends mid-frame after its Hello; one finished (FIN) after the Welcome;
//! garbage instead of a Hello (the length is checked first); the seq window's bounds; an Ack
//! whose watermark is ahead of its own batch; the session stream's end after a
//! connection-level Error frame; fix batches sent before the Welcome arrives.

mod common;

use std::time::Duration;

use common::{fix, token};
use milepost::auth::Role;
use milepost::wire::{read_msg, write_msg};
use milepost_proto::{
    ClientMsg, DeviceInfo, ErrorCode, FixBatch, Hello, Seq, ServerMsg, PROTOCOL_VERSION,
};

fn hello(tok: String, subject: &str) -> ClientMsg {
    ClientMsg::Hello(Hello {
        version: PROTOCOL_VERSION,
        token: tok,
        subject: subject.into(),
        device: DeviceInfo::default(),
    })
}

fn batch(first: u64, n: usize) -> ClientMsg {
    ClientMsg::FixBatch(FixBatch {
        first_seq: Seq(first),
        fixes: (0..n).map(|i| fix(60_000 - i as i64 * 100, 0)).collect(),
    })
}

/// A raw connection with its session stream, the Hello of `token` for `subject` written.
async fn hello_sent(
    t: &common::TestGateway,
    tok: String,
    subject: &str,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let conn = t.connect().await;
    let (mut send, recv) = conn.open_bi().await.unwrap();
    write_msg(&mut send, &hello(tok, subject)).await.unwrap();
    (conn, send, recv)
}

async fn next(recv: &mut quinn::RecvStream) -> Option<ServerMsg> {
    tokio::time::timeout(Duration::from_secs(10), read_msg(recv, 1 << 20))
        .await
        .expect("an answer in time")
        .expect("a readable frame")
}

#[tokio::test]
async fn a_session_stream_that_ends_mid_frame_after_its_hello_is_a_protocol_violation() {
    let t = common::start().await;
    let (conn, mut send, mut recv) = hello_sent(&t, token(Role::Driver, "D1", "north"), "D1").await;
    assert!(matches!(next(&mut recv).await, Some(ServerMsg::Welcome(_))));
    // Half a frame, then FIN.
    send.write_all(&[40, 0, 0, 0, 1, 2]).await.unwrap();
    send.finish().unwrap();
    assert_eq!(
        common::close_code(&conn).await,
        Some(ErrorCode::ProtocolViolation)
    );
}

#[tokio::test]
async fn a_session_stream_finished_after_welcome_leaves_the_connection_usable() {
    let t = common::start().await;
    let (conn, mut send, mut recv) = hello_sent(&t, token(Role::Driver, "D1", "north"), "D1").await;
    assert!(matches!(next(&mut recv).await, Some(ServerMsg::Welcome(_))));
    write_msg(&mut send, &batch(1, 3)).await.unwrap();
    send.finish().unwrap();
    // The batch read before the FIN is answered, then the server finishes its side.
    assert!(matches!(next(&mut recv).await, Some(ServerMsg::Ack(a)) if a.count == 3));
    assert!(
        next(&mut recv).await.is_none(),
        "the server finished its side"
    );
    // The session lives on: a request stream still takes batches.
    let (mut send2, mut recv2) = conn.open_bi().await.unwrap();
    write_msg(&mut send2, &batch(4, 2)).await.unwrap();
    match next(&mut recv2).await {
        Some(ServerMsg::Ack(a)) => assert_eq!(a.watermark, Seq(5)),
        other => panic!("{other:?}"),
    }
    assert!(conn.close_reason().is_none());
}

#[tokio::test]
async fn garbage_instead_of_a_hello_is_refused_by_its_length_first() {
    let t = common::start().await;
    // Its first 4 bytes read as a 2 GiB length: refused before any payload is read.
    let conn = t.connect().await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(
        common::close_code(&conn).await,
        Some(ErrorCode::FrameTooLarge)
    );
    // A small length over bytes that do not decode as a Hello.
    let conn = t.connect().await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert_eq!(
        common::close_code(&conn).await,
        Some(ErrorCode::ProtocolViolation)
    );
}

#[tokio::test]
async fn the_seq_window_is_inclusive_and_bounds_a_batchs_first_and_last_seq() {
    let t = common::start_with(|c| c.limits.seq_window = 100).await;
    let mut d = t.driver("D1", "north").await;
    // Watermark 0: seqs 1..=100 are in the window.
    let refused = |r: Result<milepost_proto::Ack, milepost::client::ClientError>| {
        r.err().and_then(|e| e.code())
    };
    let one = |s: u64| vec![fix(1_000 + s as i64, 0)];
    assert_eq!(d.batch(Seq(100), one(100)).await.unwrap().count, 1);
    assert_eq!(
        refused(d.batch(Seq(101), one(101)).await),
        Some(ErrorCode::SeqOutOfWindow)
    );
    // First seq inside, last seq outside: refused as a whole (seq 100 is settled above the
    // watermark, which stays 0).
    assert_eq!(
        refused(
            d.batch(Seq(99), vec![fix(2_100, 0), fix(2_050, 0), fix(2_000, 0)])
                .await
        ),
        Some(ErrorCode::SeqOutOfWindow),
        "99..=101 ends outside"
    );
    assert_eq!(
        refused(d.batch(Seq(0), one(0)).await),
        Some(ErrorCode::SeqOutOfWindow),
        "seq 0 is never valid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_watermark_may_be_ahead_of_its_own_batch() {
    // The log writer waits 300 ms before committing: both pipelined batches are durable in
    // the same commit, and the first one's ack already covers the second.
    let t = common::start_with(|c| c.log.group_commit_linger_us = 300_000).await;
    let mut d = t.driver("D1", "north").await;
    let fixes = |from: i64| (from..from + 5).map(|i| fix(10_000 - i * 100, 0)).collect();
    d.send_batch(Seq(1), fixes(0)).await.unwrap();
    d.send_batch(Seq(6), fixes(5)).await.unwrap();
    match d.recv().await.unwrap() {
        ServerMsg::Ack(a) => {
            assert_eq!((a.first_seq, a.count), (Seq(1), 5));
            assert_eq!(a.watermark, Seq(10), "ahead of its batch (1..=5)");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(d.recv().await.unwrap(), ServerMsg::Ack(a) if a.first_seq == Seq(6)));
}

#[tokio::test]
async fn a_refused_hello_gets_an_error_frame_then_the_streams_end_then_the_close() {
    let t = common::start().await;
    let (conn, _send, mut recv) = hello_sent(&t, "not-a-token".into(), "D1").await;
    match next(&mut recv).await {
        Some(ServerMsg::Error(e)) => assert_eq!(e.code, ErrorCode::TokenInvalid),
        other => panic!("{other:?}"),
    }
    // After the Error frame the stream ends (or the connection is already closed: the close
    // code is what a client acts on).
    let after = tokio::time::timeout(
        Duration::from_secs(5),
        read_msg::<ServerMsg>(&mut recv, 1 << 20),
    )
    .await
    .expect("the stream ends");
    assert!(
        !matches!(after, Ok(Some(_))),
        "nothing after the Error frame"
    );
    assert_eq!(
        common::close_code(&conn).await,
        Some(ErrorCode::TokenInvalid)
    );
}

#[tokio::test]
async fn fix_batches_sent_before_the_welcome_are_answered_after_it() {
    let t = common::start().await;
    let conn = t.connect().await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    // Hello and two batches back to back, without waiting for the Welcome (what a resuming
    // phone does in 0-RTT).
    write_msg(&mut send, &hello(token(Role::Driver, "D1", "north"), "D1"))
        .await
        .unwrap();
    write_msg(&mut send, &batch(1, 3)).await.unwrap();
    write_msg(&mut send, &batch(4, 3)).await.unwrap();
    match next(&mut recv).await {
        Some(ServerMsg::Welcome(w)) => assert_eq!(w.watermark, Seq(0)),
        other => panic!("{other:?}"),
    }
    for first in [1, 4] {
        match next(&mut recv).await {
            Some(ServerMsg::Ack(a)) => assert_eq!((a.first_seq, a.count), (Seq(first), 3)),
            other => panic!("{other:?}"),
        }
    }
    // With a refused Hello, batches behind it are never read: nothing is settled.
    let (_conn, mut send, mut recv) =
        hello_sent(&t, token(Role::Driver, "D2", "north"), "D9").await;
    write_msg(&mut send, &batch(1, 3)).await.unwrap();
    assert!(
        matches!(next(&mut recv).await, Some(ServerMsg::Error(e)) if e.code == ErrorCode::OutOfScope)
    );
    let d2 = milepost_proto::DriverId("D2".into());
    let d9 = milepost_proto::DriverId("D9".into());
    let shared = t.gw.shared();
    assert_eq!(shared.ledger.watermark(&d2), Seq(0));
    assert_eq!(shared.ledger.watermark(&d9), Seq(0));
}
