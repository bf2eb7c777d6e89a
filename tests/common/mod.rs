//! Helpers shared by the end-to-end tests: an in-process gateway on 127.0.0.1:0 with a fresh
//! data directory, tokens, sessions, fixes, the example route and a driver driving it.
#![allow(dead_code)]

pub mod kill;
pub mod owned;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use milepost::auth::{Claims, Role};
use milepost::client::{AckStream, ClientEndpoint, ClientError, Session};
use milepost::config::Config;
use milepost::server::Gateway;
use milepost_proto::route::{Outcome, Proof, Route};
use milepost_proto::{Ack, CommandKind, DeviceInfo, Fix, Seq, ServerMsg};

/// A secret for tests.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// A gateway with its temporary data directory.
pub struct TestGateway {
    /// The gateway.
    pub gw: Gateway,
    /// Its data directory (kept alive for the test).
    pub dir: tempfile::TempDir,
    /// The CA its clients trust (its dev CA unless it was started with another).
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
    start_with(|_| {}).await
}

/// Starts a gateway on an existing directory.
pub async fn start_in(dir: tempfile::TempDir) -> TestGateway {
    start_configured(dir, |_| {}).await
}

/// Starts a gateway on a fresh directory with the test configuration edited by `edit`.
pub async fn start_with(edit: impl FnOnce(&mut Config)) -> TestGateway {
    start_configured(tempfile::tempdir().unwrap(), edit).await
}

/// Starts a gateway on `dir` with the test configuration edited by `edit`.
pub async fn start_configured(
    dir: tempfile::TempDir,
    edit: impl FnOnce(&mut Config),
) -> TestGateway {
    let mut cfg = config(dir.path());
    edit(&mut cfg);
    launch(dir, cfg, None).await
}

/// Starts a gateway with `cfg` (whose data directory is `dir`); its clients trust `ca`, or
/// the gateway's dev CA when `None`.
pub async fn launch(dir: tempfile::TempDir, cfg: Config, ca: Option<PathBuf>) -> TestGateway {
    let gw = Gateway::start(cfg).await.unwrap();
    let ca = ca.unwrap_or_else(|| gw.dev_ca.clone().unwrap());
    TestGateway { gw, dir, ca }
}

/// Current time, UTC ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Current time, Unix seconds.
pub fn now_s() -> i64 {
    now_ms() / 1000
}

/// A token signed with `secret` for `role`/`sub`/`depot`, issued at `iat` and expiring at
/// `exp` (Unix seconds).
pub fn mint(secret: &[u8], role: Role, sub: &str, depot: &str, exp: i64, iat: i64) -> String {
    milepost::auth::TokenKey::new(secret).mint(&Claims {
        role,
        sub: sub.into(),
        depot: depot.into(),
        exp,
        iat,
        carrier: None,
    })
}

