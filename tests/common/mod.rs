//! Helpers shared by the end-to-end tests: an in-process gateway on 127.0.0.1:0 with a fresh
//! data directory, tokens, fixes and clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use milepost::auth::{Claims, Role};
use milepost::client::{ClientEndpoint, ClientError, Session};
use milepost::config::Config;
use milepost::server::Gateway;
use milepost_proto::{DeviceInfo, Fix};

/// A secret for tests.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// A gateway with its temporary data directory.
pub struct TestGateway {
    /// The gateway.
    pub gw: Gateway,
    /// Its data directory (kept alive for the test).
    pub dir: tempfile::TempDir,
    /// The dev CA.
    pub ca: PathBuf,
}

/// The test configuration for a data directory.
pub fn config(dir: &std::path::Path) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.to_owned(),
        secret: Some(SECRET.into()),
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    }
}

/// Starts a gateway on a fresh directory.
pub async fn start() -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir).await
}

/// Starts a gateway on an existing directory.
pub async fn start_in(dir: tempfile::TempDir) -> TestGateway {
    let gw = Gateway::start(config(dir.path())).await.unwrap();
    let ca = gw.dev_ca.clone().unwrap();
    TestGateway { gw, dir, ca }
}

/// Current time, UTC ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A token for `role`/`sub`/`depot` valid for an hour.
pub fn token(role: Role, sub: &str, depot: &str) -> String {
    let now = now_ms() / 1000;
    milepost::auth::TokenKey::new(SECRET.as_bytes()).mint(&Claims {
        role,
        sub: sub.into(),
        depot: depot.into(),
        exp: now + 3600,
        iat: now,
    })
}

/// A plausible fix `age_ms` ago near Washington DC, offset by `i` * ~11 m north.
pub fn fix(age_ms: i64, i: i32) -> Fix {
    Fix::from_degrees(now_ms() - age_ms, 38.9 + i as f64 * 1e-4, -77.03, 5.0)
}

impl TestGateway {
    /// A client endpoint trusting this gateway.
    pub fn endpoint(&self) -> ClientEndpoint {
        ClientEndpoint::new("127.0.0.1:0".parse().unwrap(), &self.ca).unwrap()
    }

    /// Opens a session as `sub` with a token for (`role`, `token_sub`, `depot`).
    pub async fn session_as(
        &self,
        role: Role,
        token_sub: &str,
        claim: &str,
        depot: &str,
    ) -> Result<Session, ClientError> {
        let ep = self.endpoint();
        let conn = ep.connect(self.gw.local_addr, "localhost").await?;
        Session::open(
            conn,
            &token(role, token_sub, depot),
            claim,
            DeviceInfo::default(),
        )
        .await
    }

    /// A driver session.
    pub async fn driver(&self, id: &str, depot: &str) -> Session {
        self.session_as(Role::Driver, id, id, depot).await.unwrap()
    }

    /// A dispatcher session for `depot`.
    pub async fn dispatcher(&self, depot: &str) -> Session {
        self.session_as(Role::Dispatcher, depot, depot, depot)
            .await
            .unwrap()
    }
}

/// Starts a gateway on `dir` with the test configuration edited by `edit`.
pub async fn start_configured(
    dir: tempfile::TempDir,
    edit: impl FnOnce(&mut Config),
) -> TestGateway {
    let mut cfg = config(dir.path());
    edit(&mut cfg);
    let gw = Gateway::start(cfg).await.unwrap();
    let ca = gw.dev_ca.clone().unwrap();
    TestGateway { gw, dir, ca }
}

