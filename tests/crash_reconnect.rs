//! Phones learn of a gateway crash at once: the real `milepost` binary is killed with SIGKILL
//! under replayed drivers streaming at 1 fix/s and restarted on the same port and data
//! directory. The phones' next packets reach the new gateway, which no longer knows their
//! connections and answers with a stateless reset (its reset key and connection-ID key survive
//! the restart): every phone's connection must end by a reset, none by the 30 s idle timeout,
//! and every fix must be settled, none lost.

mod common;

use std::time::{Duration, Instant};

use milepost::replay::sim::replay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_every_phone_is_reset_at_once_not_timed_out() {
    const DRIVERS: u32 = 300;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = common::spawn_binary(dir.path(), "127.0.0.1:0", &[]);
    let mut cfg = common::replay_config(addr, dir.path().join("certs/ca.pem"), 1.0);
    cfg.drivers = DRIVERS;
    cfg.ramp = Duration::from_secs(3);
    cfg.warmup = Duration::from_millis(500);
    // Long enough after the restart for every phone to come back, far shorter than the idle
    // timeout (30 s), so a phone that was not reset shows as timed out or unsettled.
    cfg.duration = Duration::from_secs(12);
    cfg.drain = Duration::from_secs(10);
    cfg.reconnect_for = Duration::from_secs(60);
    let run = tokio::spawn(replay(
        cfg,
        vec![
            common::north_trace("a", -77.03),
            common::north_trace("b", -77.0),
        ],
    ));

    tokio::time::sleep(Duration::from_secs(6)).await;
    child.kill().unwrap(); // SIGKILL: no CONNECTION_CLOSE reaches any phone
    child.wait().unwrap();
    let listen = addr.to_string();
    let restarted = Instant::now();
    let (mut child, _) = common::spawn_binary(dir.path(), &listen, &[]);
    eprintln!("restarted, ready after {:?}", restarted.elapsed());

    let r = run.await.unwrap().unwrap();
    eprintln!("{}", r.table());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.drivers_failed, 0);
    assert_eq!(r.unsettled, 0, "every fix settled: {r:?}");
    assert_eq!(r.acked + r.rejected, r.sent);
    assert!(
        r.conn_lost >= DRIVERS as u64,
        "every phone saw the crash: {r:?}"
    );
    assert_eq!(
        r.conn_timed_out, 0,
        "no phone waited for its idle timeout: {r:?}"
    );
    assert_eq!(
        r.conn_reset, r.conn_lost,
        "every lost connection ended by a stateless reset: {r:?}"
    );
}
