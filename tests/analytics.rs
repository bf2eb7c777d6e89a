//! Analytics and exports end to end, over the back-office API on loopback: a scripted day whose
//! figures are known by construction (on time and late stops, a failed attempt with its
//! reason, a re-attempt that is not a first attempt), the same figures once the routes are
//! in the history, CSV, the Parquet export read back by pyarrow (an independent reader) and
//! checked against the API, carriers' isolation, and bad input.

mod common;
mod web_support;

use milepost::tenancy::CarrierConfig;
use milepost_proto::route::{Route, TimeWindow};
use serde_json::{json, Value};
use web_support::World;

async fn post(w: &World, key: &str, path: &str, body: Value) -> Value {
    call(w, "POST", path, key, Some(&body)).await
}

async fn call(w: &World, method: &str, path: &str, key: &str, body: Option<&Value>) -> Value {
    let r = web_support::api(w, method, path, key, body).await;
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
    r.json()
}

/// A route of `depot` whose stops each carry one parcel; `windows` (seconds from now) per stop.
fn route(id: &str, depot: &str, driver: &str, parcels: &[(&str, Option<(i64, i64)>)]) -> Value {
    let mut r: Route = common::example_route();
    r.id = id.into();
    r.depot = depot.into();
    r.driver = driver.into();
    let now = common::now_ms();
    // Planned to start now, not ten minutes ago like the example: a route's day is its planned
    // start's, and the reports default to today, so in the first ten minutes after midnight
    // the example's routes fell on yesterday and every report came back empty.
    r.planned_start_ms = now;
    let template = r.stops[0].clone();
    r.stops = parcels
        .iter()
        .enumerate()
        .map(|(i, (t, w))| {
            let mut s = template.clone();
            s.id = format!("S{i}").as_str().into();
            s.lat += 0.002 * i as f64;
            s.parcels.truncate(1);
            s.parcels[0].tracking = (*t).into();
            s.parcels[0].otp = None;
            s.otp_required = false;
            s.window = w.map(|(a, b)| TimeWindow {
                start_ms: now + a * 1000,
                end_ms: now + b * 1000,
            });
            s.planned_arrival_ms = None;
            s
        })
        .collect();
    serde_json::to_value(r).unwrap()
}

fn delivered() -> Value {
    json!({"outcome": "delivered", "signature_sha256": "ef".repeat(32)})
}

fn failed(reason: &str) -> Value {
    json!({"outcome": "failed", "reason": reason})
}

fn carriers(c: &mut milepost::config::Config) {
    let acme = CarrierConfig {
        name: "Acme".into(),
        time_zone: "UTC".into(),
        depots: vec!["east".into()],
        ..Default::default()
    };
    let zeta = CarrierConfig {
        name: "Zeta".into(),
        time_zone: "UTC".into(),
        depots: vec!["west".into()],
        ..Default::default()
    };
    c.carriers.0.insert("acme".into(), acme);
    c.carriers.0.insert("zeta".into(), zeta);
    c.log.archive_routes_after_s = 3600;
}

/// The test world (the web listener on, two carriers), its example route planned to start now:
/// a route's day is its planned start's, and the reports and gauges default to today, so the
/// example's start ten minutes ago fell on yesterday in the first ten minutes after midnight.
async fn world() -> World {
    let t = common::start_with(|c| {
        c.web.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        carriers(c);
    })
    .await;
    let mut r = common::example_route();
    r.planned_start_ms = common::now_ms();
    t.dispatcher("north")
        .await
        .command(1, milepost_proto::CommandKind::AssignRoute(r))
        .await
        .unwrap();
    World::on(t).await
}

