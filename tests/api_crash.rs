//! The API's crash test: the real `milepost` binary is killed with SIGKILL in the middle of a
//! burst of back-office writes over HTTP, restarted on the same data directory, and every write
//! that was answered 2xx must be there, once (one record in the log, the route live), while
//! every write that was refused is not.

mod common;
mod web_support;

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use milepost::apikeys::{KeyFile, Scope, FILE};
use milepost::store::LogReader;
use milepost_core::store::LogRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Starts `milepost serve` with its web listener, both on 127.0.0.1:0; its web address.
fn spawn(dir: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_milepost"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("MILEPOST_SECRET", "api-crash-test-secret-0123456789abcdef")
        .env("MILEPOST_ADMIN_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "milepost=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn milepost");
    let log = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the log to its end (so the gateway never blocks on a full pipe).
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(" web=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let web = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("web address");
    (child, web.parse().unwrap())
}

/// One HTTP/1.0 PUT; the status, or `None` if the connection failed or was cut.
async fn put(web: SocketAddr, path: &str, key: &str, body: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(web).await.ok()?;
    let req = format!(
        "PUT {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1)?.parse().ok()
}

/// Route `i`: every fifth one is invalid (a stop at latitude 91), so the API refuses it
/// before anything is logged.
fn route_json(i: usize) -> String {
    let mut r = common::example_route();
    r.id = format!("R-C-{i}").as_str().into();
    r.driver = format!("C-{i}").as_str().into();
    r.stops.truncate(1);
    r.stops[0].parcels.truncate(1);
    r.stops[0].parcels[0].tracking = format!("C-{i}").as_str().into();
    r.stops[0].otp_required = false;
    if i % 5 == 4 {
        r.stops[0].lat = 91.0;
    }
    serde_json::to_string(&r).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_api_writes_keeps_every_answered_write_once_and_no_refused_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let mut keys = KeyFile::default();
    let scopes = vec![Scope::parse("backoffice:north").unwrap()];
    let (_, key) = keys.create("crash", "*", scopes, common::now_ms()).unwrap();
    keys.write(&path).unwrap();
    let (mut child, web) = spawn(dir.path());

    // 16 writers; the gateway is killed once 60 writes were answered 2xx.
    let answered: Arc<std::sync::Mutex<HashMap<usize, Option<u16>>>> = Default::default();
    let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..16 {
        let (answered, ok, key) = (answered.clone(), ok.clone(), key.clone());
        writers.push(tokio::spawn(async move {
            for i in (w..400).step_by(16) {
                let status = put(
                    web,
                    &format!("/api/v1/routes/R-C-{i}"),
                    &key,
                    &route_json(i),
                )
                .await;
                if status.is_some_and(|s| (200..300).contains(&s)) {
                    ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                answered.lock().unwrap().insert(i, status);
                if status.is_none() {
                    return; // the gateway is gone
                }
            }
        }));
    }
    while ok.load(std::sync::atomic::Ordering::SeqCst) < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL, writes in flight
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    let ok: Vec<usize> = answered
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| (200..300).contains(&s)))
        .map(|(i, _)| *i)
        .collect();
    let refused: Vec<usize> = answered
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| s >= 400))
        .map(|(i, _)| *i)
        .collect();
    assert!(
        ok.len() >= 60 && !refused.is_empty(),
        "{} ok, {} refused",
        ok.len(),
        refused.len()
    );
    assert!(
        refused.iter().all(|i| i % 5 == 4),
        "only invalid routes are refused"
    );
    assert!(
        answered.values().any(|s| s.is_none()) || answered.len() < 400,
        "the kill happened with writes in flight"
    );

    // After a restart: every answered write live, every refused one absent.
    let (mut child, web) = spawn(dir.path());
    let auth = format!("Bearer {key}");
    for i in &ok {
        let r = web_support::request(
            web,
            "GET",
            &format!("/api/v1/routes/R-C-{i}"),
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "R-C-{i} was answered 2xx before the kill: {}",
            r.text()
        );
    }
    for i in &refused {
        let r = web_support::request(
            web,
            "GET",
            &format!("/api/v1/routes/R-C-{i}"),
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 404, "R-C-{i} was refused before the kill");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The log: one assignment per answered write, none for a refused one.
    let mut count: HashMap<String, u32> = HashMap::new();
    LogReader::new(&dir.path().join("log"))
        .replay(|_, rec| {
            if let LogRecord::RouteAssigned { route, .. } = rec {
                *count.entry(route.id.0).or_default() += 1;
            }
        })
        .unwrap();
    for i in &ok {
        assert_eq!(count.get(&format!("R-C-{i}")), Some(&1), "R-C-{i}");
    }
    for i in &refused {
        assert_eq!(count.get(&format!("R-C-{i}")), None, "R-C-{i}");
    }
}
