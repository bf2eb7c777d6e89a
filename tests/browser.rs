//! The web pages in a real browser. An in-process gateway (web listener on 127.0.0.1:0, the
//! example route assigned, branding and driver names configured) is driven from here while
//! `tests/browser/e2e.mjs` (playwright-core + Debian's Chromium, headless) watches the
//! recipient's tracking page and the dispatcher map and asserts what a person would see: the
//! stops-away count falling, then "Delivered", without a reload; drivers appearing and moving
//! on the map. Screenshots and page-weight metrics go to `target/browser-artifacts/`.
//!
//! The two sides talk over the script's stdio: it prints `STEP <name>` when the page is ready
//! for the next event, this test makes it happen and answers `DONE`.
//!
//! A second test runs a sped-up `milepost demo` day while `tests/browser/demo.mjs` watches the
//! last stop's tracking page and the dispatcher map: "Out for delivery", "Arriving soon", "The
//! driver is at your door", "Delivered", in that order, and the driver moving.
//!
//! Needs node, `npm ci` in tests/browser and /usr/bin/chromium, so it only runs with
//! `MILEPOST_BROWSER_TESTS=1` (which `tests/browser/run.sh` sets after installing them);
//! otherwise it says it was skipped.
//!
//! A fourth (`tests/browser/console.mjs`) works in the dispatcher console over a street map
//! from a local tile server; a fifth checks that both pages finish loading under Chromium's
//! `--virtual-time-budget` and fall back to the plain map when the tile source is down.
//!
//! A third test opens the depot's dashboard (`tests/browser/dashboard.mjs`) on a day scripted
//! here and checks its figures and its uPlot chart.

mod common;
mod web_support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{leg, route_point};
use milepost::state::lock;
use milepost::web::DriverDisplay;
use milepost_proto::route::{
    DeliveryChange, DriverEvent, DriverUpdate, FailureReason, Outcome, TrackingNumber,
};
use milepost_proto::{CommandKind, Fix, Seq, ServerMsg};
use web_support::World;

const T4: &str = "MP100000004";
const T2: &str = "MP100000002";

const LOGO: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#fff"/><path d="M6 21h14V10H6zm14-7h4l3 4v3h-7z" fill="#0f766e"/><circle cx="10" cy="22" r="2.6" fill="#134e4a"/><circle cx="23" cy="22" r="2.6" fill="#134e4a"/></svg>"##;

fn artifacts_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    target.join("browser-artifacts")
}

/// A browser script run by node: its stdin, its stdout's lines, and the `RESULT` it printed.
struct Script {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    result: Option<String>,
}

impl Script {
    /// The next step the script asks for (`STEP <name>`), every line printed and a `RESULT`
    /// kept on the way; `None` once its output ends or `deadline` passes.
    async fn next_step(&mut self, deadline: tokio::time::Instant) -> Option<String> {
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            println!("{line}");
            if let Some(r) = line.strip_prefix("RESULT ") {
                self.result = Some(r.to_owned());
                continue;
            }
            if let Some(step) = line.strip_prefix("STEP ") {
                return Some(step.to_owned());
            }
        }
        None
    }

    /// Answers the step asked for (`DONE`, or `FAIL <why>`).
    fn answer(&mut self, answer: &str) {
        writeln!(self.stdin, "{answer}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Reads the script's output to its end (or `deadline`) and waits for it: its `RESULT`
    /// and whether it exited well.
    async fn finish(mut self, deadline: tokio::time::Instant) -> (Option<String>, bool) {
        while self.next_step(deadline).await.is_some() {}
        let status = self.child.wait().unwrap();
        (self.result, status.success())
    }
}

/// Starts `tests/browser/<script>` with the web address, the browser and the artifacts
/// directory, and `env`.
fn script(script: &str, web: std::net::SocketAddr, env: &[(&str, String)]) -> Script {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} missing: apt-get install chromium"
    );
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "run `npm ci` in tests/browser"
    );
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut child = Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .current_dir(&root)
        .env("WEB", format!("http://{web}"))
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node on PATH");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Script {
        child,
        stdin,
        lines,
        result: None,
    }
}

/// A second driver of the depot without a route, roaming near the route.
struct Roamer {
    seq: u64,
    clock: i64,
    lat: f64,
    lon: f64,
}