/// The one row of `report` (grouped so that there is one).
fn only_row(report: &Value) -> &Value {
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    &rows[0]["figures"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_day_gives_the_figures_it_was_built_with() {
    let w = world().await;
    let all = w.key_with("bi", &["backoffice:*"]);
    // Acme's north: stop 0 inside its window, stop 1 after its window (failed: no access),
    // stop 2 without a window (a re-attempt of a parcel that failed on an earlier route).
    post(
        &w,
        &all,
        "/api/v1/routes",
        route("EARLY", "east", "D8", &[("AN-3", None)]),
    )
    .await;
    post(
        &w,
        &all,
        "/api/v1/parcels/AN-3/outcome",
        failed("recipient_absent"),
    )
    .await;
    post(&w, &all, "/api/v1/routes/EARLY/cancel", json!({})).await;
    let north = route(
        "R-NORTH",
        "east",
        "D4",
        &[
            ("AN-1", Some((-3600, 3600))),
            ("AN-2", Some((-7200, -3600))),
            ("AN-3", None),
        ],
    );
    post(&w, &all, "/api/v1/routes", north).await;
    post(&w, &all, "/api/v1/parcels/AN-1/outcome", delivered()).await;
    post(
        &w,
        &all,
        "/api/v1/parcels/AN-2/outcome",
        failed("access_problem"),
    )
    .await;
    post(&w, &all, "/api/v1/parcels/AN-3/outcome", delivered()).await;
    // Zeta's south: one parcel delivered.
    post(
        &w,
        &all,
        "/api/v1/routes",
        route("R-SOUTH", "west", "D2", &[("AS-1", None)]),
    )
    .await;
    post(&w, &all, "/api/v1/parcels/AS-1/outcome", delivered()).await;

    let check_north = |f: &Value, routes: u64| {
        assert_eq!(f["routes"], routes, "{f}");
        assert_eq!(f["stops_with_window"], 2, "{f}");
        assert_eq!(f["on_time_rate"], 0.5, "{f}");
        assert_eq!(f["late"], 1, "{f}");
        assert_eq!(f["delivered"], 2, "{f}");
        assert_eq!(f["failed"], if routes == 2 { 2 } else { 1 }, "{f}");
        assert_eq!(f["failed_by_reason"]["access_problem"], 1, "{f}");
    };
    // Live: the day's routes, grouped by carrier (the cancelled one counts too: it closed).
    let r = call(
        &w,
        "GET",
        "/api/v1/analytics?carrier=acme&by=carrier",
        &all,
        None,
    )
    .await;
    let f = only_row(&r);
    check_north(f, 2);
    // First attempts: AN-1 (delivered), AN-2 (failed) and AN-3 on EARLY (failed); AN-3's
    // delivery on R-NORTH was its second attempt.
    assert_eq!(f["first_attempts"], 3, "{f}");
    assert!(
        (f["first_attempt_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9,
        "{f}"
    );
    assert_eq!(f["failed_by_reason"]["recipient_absent"], 1, "{f}");
    assert_eq!(r["rows"][0]["carrier"], "acme");

    // By depot: one row per depot (the test world's example route is in "north", of the
    // default carrier); the total adds them up.
    let r = call(&w, "GET", "/api/v1/analytics?by=carrier,depot", &all, None).await;
    let rows = r["rows"].as_array().unwrap();
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["carrier"].as_str().unwrap(), r["depot"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [("acme", "east"), ("default", "north"), ("zeta", "west")],
        "{r}"
    );
    assert_eq!(rows[2]["figures"]["delivered"], 1);
    assert_eq!(r["total"]["routes"], 4);

    // Today's gauges, per carrier and depot, for Prometheus.
    let admin = w.t.gw.admin_addr.unwrap();
    let metrics = web_support::get(admin, "/metrics", None).await.text();
    for line in [
        "milepost_analytics_routes{carrier=\"acme\",depot=\"east\"} 2",
        "milepost_analytics_on_time_ratio{carrier=\"acme\",depot=\"east\"} 0.5",
        "milepost_analytics_failed_attempts{carrier=\"acme\",depot=\"east\",reason=\"access_problem\"} 1",
        "milepost_analytics_failed_attempts{carrier=\"zeta\",depot=\"west\",reason=\"refused\"} 0",
        "milepost_analytics_routes{carrier=\"default\",depot=\"north\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in:\n{metrics}");
    }

    // Archived into the history: the same figures.
    post(&w, &all, "/api/v1/routes/R-NORTH/cancel", json!({})).await;
    post(&w, &all, "/api/v1/routes/R-SOUTH/cancel", json!({})).await;
    let r = call(
        &w,
        "GET",
        "/api/v1/analytics?carrier=acme&by=carrier",
        &all,
        None,
    )
    .await;
    check_north(only_row(&r), 2);

    // CSV: a header and one line per row, the same numbers.
    let csv = web_support::api(
        &w,
        "GET",
        "/api/v1/analytics?carrier=acme&by=carrier&format=csv",
        &all,
        None,
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let text = csv.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("carrier,depot,driver,day,routes,"),
        "{text}"
    );
    assert!(lines[1].starts_with("acme,,,,2,"), "{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let acme: Vec<&str> = lines[1].split(',').collect();
    let col = |name: &str| acme[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("on_time_rate"), "0.5000");
    assert_eq!(col("failed_access_problem"), "1");

    // The export: Parquet files, read back by pyarrow, agree with the API.
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut files = Vec::new();
    for table in ["routes", "stops", "parcel_events"] {
        let r = web_support::api(
            &w,
            "GET",
            &format!("/api/v1/exports/acme/{day}/{table}.parquet"),
            &all,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(&r.body[..4], b"PAR1");
        let path = w.t.dir.path().join(format!("{table}.parquet"));
        std::fs::write(&path, &r.body).unwrap();
        files.push(path);
    }
    if let Some(tables) = read_parquet(&files) {
        let routes = &tables[0]["rows"];
        assert_eq!(routes.as_array().unwrap().len(), 2, "{routes}");
        let sum = |col: &str| -> i64 {
            routes
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[col].as_i64().unwrap())
                .sum()
        };
        let api = only_row(&r);
        assert_eq!(sum("delivered"), api["delivered"].as_i64().unwrap());
        assert_eq!(sum("failed"), api["failed"].as_i64().unwrap());
        assert_eq!(sum("on_time"), 1);
        assert_eq!(
            sum("stops_with_window"),
            api["stops_with_window"].as_i64().unwrap()
        );
        assert!(routes
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["closed"] == "cancelled"));
        let types: Vec<String> = tables[0]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}:{}",
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap()
                )
            })
            .collect();
        assert!(
            types.contains(&"planned_start:timestamp[ms, tz=UTC]".to_owned()),
            "{types:?}"
        );
        assert!(types.contains(&"route_id:string".to_owned()), "{types:?}");
        let stops = tables[1]["rows"].as_array().unwrap();
        assert_eq!(stops.len(), 4, "{stops:?}");
        let events = tables[2]["rows"].as_array().unwrap();
        // AN-3's history on R-NORTH starts after EARLY closed: its first failure is EARLY's.
        let an3: Vec<&Value> = events.iter().filter(|e| e["tracking"] == "AN-3").collect();
        let early: Vec<&&Value> = an3.iter().filter(|e| e["route_id"] == "EARLY").collect();
        let late: Vec<&&Value> = an3.iter().filter(|e| e["route_id"] == "R-NORTH").collect();
        assert!(
            early
                .iter()
                .any(|e| e["event"] == "Failed" && e["reason"] == "recipient_absent"),
            "{an3:?}"
        );
        assert!(late.iter().any(|e| e["event"] == "Delivered"), "{an3:?}");
        assert!(!late.iter().any(|e| e["event"] == "Failed"), "{an3:?}");
    }

    // `milepost export` writes the same files laid out by carrier and day, from the data
    // directory of a stopped gateway; while the gateway runs it refuses, saying why.
    let out = tempfile::tempdir().unwrap();
    let config = w.t.dir.path().join("carriers.toml");
    std::fs::write(
        &config,
        "[carriers.acme]\ndepots = [\"east\"]\n[carriers.zeta]\ndepots = [\"west\"]\n",
    )
    .unwrap();
    let export = |data: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_milepost"))
            .args(["export", "--day", &day, "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data)
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap()
    };
    let busy = export(w.t.dir.path());
    assert!(!busy.status.success());
    let why = String::from_utf8_lossy(&busy.stderr);
    assert!(why.contains("running gateway"), "{why}");
    let World { t, .. } = w;
    let data = t.stop().await;
    // The stopped gateway's database, as a backup of it would be (in this test's process the
    // database stays open while any of the gateway's tasks still holds it).
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        data.path().join("history.redb"),
        copy.path().join("history.redb"),
    )
    .unwrap();
    let done = export(copy.path());
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let tree = |c: &str, table: &str| {
        out.path()
            .join(format!("carrier={c}"))
            .join(format!("day={day}"))
            .join(format!("{table}.parquet"))
    };
    for c in ["acme", "default", "zeta"] {
        for table in ["routes", "stops", "parcel_events"] {
            assert!(tree(c, table).exists(), "{}", tree(c, table).display());
        }
    }
    // Read as one Hive-partitioned dataset: carrier and day come from the path. Acme's two
    // closed routes, zeta's one; the default carrier's example route is live.
    let routes = [
        tree("acme", "routes"),
        tree("zeta", "routes"),
        tree("default", "routes"),
    ];
    if let Some(t) = read_parquet_with(&["--hive".as_ref(), out.path().as_os_str()], &routes) {
        let rows = t[0]["rows"].as_array().unwrap();
        let mut keys: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["carrier"].as_str().unwrap().into(),
                    r["day"].as_str().unwrap().into(),
                )
            })
            .collect();
        keys.sort();
        let want = |c: &str| (c.to_owned(), day.clone());
        assert_eq!(keys, [want("acme"), want("acme"), want("zeta")], "{rows:?}");
    }
    // The same bytes as the API's file of the same table.
    for table in ["routes", "stops", "parcel_events"] {
        let api = std::fs::read(data.path().join(format!("{table}.parquet"))).unwrap();
        assert_eq!(std::fs::read(tree("acme", table)).unwrap(), api, "{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_day_exports_the_schema() {
    let w = world().await;
    let all = w.key_with("bi", &["backoffice:*"]);
    // A day with no routes: files with the schema and no rows.
    let r = web_support::api(
        &w,
        "GET",
        "/api/v1/exports/acme/2001-01-01/routes.parquet",
        &all,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let empty = w.t.dir.path().join("empty.parquet");
    std::fs::write(&empty, &r.body).unwrap();
    if let Some(t) = read_parquet(&[empty]) {
        assert_eq!(t[0]["rows"].as_array().unwrap().len(), 0);
        assert_eq!(t[0]["columns"].as_array().unwrap().len(), 22);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_never_sees_another_carriers_numbers() {
    let w = world().await;
    let all = w.key_with("ops", &["backoffice:*"]);
    let east = w.key_with("acme-bi", &["backoffice:east"]);
    post(
        &w,
        &all,
        "/api/v1/routes",
        route("I-N", "east", "D3", &[("IN-1", None)]),
    )
    .await;
    post(
        &w,
        &all,
        "/api/v1/routes",
        route("I-S", "west", "D2", &[("IS-1", None), ("IS-2", None)]),
    )
    .await;
    post(&w, &all, "/api/v1/parcels/IS-1/outcome", delivered()).await;
    post(&w, &all, "/api/v1/routes/I-S/cancel", json!({})).await;

    // Grouped by anything, or not at all: only east's route, in rows and in the total.
    for by in ["", "carrier", "depot", "driver,day"] {
        let r = call(
            &w,
            "GET",
            &format!("/api/v1/analytics?by={by}"),
            &east,
            None,
        )
        .await;
        assert_eq!(r["total"]["routes"], 1, "by={by}: {r}");
        assert_eq!(r["total"]["parcels"], 1, "by={by}: {r}");
        let text = r.to_string();
        assert!(
            !text.contains("west") && !text.contains("zeta") && !text.contains("D2"),
            "{text}"
        );
        assert!(!text.contains("north"), "{text}");
    }
    // Asking for the other carrier or depot: 403, nothing in the answer.
    for path in [
        "/api/v1/analytics?carrier=zeta",
        "/api/v1/analytics?carrier=nobody",
        "/api/v1/exports/nobody/2026-01-01/routes.parquet",
        "/api/v1/analytics?depot=west",
        "/api/v1/exports/zeta/2026-01-01/routes.parquet",
    ] {
        let r = web_support::api(&w, "GET", path, &east, None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(!r.text().contains("IS-"), "{}", r.text());
    }
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let r = web_support::api(
        &w,
        "GET",
        &format!("/api/v1/exports/zeta/{day}/parcel_events.parquet"),
        &all,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    // The same export through acme's key is refused; through the wildcard key it has zeta's.
    assert!(r.body.windows(4).any(|x| x == b"IS-1"));

    // Bad input: a clear error with the field named.
    for (path, status, field) in [
        ("/api/v1/analytics?carrier=nobody", 404, "carrier"),
        ("/api/v1/analytics?from=yesterday", 400, "from"),
        ("/api/v1/analytics?from=2026-01-02&to=2026-01-01", 400, "to"),
        ("/api/v1/analytics?from=2020-01-01&to=2026-01-01", 400, "to"),
        ("/api/v1/analytics?by=weather", 400, "by"),
        ("/api/v1/analytics?format=xml", 400, "format"),
        (
            "/api/v1/exports/nobody/2026-01-01/routes.parquet",
            404,
            "carrier",
        ),
        ("/api/v1/exports/acme/2026-13-01/routes.parquet", 400, "day"),
    ] {
        let r = web_support::api(&w, "GET", path, &all, None).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.json()["field"], field, "{path}: {}", r.text());
    }
    let r = web_support::api(
        &w,
        "GET",
        "/api/v1/exports/acme/2026-01-01/secrets.parquet",
        &all,
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

/// Each file read by pyarrow (`MILEPOST_PARQUET_PYTHON`, from `tests/parquet/setup-venv.sh`),
/// or `None` when it is not set (CI sets `MILEPOST_REQUIRE_PARQUET`, and then it must be).
fn read_parquet(files: &[std::path::PathBuf]) -> Option<Vec<Value>> {
    read_parquet_with(&[], files)
}

/// [`read_parquet`] with options for `read.py` (`--hive BASE`).
fn read_parquet_with(
    opts: &[&std::ffi::OsStr],
    files: &[std::path::PathBuf],
) -> Option<Vec<Value>> {
    let python = match std::env::var("MILEPOST_PARQUET_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            assert!(
                std::env::var("MILEPOST_REQUIRE_PARQUET").is_err(),
                "MILEPOST_REQUIRE_PARQUET is set but MILEPOST_PARQUET_PYTHON is not"
            );
            eprintln!("skipping the pyarrow read-back: MILEPOST_PARQUET_PYTHON is not set");
            return None;
        }
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parquet/read.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(opts)
        .args(files)
        .output()
        .expect("run the pyarrow reader");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}
