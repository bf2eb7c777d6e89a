//! Interop test: the independent Python client (`clients/python/milepost_client.py`, written
//! from `proto/PROTOCOL.md` alone on aioquic) against an in-process gateway on 127.0.0.1:0.
//!
//! The Python interpreter comes from `MILEPOST_PYTHON` (a python with aioquic installed, e.g.
//! the one `clients/python/setup-venv.sh` prints). Without it the test falls back to `python3`
//! if that imports aioquic, and otherwise prints "skipped: ..." and passes.
//!
//! The scenario (see `run_scenario` in the client): Hello as a driver, a batch of 3 valid fixes,
//! a batch with a null-island fix, a resend of the first batch (duplicates), a batch on a second
//! request stream, a live datagram acked on the server-opened ack stream, then a forged token
//! (TokenInvalid = 3) and a driver token claiming another subject (OutOfScope = 6), and a
//! dispatcher `Nearest` query. The script prints one JSON object; this test asserts on it and
//! on the gateway's counters.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use milepost::auth::{Claims, Role, TokenKey};
use milepost::config::Config;
use milepost::server::Gateway;
use serde_json::{json, Value};

/// The gateway's token secret for this test.
const SECRET: &str = "python-client-test-secret-0123456789";

/// Current time, Unix seconds.
fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims for `role`/`sub`/`depot`, valid for an hour.
fn claims(role: Role, sub: &str, depot: &str) -> Claims {
    Claims {
        role,
        sub: sub.into(),
        depot: depot.into(),
        exp: now_s() + 3600,
        iat: now_s(),
        carrier: None,
    }
}