/// A token for `role`/`sub`/`depot` valid for an hour.
pub fn token(role: Role, sub: &str, depot: &str) -> String {
    let now = now_s();
    mint(SECRET.as_bytes(), role, sub, depot, now + 3600, now)
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

    /// A connection from a fresh client endpoint, before any Hello.
    pub async fn connect(&self) -> quinn::Connection {
        let ep = self.endpoint();
        ep.connect(self.gw.local_addr, "localhost").await.unwrap()
    }

    /// Opens a session on a fresh connection with `token`, claiming `claim`.
    pub async fn open(&self, token: &str, claim: &str) -> Result<Session, ClientError> {
        let ep = self.endpoint();
        let conn = ep.connect(self.gw.local_addr, "localhost").await?;
        Session::open(conn, token, claim, DeviceInfo::default()).await
    }

    /// Opens a session as `sub` with a token for (`role`, `token_sub`, `depot`).
    pub async fn session_as(
        &self,
        role: Role,
        token_sub: &str,
        claim: &str,
        depot: &str,
    ) -> Result<Session, ClientError> {
        self.open(&token(role, token_sub, depot), claim).await
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

    /// A recipient session following parcel `tracking` of depot "north".
    pub async fn recipient(&self, tracking: &str) -> Session {
        self.session_as(Role::Recipient, tracking, tracking, "north")
            .await
            .unwrap()
    }

    /// A dispatcher of "north" assigns the example route (command 1); its session.
    pub async fn assign_route(&self) -> Session {
        let mut dispatch = self.dispatcher("north").await;
        dispatch
            .command(1, CommandKind::AssignRoute(example_route()))
            .await
            .unwrap();
        dispatch
    }

    /// The newest milestone offset in the gateway's feed store.
    pub fn milestones_last(&self) -> u64 {
        milepost::state::lock(&self.gw.shared().state.feed).milestones_last()
    }

    /// D1's session sends `n` one-fix batches (seq 1 to `n`), a moment apart so that the
    /// applier looks at its snapshot trigger after each; then the snapshots taken so far,
    /// waiting up to 5 s for `enough` of them.
    pub async fn snapshots_after_batches(
        &self,
        d: &mut Session,
        n: u64,
        enough: impl Fn(u64) -> bool,
    ) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        for i in 0..n {
            d.batch(Seq(i + 1), vec![fix(100_000 - i as i64 * 1_000, 0)])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stats = self.gw.shared().applier_stats.clone();
        for _ in 0..200 {
            if enough(stats.snapshots.load(Relaxed)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        stats.snapshots.load(Relaxed)
    }

    /// Shuts the gateway down cleanly; its data directory.
    pub async fn stop(self) -> tempfile::TempDir {
        self.gw.shutdown().await;
        self.dir
    }

    /// Shuts the gateway down and starts it again on its directory (test configuration).
    pub async fn restart(self) -> TestGateway {
        self.restart_with(|_| {}).await
    }

    /// Shuts the gateway down and starts it again on its directory with the test
    /// configuration edited by `edit`.
    pub async fn restart_with(self, edit: impl FnOnce(&mut Config)) -> TestGateway {
        start_configured(self.stop().await, edit).await
    }
}

/// The documented example route (`examples/route.json`) for driver D1 of depot "north", with
/// the times it is written with.
pub fn example_route_as_written() -> Route {
    use milepost_core::fleet::route::RouteJson;
    let mut r = Route::from_json(include_str!("../../examples/route.json")).unwrap();
    r.depot = "north".into();
    r.driver = "D1".into();
    r
}

/// The documented example route (`examples/route.json`) for driver D1 of depot "north",
/// planned to have started ten minutes ago.
pub fn example_route() -> Route {
    let mut r = example_route_as_written();
    let shift = now_ms() - 600_000 - r.planned_start_ms;
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

/// Point `i` of the example route: 0 = its start, i = stop i.
pub fn route_point(i: usize) -> (f64, f64) {
    let r = example_route_as_written();
    if i == 0 {
        let s = r.start.unwrap();
        (s.lat, s.lon)
    } else {
        (r.stops[i - 1].lat, r.stops[i - 1].lon)
    }
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

/// Sends `fixes` as batches of `per_batch` from seq `*seq` on, each acked (unwrapped);
/// `*seq` ends after the last one.
pub async fn send_in_batches(d: &mut Session, seq: &mut u64, fixes: &[Fix], per_batch: usize) {
    for chunk in fixes.chunks(per_batch) {
        d.batch(Seq(*seq), chunk.to_vec()).await.unwrap();
        *seq += chunk.len() as u64;
    }
}

/// A delivery whose proof is a photo with the hash `hex2` repeated 32 times.
pub fn delivered(hex2: &str) -> Outcome {
    Outcome::Delivered {
        proof: Proof {
            photo_sha256: Some(hex2.repeat(32)),
            ..Proof::default()
        },
    }
}

/// Command `id`: the outcome at `stop` (of the parcel `tracking` alone, when given).
pub async fn report(
    s: &mut Session,
    id: u32,
    stop: &str,
    tracking: Option<&str>,
    outcome: Outcome,
) -> Result<ServerMsg, ClientError> {
    s.command(
        id,
        CommandKind::ReportOutcome {
            stop: stop.into(),
            tracking: tracking.map(Into::into),
            outcome,
        },
    )
    .await
}

/// The stream the gateway opens to a client for acks and pushes, within 5 s.
pub async fn push_stream(s: &Session) -> AckStream {
    tokio::time::timeout(Duration::from_secs(5), s.accept_ack_stream())
        .await
        .unwrap()
        .unwrap()
}

/// The next message on a push stream, within 5 s.
pub async fn next_push(p: &mut AckStream) -> Option<ServerMsg> {
    tokio::time::timeout(Duration::from_secs(5), p.next_msg())
        .await
        .unwrap()
        .unwrap()
}

/// The next ack on an ack stream, within 5 s.
pub async fn next_ack(p: &mut AckStream) -> Ack {
    tokio::time::timeout(Duration::from_secs(5), p.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// The code the gateway closes `conn` with, within 5 s.
pub async fn close_code(conn: &quinn::Connection) -> Option<milepost_proto::ErrorCode> {
    let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .unwrap();
    milepost::wire::close_code(&reason)
}

/// A gateway with the example route assigned and driver D1 connected, to drive it.
pub struct World {
    /// The gateway.
    pub t: TestGateway,
    /// D1's session.
    pub driver: Session,
    /// D1's next seq.
    pub seq: u64,
    /// D1's fix clock (starts 50 minutes ago, so every fix is in the past).
    pub clock: i64,
}

impl World {
    /// A world with the test configuration.
    pub async fn new() -> World {
        World::with(|_| {}).await
    }

    /// A world with an edited test configuration.
    pub async fn with(edit: impl FnOnce(&mut Config)) -> World {
        let t = start_with(|c| {
            // D1's fixes are timed from 50 minutes ago: not a silent driver.
            c.feed.stale_after_s = 7 * 86_400;
            edit(c)
        })
        .await;
        t.assign_route().await;
        World::on(t).await
    }

    /// D1 connects to `t`, where the route is assigned already.
    pub async fn on(t: TestGateway) -> World {
        World {
            driver: t.driver("D1", "north").await,
            t,
            seq: 1,
            clock: now_ms() - 3_000_000,
        }
    }

    /// Drives D1 from route point a to route point b, then stands `dwell_s` there.
    pub async fn drive(&mut self, a: usize, b: usize, dwell_s: i64) {
        let fixes = leg(route_point(a), route_point(b), &mut self.clock, dwell_s);
        self.send(fixes).await;
    }

    /// Sends fixes as D1, 8 per batch.
    pub async fn send(&mut self, fixes: Vec<Fix>) {
        send_in_batches(&mut self.driver, &mut self.seq, &fixes, 8).await;
    }

    /// X9, a driver of depot "south" (never to be seen by "north"), connected, one fix sent.
    pub async fn stranger(&self) -> Session {
        let mut south = self.t.driver("X9", "south").await;
        south.batch(Seq(1), vec![fix(1_000, 0)]).await.unwrap();
        south
    }

    /// D1 reports every parcel of `stop` delivered (with the code where one is required).
    pub async fn deliver(&mut self, stop: &str) {
        let otp = if stop == "S2" {
            Some("4821".to_string())
        } else {
            None
        };
        let proof = Proof {
            photo_sha256: Some("cd".repeat(32)),
            signature_sha256: Some("ab".repeat(32)),
            otp,
        };
        report(
            &mut self.driver,
            2,
            stop,
            None,
            Outcome::Delivered { proof },
        )
        .await
        .unwrap();
    }
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

/// A synthetic drive for the load generator: 10 m/s due north from (38.9, `lon`), one point a
/// second for 10 minutes, 5 m accuracy.
pub fn north_trace(id: &str, lon: f64) -> milepost::replay::trace::Trace {
    use milepost::replay::trace::{Trace, TracePoint};
    let points = (0..600)
        .map(|i| {
            let mut p = TracePoint::new(1_700_000_000_000 + i * 1000, 38.9 + i as f64 * 9e-5, lon);
            p.accuracy_m = Some(5.0);
            p.speed_mps = Some(10.0);
            p
        })
        .collect();
    Trace::new(id, points)
}

/// A load-generator configuration for tests: `server` trusted through `ca`, tokens signed with
/// the test secret, phones on 127.0.0.1 sending `per_s` fixes a second in real time.
pub fn replay_config(
    server: SocketAddr,
    ca: PathBuf,
    per_s: f64,
) -> milepost::replay::sim::ReplayConfig {
    use milepost::replay::sim::{Pace, ReplayConfig};
    let mut cfg = ReplayConfig::new(server, ca, milepost::auth::TokenKey::new(SECRET.as_bytes()));
    cfg.bind = "127.0.0.1".parse().expect("an IP");
    cfg.pace = Pace::Rate {
        per_s,
        speedup: 1.0,
    };
    cfg
}

/// Every fix batch record in a data directory's log, in log order: its driver and entries.
pub fn batches_in_log(
    dir: &std::path::Path,
) -> Vec<(
    milepost_proto::DriverId,
    Vec<milepost_core::store::BatchEntry>,
)> {
    let mut out = Vec::new();
    milepost::store::LogReader::new(&dir.join("log"))
        .replay(|_, rec| {
            if let milepost_core::store::LogRecord::Batch {
                driver, entries, ..
            } = rec
            {
                out.push((driver, entries));
            }
        })
        .expect("the log reads back");
    out
}