/// The documented example route (`examples/route.json`) for driver D1 of depot "north",
/// planned to have started ten minutes ago.
pub fn example_route() -> milepost_proto::route::Route {
    use milepost_core::fleet::route::RouteJson;
    let mut r =
        milepost_proto::route::Route::from_json(include_str!("../../examples/route.json")).unwrap();
    let shift = now_ms() - 600_000 - r.planned_start_ms;
    r.depot = "north".into();
    r.driver = "D1".into();
    r.planned_start_ms += shift;
    for s in &mut r.stops {
        if let Some(w) = &mut s.window {
            w.start_ms += shift;
            w.end_ms += shift;
        }
        if let Some(p) = &mut s.planned_arrival_ms {
            *p += shift;
        }
    }
    r
}

/// Fixes every 5 s at ~8 m/s from a to b, then `dwell_s` seconds standing at b.
pub fn leg(a: (f64, f64), b: (f64, f64), t: &mut i64, dwell_s: i64) -> Vec<Fix> {
    let d = milepost_core::fleet::geo_util::haversine_m(a.0, a.1, b.0, b.1);
    let steps = (d / 40.0).ceil().max(1.0) as usize;
    let mut out = Vec::new();
    for i in 1..=steps + (dwell_s / 5) as usize {
        let f = (i.min(steps)) as f64 / steps as f64;
        *t += 5_000;
        let mut fix = Fix::from_degrees(*t, a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, 5.0);
        fix.speed_mps = Some(if i <= steps { 8.0 } else { 0.0 });
        out.push(fix);
    }
    out
}

/// Runs the real `milepost serve` binary on `listen` (e.g. `127.0.0.1:0`) and `dir`, with
/// extra arguments, and reads its bound address from its log.
pub fn spawn_binary(
    dir: &std::path::Path,
    listen: &str,
    extra: &[&str],
) -> (std::process::Child, SocketAddr) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_milepost"))
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("MILEPOST_SECRET", SECRET)
        .env("MILEPOST_ADMIN_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "milepost=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn milepost");
    let rx = words_after(child.stderr.take().unwrap(), "addr=");
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("gateway address");
    (child, addr.parse().unwrap())
}

/// Reads a child's log on a thread of its own and sends the word after `marker` on every line
/// that has it (a server's bound address, say).
fn words_after(
    log: impl std::io::Read + Send + 'static,
    marker: &'static str,
) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(marker).nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    rx
}

/// A `nats-server -js` of a test's own on a random loopback port, killed on drop.
pub struct Nats {
    child: std::process::Child,
    /// Its client URL.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// Starts one; `None` (after saying why) when nats-server is not installed, unless
    /// `MILEPOST_REQUIRE_NATS` is set (CI), where that fails the test.
    pub fn start() -> Option<Nats> {
        let bin = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let dir = tempfile::tempdir().unwrap();
        let spawned = std::process::Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if std::env::var_os("MILEPOST_REQUIRE_NATS").is_none() => {
                eprintln!(
                    "SKIPPED: cannot run {bin} ({e}); install it (apt install nats-server) to \
                     run the cluster tests"
                );
                return None;
            }
            Err(e) => panic!("cannot run {bin}: {e}"),
        };
        let rx = words_after(
            child.stderr.take().unwrap(),
            "Listening for client connections on ",
        );
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("nats-server address");
        Some(Nats {
            child,
            url: format!("nats://{addr}"),
            _dir: dir,
        })
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parcel events `(offset, event)` read from a feed until one satisfies `want`; panics with
/// what came (and `what`) if none does within `secs` (a bound on waiting, not a timing claim).
pub async fn parcel_events_until(
    f: &mut milepost::client::FeedStream,
    want: impl Fn(&milepost_proto::route::ParcelEvent) -> bool,
    secs: u64,
    what: &str,
) -> Vec<(u64, milepost_proto::route::ParcelEvent)> {
    use milepost_proto::route::Update;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !got.iter().any(|(_, e)| want(e)) {
        let m = tokio::time::timeout_at(deadline, f.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: the awaited event did not come; got {got:?}"))
            .unwrap();
        if let milepost_proto::ServerMsg::FeedEvent {
            offset,
            update: Update::Parcel(p),
        } = m
        {
            got.push((offset, p.kind));
        }
    }
    got
}