/// The Python to run, or None (test skipped) if none with aioquic is available.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MILEPOST_PYTHON").filter(|p| !p.is_empty()) {
        // Set explicitly (CI): a broken interpreter must fail the test, not skip it.
        return Some(PathBuf::from(p));
    }
    let ok = Command::new("python3")
        .args(["-c", "import aioquic"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then(|| PathBuf::from("python3"))
}

/// Runs the client's `scenario` mode with `params` on stdin; returns its JSON output.
fn run_scenario(python: &Path, params: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/milepost_client.py");
    let mut child = Command::new(python)
        .arg(&script)
        .arg("scenario")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(params.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("bad JSON from the client ({e}):\n{stdout}\nstderr:\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_interoperates() {
    let Some(python) = python() else {
        println!("skipped: aioquic not installed (set MILEPOST_PYTHON)");
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().to_owned(),
        secret: Some(SECRET.into()),
        ..Config::default()
    };
    let gw = Gateway::start(cfg).await.unwrap();
    let ca = gw.dev_ca.clone().expect("the gateway writes a dev CA");

    let key = TokenKey::new(SECRET.as_bytes());
    let driver = key.mint(&claims(Role::Driver, "D1", "north"));
    // Well formed, but signed with another secret: the signature is wrong.
    let forged = TokenKey::new(b"not-the-gateway-secret-0123456789").mint(&claims(
        Role::Driver,
        "D1",
        "north",
    ));
    let dispatcher = key.mint(&claims(Role::Dispatcher, "north", "north"));
    let params = json!({
        "addr": gw.local_addr.to_string(),
        "ca": ca,
        "subject": "D1",
        "token": driver,
        "forged_token": forged,
        "other_subject": "D2",
        "dispatcher_token": dispatcher,
        "depot": "north",
    });

    let r = tokio::task::spawn_blocking(move || run_scenario(&python, &params))
        .await
        .unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());

    // Handshake.
    assert_eq!(r["welcome"]["kind"], "Welcome", "{r}");
    assert_eq!(r["welcome"]["watermark"], 0);
    assert!(r["welcome"]["limits"]["max_frame"].as_u64().unwrap() >= 1024);
    assert_eq!(r["datagrams_negotiated"], true);

    // 3 valid fixes, seqs 1..=3.
    let a = &r["ack_valid"];
    assert_eq!(a["kind"], "Ack", "{a}");
    assert_eq!(
        (
            &a["first_seq"],
            &a["count"],
            &a["duplicates"],
            &a["watermark"]
        ),
        (&json!(1), &json!(3), &json!(0), &json!(3))
    );
    assert_eq!(a["rejected"], json!([]));

    // Seq 4 valid, seq 5 at (0, 0).
    let a = &r["ack_invalid"];
    assert_eq!(a["kind"], "Ack", "{a}");
    assert_eq!((&a["first_seq"], &a["count"]), (&json!(4), &json!(2)));
    assert_eq!(
        a["rejected"],
        json!([{"seq": 5, "reason": 2, "reason_name": "NullIsland"}])
    );
    assert_eq!(a["watermark"], 5);

    // The first batch again: all duplicates.
    let a = &r["ack_resend"];
    assert_eq!(a["kind"], "Ack", "{a}");
    assert_eq!(
        (&a["first_seq"], &a["count"], &a["duplicates"]),
        (&json!(1), &json!(3), &json!(3))
    );
    assert_eq!(a["rejected"], json!([]));
    assert_eq!(a["watermark"], 5);

    // A batch on a second bidirectional stream (no Hello there).
    let a = &r["ack_second_stream"];
    assert_eq!(a["kind"], "Ack", "{a}");
    assert_eq!((&a["first_seq"], &a["count"]), (&json!(6), &json!(1)));
    assert_eq!(a["watermark"], 6);

    // The live datagram (seq 7), acked on a server-opened unidirectional stream.
    assert_eq!(r["live_sent"], true);
    let a = &r["ack_live"];
    assert_eq!(a["kind"], "Ack", "no live ack: {r}");
    assert_eq!(
        (&a["first_seq"], &a["count"], &a["duplicates"]),
        (&json!(7), &json!(1), &json!(0))
    );
    assert_eq!(a["watermark"], 7);
    let ids = r["ack_stream_ids"].as_array().unwrap();
    assert!(
        !ids.is_empty() && ids.iter().all(|i| i.as_u64().unwrap() % 4 == 3),
        "ack stream must be server-initiated unidirectional: {ids:?}"
    );
    assert_eq!(r["decode_errors"], json!([]));

    // Forged token: Error TokenInvalid (if it was read) and application close code 3.
    let f = &r["forged"];
    assert_eq!(f["close_code"], 3, "{f}");
    assert_eq!(f["close_application"], true, "{f}");
    if !f["answer"].is_null() {
        assert_eq!(f["answer"]["kind"], "Error", "{f}");
        assert_eq!(f["answer"]["code"], 3, "{f}");
    }

    // A driver token for D1 claiming D2: OutOfScope (6).
    let o = &r["out_of_scope"];
    assert_eq!(o["close_code"], 6, "{o}");
    assert_eq!(o["close_application"], true, "{o}");
    if !o["answer"].is_null() {
        assert_eq!(o["answer"]["kind"], "Error", "{o}");
        assert_eq!(o["answer"]["code_name"], "OutOfScope", "{o}");
    }

    // The dispatcher of the depot sees D1 at its newest fix (the live one, seq 7).
    assert_eq!(r["dispatcher_welcome"]["kind"], "Welcome", "{r}");
    let q = &r["query_nearest"];
    assert_eq!(q["kind"], "QueryResult", "{q}");
    assert_eq!(q["id"], 7);
    assert_eq!(q["drivers"][0]["driver"], "D1", "{q}");
    assert_eq!(q["drivers"][0]["seq"], 7, "{q}");

    // A proof photo uploaded on an upload stream (spec 6.11) is stored under its digest; the
    // same digest with other bytes is refused and stores nothing new.
    let up = &r["upload"];
    assert_eq!(up["answer"]["kind"], "Done", "{up}");
    assert_eq!(up["answer"]["id"], 21, "{up}");
    let sha = up["sha256"].as_str().unwrap();
    let stored = milepost::proofs::ProofStore::new(dir.path(), &Default::default())
        .get(sha)
        .unwrap()
        .expect("the uploaded photo is stored");
    assert_eq!(milepost::proofs::sha256_hex(&stored), sha);
    let m = &r["upload_mismatch"];
    assert_eq!(
        (&m["kind"], &m["code_name"]),
        (&json!("Error"), &json!("UploadRefused")),
        "{m}"
    );

    // The gateway's view: 3 + 1 + 1 + 1 stored, 1 rejected, 3 duplicates, 2 refusals.
    let s = &gw.shared().stats;
    assert_eq!(s.fixes_accepted.load(Ordering::Relaxed), 6);
    assert_eq!(s.fixes_rejected.load(Ordering::Relaxed), 1);
    assert_eq!(s.fixes_duplicate.load(Ordering::Relaxed), 3);
    assert!(s.refusals.load(Ordering::Relaxed) >= 2);

    gw.shutdown().await;
}

/// The client's own codec against every hex vector of PROTOCOL.md: a vector it does not know
/// fails, so the spec and the second implementation cannot drift apart.
#[test]
fn python_client_decodes_and_encodes_every_vector_of_the_spec() {
    let Some(python) = python() else {
        println!("skipped: aioquic not installed (set MILEPOST_PYTHON)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .arg(root.join("clients/python/milepost_client.py"))
        .arg("vectors")
        .arg(root.join("proto/PROTOCOL.md"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