impl Roamer {
    fn step(&mut self) -> Vec<Fix> {
        (0..4)
            .map(|_| {
                self.clock += 5_000;
                self.lon += 0.0004;
                let mut f = Fix::from_degrees(self.clock, self.lat, self.lon, 6.0);
                f.speed_mps = Some(7.0);
                f
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_page_and_dispatcher_map_in_chromium() {
    if std::env::var("MILEPOST_BROWSER_TESTS").ok().as_deref() != Some("1") {
        eprintln!("browser test skipped: run tests/browser/run.sh (sets MILEPOST_BROWSER_TESTS=1)");
        return;
    }
    let mut w = World::with_web(|c| {
        c.web.brand.name = "Parcelo".into();
        c.web.brand.logo_svg = Some(LOGO.into());
        c.web.brand.primary = "#0f766e".into();
        c.web.brand.background = "#f1f5f4".into();
        c.web.drivers.insert(
            "D1".into(),
            DriverDisplay {
                first_name: "Ana".into(),
                vehicle: Some("white Ford Transit".into()),
            },
        );
        c.web.drivers.insert(
            "D2".into(),
            DriverDisplay {
                first_name: "Ben".into(),
                vehicle: Some("cargo bike".into()),
            },
        );
        // A short example route: "arriving soon" only in the last 100 m, so each stops-away
        // stage is on screen for a while; the position only once the stop is next.
        c.core.arriving_soon_s = 20.0;
        c.core.arriving_soon_m = 100.0;
        c.feed.position_minutes = 0;
        c.feed.position_stops = 0;
    })
    .await;
    // Fix times just behind the wall clock, as a live phone's are (the whole drive below spans
    // about six minutes of fix time).
    w.clock = common::now_ms() - 400_000;
    let web = w.web();
    let mut d2 = w.t.driver("D2", "north").await;
    let (lat0, lon0) = route_point(0);
    let mut roam = Roamer {
        seq: 1,
        clock: w.clock,
        lat: lat0 + 0.002,
        lon: lon0 - 0.01,
    };

    let mut s = script(
        "e2e.mjs",
        web,
        &[
            (
                "TRACK",
                format!("/t/{T4}?token={}", World::recipient_token(T4)),
            ),
            (
                "DISPATCH",
                format!("/dispatch?token={}", World::dispatcher_token("north")),
            ),
            (
                "TRACK2",
                format!("/t/{T2}?token={}", World::recipient_token(T2)),
            ),
        ],
    );
    let artifacts = artifacts_dir();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while let Some(step) = s.next_step(deadline).await {
        let answer = match step.as_str() {
            "start" => {
                w.drive(0, 1, 60).await;
                let f = roam.step();
                d2.batch(Seq(roam.seq), f).await.unwrap();
                roam.seq += 4;
                "DONE".to_string()
            }
            "check-instructions" => {
                let got = lock(&w.t.gw.shared().state.core)
                    .instructions(&TrackingNumber(T4.into()))
                    .map(str::to_owned);
                match got.as_deref() {
                    Some("Gate code 4711 <b>not bold</b>") => "DONE".into(),
                    other => format!("FAIL instructions are {other:?}"),
                }
            }
            "reply" => {
                // The recipient's message is on D1's push stream; D1 answers.
                let mut pushes = common::push_stream(&w.driver).await;
                let mut heard = false;
                while let Some(msg) = common::next_push(&mut pushes).await {
                    if let ServerMsg::Push(DriverUpdate {
                        kind: DriverEvent::Message { text, .. },
                        ..
                    }) = msg
                    {
                        heard = text == "Is the side gate fine? <i>x</i>";
                        break;
                    }
                }
                let reply = CommandKind::SendMessage {
                    tracking: T4.into(),
                    text: "Yes, the side gate is fine".into(),
                };
                match (heard, w.driver.command(40, reply).await) {
                    (true, Ok(ServerMsg::Done { .. })) => "DONE".into(),
                    (heard, r) => format!("FAIL heard {heard}, reply {r:?}"),
                }
            }
            "check-reschedule" => {
                let got = lock(&w.t.gw.shared().state.core)
                    .delivery_change(&TrackingNumber(T2.into()))
                    .map(|(c, _)| c.clone());
                match got {
                    Some(DeliveryChange::Reschedule { .. }) => "DONE".into(),
                    other => format!("FAIL the change is {other:?}"),
                }
            }
            "s1" => {
                w.deliver("S1").await;
                w.drive(1, 2, 60).await;
                // Let the coalesced position flush show the first move before the next one.
                tokio::time::sleep(Duration::from_millis(400)).await;
                let f = roam.step();
                d2.batch(Seq(roam.seq), f).await.unwrap();
                roam.seq += 4;
                "DONE".into()
            }
            "s2" => {
                w.deliver("S2").await;
                // Half-way to S3: the recipient's stop is next, the driver is on the way.
                let (a, b) = (route_point(2), route_point(3));
                let mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
                let fixes = leg(a, mid, &mut w.clock, 0);
                w.send(fixes).await;
                "DONE".into()
            }
            "s3" => {
                let (a, b) = (route_point(2), route_point(3));
                let mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
                let fixes = leg(mid, b, &mut w.clock, 40);
                w.send(fixes).await;
                w.deliver("S3").await;
                "DONE".into()
            }
            other => format!("FAIL unknown step {other}"),
        };
        s.answer(&answer);
    }
    let (result, ok) = s.finish(deadline).await;
    assert_eq!(
        result.as_deref(),
        Some("ok"),
        "browser checks failed (see the # lines above); artifacts in {}",
        artifacts.display()
    );
    assert!(ok);
    println!("screenshots and metrics.json in {}", artifacts.display());
}

/// `milepost demo` watched in Chromium (`tests/browser/demo.mjs`): the day sped up, the
/// recipient of the last stop's parcel and the dispatcher's map followed live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_day_in_chromium() {
    use milepost::tools::demo::{self, plan, DriveOptions};
    if std::env::var("MILEPOST_BROWSER_TESTS").ok().as_deref() != Some("1") {
        eprintln!("browser test skipped: run tests/browser/run.sh (sets MILEPOST_BROWSER_TESTS=1)");
        return;
    }
    let t = common::start_with(|c| {
        c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        c.core.dwell_ms = 1_000;
        c.validation.max_speed_mps = 1_000.0;
    })
    .await;
    // A drive north, 50 m every 10 s, sped up (as in tests/demo.rs), but slow enough for
    // every state to be on screen for a moment.
    let t0 = common::now_ms() - 3_600_000;
    let points: Vec<_> = (0..30)
        .map(|i| {
            milepost::replay::trace::TracePoint::new(
                t0 + i * 10_000,
                45.27 + i as f64 * 0.00045,
                13.71,
            )
        })
        .collect();
    let day = plan::plan(
        &points,
        &plan::PlanOptions {
            stops: 6,
            speedup: 40.0,
            dwell_ms: 3_000,
            start_ms: common::now_ms(),
            route_id: "DEMO-B".into(),
            max_shown_mps: 150.0,
        },
    )
    .unwrap();
    let web = t.gw.web_addr.unwrap();
    let (driver, links) = demo::links(&t.gw, &day, web, 3600);
    demo::assign(&t.gw, &day).await.unwrap();
    let (_, track) = links.parcels.last().unwrap().clone();
    let base = format!("http://{web}");
    let mut s = script(
        "demo.mjs",
        web,
        &[
            ("TRACK", track.trim_start_matches(&base).to_owned()),
            (
                "DISPATCH",
                links.dispatcher.trim_start_matches(&base).to_owned(),
            ),
            ("DRIVER", plan::DRIVER.to_owned()),
        ],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Some(step) = s.next_step(deadline).await {
        if step == "go" {
            let opts = DriveOptions {
                dwell_ms: 3_000,
                dwell_fix_ms: 500,
            };
            let answer = match demo::drive_day(&t.gw, &day, &points, &driver, &opts, |_| {}).await {
                Ok(()) => "DONE".to_string(),
                Err(e) => format!("FAIL {e}"),
            };
            s.answer(&answer);
        }
    }
    let (result, ok) = s.finish(deadline).await;
    assert_eq!(result.as_deref(), Some("ok"), "see the # lines above");
    assert!(ok);
}

/// The depot's dashboard in Chromium (`tests/browser/dashboard.mjs`): a route scripted here
/// (one stop on time and delivered, one late and failed for lack of access), and the page
/// shows its figures and draws them with the bundled uPlot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium() {
    if std::env::var("MILEPOST_BROWSER_TESTS").ok().as_deref() != Some("1") {
        eprintln!("browser test skipped: run tests/browser/run.sh (sets MILEPOST_BROWSER_TESTS=1)");
        return;
    }
    let w = World::with_web(|_| {}).await;
    let key = w.backoffice_key();
    let now = common::now_ms();
    let mut r = common::example_route();
    r.id = "DASH-1".into();
    r.driver = "D5".into();
    r.stops.truncate(2);
    for (i, s) in r.stops.iter_mut().enumerate() {
        s.parcels.truncate(1);
        s.parcels[0].tracking = format!("DASH-P{i}").as_str().into();
        s.parcels[0].otp = None;
        s.otp_required = false;
        let (a, b) = if i == 0 {
            (-3_600, 3_600)
        } else {
            (-7_200, -3_600)
        };
        s.window = Some(milepost_proto::route::TimeWindow {
            start_ms: now + a * 1000,
            end_ms: now + b * 1000,
        });
    }
    let calls = [
        ("/api/v1/routes", serde_json::to_value(&r).unwrap()),
        (
            "/api/v1/parcels/DASH-P0/outcome",
            serde_json::json!({"outcome": "delivered", "signature_sha256": "ef".repeat(32)}),
        ),
        (
            "/api/v1/parcels/DASH-P1/outcome",
            serde_json::json!({"outcome": "failed", "reason": "access_problem"}),
        ),
    ];
    for (path, body) in calls {
        let a = web_support::api(&w, "POST", path, &key, Some(&body)).await;
        assert!(a.status < 300, "{path}: {}", a.text());
    }
    let s = script(
        "dashboard.mjs",
        w.web(),
        &[
            (
                "DASH",
                format!("/dashboard?token={}", World::dispatcher_token("north")),
            ),
            // The world's own example route is in "north" too, with nothing reached yet: it
            // adds no stop with a window, so on time is this route's 1 of 2.
            ("ON_TIME", "50%".into()),
        ],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let (result, ok) = s.finish(deadline).await;
    assert_eq!(result.as_deref(), Some("ok"), "see the # lines above");
    assert!(ok);
}

/// A 1x1 grey PNG: every tile of the tile server fixture.
const TILE_PNG: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xb8, 0xfb, 0xe4, 0x0e,
    0x00, 0x05, 0x3f, 0x02, 0x9e, 0x20, 0x17, 0xca, 0x56, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A raster tile server on 127.0.0.1:0 (`/tiles/{z}/{x}/{y}.png`), counting the tiles asked.
async fn tile_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/tiles/{z}/{x}/{y}",
        axum::routing::get(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::Relaxed);
                ([(axum::http::header::CONTENT_TYPE, "image/png")], TILE_PNG)
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (addr, hits)
}

/// A shop's site on 127.0.0.1:0 whose `/order?src=URL` frames `URL`: the embedding origin of
/// the console test (`http://127.0.0.1:PORT`; the same server as `http://localhost:PORT` is
/// another origin, which may not frame the page).
async fn shop_server() -> std::net::SocketAddr {
    use std::collections::HashMap;
    let app = axum::Router::new().route(
        "/order",
        axum::routing::get(
            |axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>| async move {
                let src = q.get("src").cloned().unwrap_or_default().replace('"', "%22");
                axum::response::Html(format!(
                    "<!doctype html><title>Shop</title><h1>Your order</h1>\
                     <iframe id=\"f\" title=\"Parcel tracking\" src=\"{src}\" width=\"400\" height=\"600\"></iframe>"
                ))
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

/// The console's world: the example route assigned again through the API with its stops'
/// addresses, D1 named Ana, tiles from `tiles` (a URL template), the tracking page framed by
/// `embed` if given.
async fn console_world(tiles: String, embed: Option<String>) -> World {
    let mut w = World::with_web(|c| {
        c.web.map.tiles = Some(tiles);
        c.web.map.attribution = "Test tiles".into();
        if let Some(origin) = embed {
            c.web.embed_origins = vec![origin];
            c.web.secure_cookies = true;
        }
        // The depot's carrier works in India: the pages' times are IST.
        c.carriers.0.insert(
            "acme".into(),
            milepost::tenancy::CarrierConfig {
                name: "Acme".into(),
                time_zone: "Asia/Kolkata".into(),
                depots: vec!["north".into()],
                ..Default::default()
            },
        );
        c.web.drivers.insert(
            "D1".into(),
            DriverDisplay {
                first_name: "Ana".into(),
                vehicle: None,
            },
        );
    })
    .await;
    w.clock = common::now_ms() - 400_000;
    let key = w.backoffice_key();
    let mut route = serde_json::to_value(common::example_route()).unwrap();
    for (i, a) in ["Ilica 12", "Vlaška 40", "Savska 9"].iter().enumerate() {
        route["stops"][i]["address"] = (*a).into();
    }
    let path = format!("/api/v1/routes/{}", route["id"].as_str().unwrap());
    // The key file is picked up within a second.
    let mut status = 0;
    for _ in 0..30 {
        status = web_support::api(&w, "PUT", &path, &key, Some(&route))
            .await
            .status;
        if status != 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "the route with addresses was not taken");
    w.drive(0, 1, 60).await;
    w
}

/// The dispatcher console and the street map in Chromium (`tests/browser/console.mjs`): tiles
/// from a local tile server, addresses, alerts handled from the page, search, playback,
/// framing by an allowed origin only, axe-core, 320 px and 200 % zoom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_street_map_in_chromium() {
    if std::env::var("MILEPOST_BROWSER_TESTS").ok().as_deref() != Some("1") {
        eprintln!("browser test skipped: run tests/browser/run.sh (sets MILEPOST_BROWSER_TESTS=1)");
        return;
    }
    let (tiles, hits) = tile_server().await;
    let shop = shop_server().await;
    let mut w = console_world(
        format!("http://{tiles}/tiles/{{z}}/{{x}}/{{y}}.png"),
        Some(format!("http://{shop}")),
    )
    .await;
    let mut s = script(
        "console.mjs",
        w.web(),
        &[
            (
                "TRACK",
                format!("/t/{T4}?token={}", World::recipient_token(T4)),
            ),
            (
                "DISPATCH",
                format!("/dispatch?token={}", World::dispatcher_token("north")),
            ),
            ("SHOP", format!("{}", shop.port())),
        ],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while let Some(step) = s.next_step(deadline).await {
        let answer = match step.as_str() {
            "start" => "DONE".to_string(),
            "fail" => {
                w.drive(1, 2, 60).await;
                let failed = Outcome::Failed {
                    reason: FailureReason::RecipientAbsent,
                    note: String::new(),
                };
                match common::report(&mut w.driver, 3, "S2", None, failed).await {
                    Ok(_) => "DONE".into(),
                    Err(e) => format!("FAIL the failed attempt: {e:?}"),
                }
            }
            other => format!("FAIL unknown step {other}"),
        };
        s.answer(&answer);
    }
    let (result, ok) = s.finish(deadline).await;
    assert_eq!(result.as_deref(), Some("ok"), "see the # lines above");
    assert!(ok);
    assert!(
        hits.load(Ordering::Relaxed) > 0,
        "no tile was asked of the tile server"
    );
}

/// Runs Chromium's own headless mode on `url` with a virtual time budget (what screenshot
/// tools and link previewers do) and returns the page's DOM; `None` if it did not finish.
async fn dump_dom(url: &str) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let profile = tempfile::tempdir().unwrap();
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let start = std::time::Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return reader.join().ok();
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap()
}

/// Both pages load completely with their live stream open (Chromium's `--virtual-time-budget`
/// finishes and the DOM holds the status), and a tile source that is down leaves the plain
/// map, saying so (`tests/browser/fallback.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_finish_loading_and_fall_back_to_the_plain_map() {
    if std::env::var("MILEPOST_BROWSER_TESTS").ok().as_deref() != Some("1") {
        eprintln!("browser test skipped: run tests/browser/run.sh (sets MILEPOST_BROWSER_TESTS=1)");
        return;
    }
    // A port nothing listens on: every tile fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let w = console_world(format!("http://{closed}/tiles/{{z}}/{{x}}/{{y}}.png"), None).await;
    let web = w.web();
    let track = format!("http://{web}/t/{T4}?token={}", World::recipient_token(T4));
    let dom = dump_dom(&track)
        .await
        .expect("the tracking page never finished loading");
    assert!(dom.contains("id=\"status-line\""), "{dom}");
    let disp = format!(
        "http://{web}/dispatch?token={}",
        World::dispatcher_token("north")
    );
    let dom = dump_dom(&disp)
        .await
        .expect("the dispatcher page never finished loading");
    assert!(
        dom.contains("Depot <span id=\"depot\">north</span>"),
        "{dom}"
    );

    let s = script(
        "fallback.mjs",
        web,
        &[(
            "DISPATCH",
            format!("/dispatch?token={}", World::dispatcher_token("north")),
        )],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (result, ok) = s.finish(deadline).await;
    assert_eq!(result.as_deref(), Some("ok"), "see the # lines above");
    assert!(ok);
}
