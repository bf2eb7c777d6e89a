//! Limits and refusals, each tested: rate limit per driver, connections per subject, token
//! revocation without restart (also of a live session), Hello timeout, batch size, stream limit,
//! and stateless retry under a handshake flood.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{fix, start_with, token};
use milepost::auth::Role;
use milepost::client::Session;
use milepost_proto::{ErrorCode, Seq};

#[tokio::test]
async fn rate_limit_refuses_a_batch_and_settles_nothing() {
    let t = start_with(|c| {
        c.limits.max_fixes_per_s = 1;
        c.limits.burst_fixes = 3;
    })
    .await;
    let mut d = t.driver("D1", "north").await;
    d.batch(Seq(1), vec![fix(3_000, 0), fix(2_000, 0)])
        .await
        .unwrap();
    let err = d
        .batch(Seq(3), vec![fix(1_000, 0), fix(900, 0)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    assert_eq!(t.gw.shared().stats.rate_limited.load(Ordering::Relaxed), 1);
    // Nothing of the refused batch was settled: the watermark still says 2.
    let ack = d.batch(Seq(3), vec![fix(800, 0)]).await.unwrap();
    assert_eq!((ack.duplicates, ack.watermark), (0, Seq(3)));
}

#[tokio::test]
async fn connections_per_subject_are_limited() {
    let t = start_with(|c| c.limits.max_connections_per_subject = 2).await;
    let a = t.driver("D1", "north").await;
    let _b = t.driver("D1", "north").await;
    let err = t
        .session_as(Role::Driver, "D1", "D1", "north")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(ErrorCode::TooManyConnections), "{err}");
    // Another driver is not affected; and a slot frees when a connection ends.
    let _c = t.driver("D2", "north").await;
    a.close();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _d = t.driver("D1", "north").await;
}

#[tokio::test]
async fn revocation_takes_effect_without_restart() {
    let t = start_with(|_| {}).await;
    let mut live = t.driver("D1", "north").await;
    live.batch(Seq(1), vec![fix(1_000, 0)]).await.unwrap();
    let other_token = token(Role::Driver, "D2", "north");
    std::fs::write(
        t.dir.path().join("revoked.txt"),
        format!(
            "driver:D1\n{}\n",
            milepost::server::guard::fingerprint(&other_token)
        ),
    )
    .unwrap();
    // The live session is closed with TokenRevoked within the reload period.
    assert_eq!(
        common::close_code(&live.conn).await,
        Some(ErrorCode::TokenRevoked)
    );
    // New sessions are refused, by subject and by token fingerprint.
    let err = t
        .session_as(Role::Driver, "D1", "D1", "north")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(ErrorCode::TokenRevoked), "{err}");
    let err = t.open(&other_token, "D2").await.err().unwrap();
    assert_eq!(err.code(), Some(ErrorCode::TokenRevoked), "{err}");
    // A fresh token for D2 still works: only that one token was revoked.
    let _ok = t.driver("D2", "north").await;
}

#[tokio::test]
async fn a_silent_client_gets_hello_timeout() {
    let t = start_with(|c| c.limits.handshake_timeout_s = 1).await;
    let conn = t.connect().await;
    assert_eq!(
        common::close_code(&conn).await,
        Some(ErrorCode::HelloTimeout)
    );
}

#[tokio::test]
async fn batch_size_is_limited() {
    let t = start_with(|c| c.limits.max_batch = 3).await;
    let mut d = t.driver("D1", "north").await;
    assert_eq!(d.welcome.limits.max_batch, 3);
    let err = d
        .batch(Seq(1), (0..4).map(|i| fix(5_000 - i * 100, 0)).collect())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadBatchSize));
    assert_eq!(d.batch(Seq(1), vec![fix(100, 0)]).await.unwrap().count, 1);
}

#[tokio::test]
async fn streams_per_connection_are_limited() {
    let t = start_with(|c| c.limits.max_streams = 2).await;
    let d = t.driver("D1", "north").await;
    // The session stream is one of the two; one more opens, a third waits for credit.
    let (mut s2, _r2) = d.conn.open_bi().await.unwrap();
    s2.write_all(&[0]).await.unwrap();
    let third = tokio::time::timeout(Duration::from_millis(500), d.conn.open_bi()).await;
    assert!(
        third.is_err(),
        "a third stream must wait for the peer's stream credit"
    );
}

#[tokio::test]
async fn handshake_flood_turns_on_stateless_retry() {
    let t = start_with(|c| c.limits.retry_above_handshakes_per_s = 0).await;
    // Every new client is sent a retry first; quinn clients follow it transparently.
    let mut d = t.driver("D1", "north").await;
    assert_eq!(d.batch(Seq(1), vec![fix(100, 0)]).await.unwrap().count, 1);
    assert!(t.gw.shared().stats.retries.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_session_ends_when_its_token_expires() {
    let t = start_with(|_| {}).await;
    let conn = t.connect().await;
    let now = common::now_s();
    let secret = common::SECRET.as_bytes();
    let tok = common::mint(secret, Role::Driver, "D1", "north", now + 2, now);
    let s = Session::open(conn, &tok, "D1", Default::default())
        .await
        .unwrap();
    assert_eq!(
        common::close_code(&s.conn).await,
        Some(ErrorCode::TokenExpired)
    );
}
