//! `milepost demo`: a gateway with its web pages, a delivery day laid on a real recorded
//! trace and driven through it, and the links to watch it; until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use milepost::config::Config;
use milepost::server::Gateway;
use milepost::tools::demo::{self, plan, DriveOptions, Step};

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// The recorded trace the day is laid on (GPX, CSV, GeoJSON).
    #[arg(
        long,
        default_value = "../shared/data/gpxpy_real_tracks/around-visnjan-with-car.gpx"
    )]
    trace: PathBuf,
    /// Stops on the route (8 to 12 read well; fewer on a short trace).
    #[arg(long, default_value_t = 10)]
    stops: usize,
    /// Replay speed: 4 drives the 9-minute default trace in about 2 minutes.
    #[arg(long, default_value_t = 4.0)]
    speedup: f64,
    /// Time at each stop before the outcome (arrival is detected after 20 s inside the stop).
    #[arg(long, default_value = "25s")]
    dwell: humantime::Duration,
    /// UDP address of the gateway's QUIC endpoint.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// TCP address of the web pages (use 127.0.0.1:0 for any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    web_listen: SocketAddr,
    /// Data directory (default: a fresh one under the system's temporary directory, removed
    /// at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Runs the demo until the day is driven and Ctrl-C is pressed.
pub(crate) async fn demo(a: DemoArgs) -> Result<()> {
    if !(0.1..=50.0).contains(&a.speedup) {
        bail!("--speedup must be between 0.1 and 50, not {}", a.speedup);
    }
    let dwell_ms = a.dwell.as_millis() as i64;
    if !(1_000..=600_000).contains(&dwell_ms) {
        bail!("--dwell must be between 1s and 10m");
    }
    if !demo::udp_free(a.listen) {
        bail!(
            "UDP port {} is in use (another gateway?): pick another with --listen 127.0.0.1:PORT",
            a.listen
        );
    }
    if !demo::tcp_free(a.web_listen) {
        bail!(
            "TCP port {} is in use: pick another with --web-listen 127.0.0.1:PORT, or 127.0.0.1:0 for any free port",
            a.web_listen
        );
    }
    let traces = milepost::replay::trace::read_traces(&a.trace, None).with_context(|| {
        format!(
            "reading the trace {} (pass another with --trace)",
            a.trace.display()
        )
    })?;
    let trace = traces.first().context("the trace file holds no trace")?;
    let start_ms = chrono::Utc::now().timestamp_millis();
    let day = plan::plan(
        &trace.points,
        &plan::PlanOptions {
            stops: a.stops,
            speedup: a.speedup,
            dwell_ms,
            start_ms,
            route_id: format!("DEMO-{}", start_ms / 1000),
            max_shown_mps: plan::MAX_SHOWN_MPS,
        },
    )
    .map_err(anyhow::Error::msg)?;

    // Signals first: a Ctrl-C from here on shuts the gateway down and removes its data.
    let stop = crate::cli::serve::shutdown_signal()?;
    let dir = DataDir::new(a.data_dir.clone())?;
    let mut cfg = Config {
        listen: a.listen,
        data_dir: dir.path.clone(),
        admin: false,
        ..Config::default()
    };
    cfg.web.listen = Some(a.web_listen);
    let gw = Gateway::start(cfg).await.context("starting the gateway")?;
    let result = show(&gw, &a, &day, trace, &dir.path, dwell_ms, stop).await;
    gw.shutdown().await;
    result
}

/// Where the demo keeps its data: a fresh temporary directory, removed when this is dropped
/// (on every way out), unless the user named one.
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl DataDir {
    fn new(named: Option<PathBuf>) -> Result<DataDir> {
        Ok(match named {
            Some(path) => DataDir {
                path,
                temporary: false,
            },
            None => DataDir {
                path: demo::fresh_dir().context("a data directory")?,
                temporary: true,
            },
        })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.temporary {
            demo::remove_dir(&self.path);
        }
    }
}

/// Assigns the day, prints the links, drives it; then waits for `stop`.
async fn show(
    gw: &Gateway,
    a: &DemoArgs,
    day: &plan::Plan,
    trace: &milepost::replay::trace::Trace,
    data_dir: &std::path::Path,
    dwell_ms: i64,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let web = gw.web_addr.context("the web listener did not start")?;
    let (driver, links) = demo::links(gw, day, web, 12 * 3600);
    demo::assign(gw, day)
        .await
        .context("assigning the demo route")?;

    let km = plan::length_m(&trace.points) / 1000.0;
    println!(
        "Milepost demo: gateway on {} (QUIC) and http://{web}, data in {}",
        gw.local_addr,
        data_dir.display()
    );
    println!(
        "Route {} of depot {}: {} stops on {} ({km:.1} km), driver {}, at {}x with {} s at each stop.\n",
        day.route.id.0,
        plan::DEPOT,
        day.stops.len(),
        a.trace.display(),
        plan::DRIVER,
        a.speedup,
        dwell_ms / 1000
    );
    println!("Open these while it drives:");
    let follow = day.stops.len() / 2;
    for (k, (t, url)) in links.parcels.iter().enumerate() {
        let note = match &day.stops[k].action {
            plan::Action::Fail(_) => " (this attempt will fail)",
            plan::Action::Code => " (delivered against a code)",
            plan::Action::HandedTo(_) => " (handed to a named person)",
            plan::Action::Photo => "",
        };
        if k == follow || !note.is_empty() {
            println!("  recipient of {t}{note}:\n    {url}");
        }
    }
    println!("  dispatcher's map:\n    {}", links.dispatcher);
    println!("  API reference: {}", links.api_docs);
    println!(
        "  every parcel: MP-DEMO-01 .. {} (the same link with another number)\n",
        plan::tracking(day.stops.len() - 1)
    );

    let started = std::time::Instant::now();
    // Once driving, a Ctrl-C (or SIGTERM) ends the demo cleanly, removing its data.
    let at = move || {
        let s = started.elapsed().as_secs();
        format!("[{:02}:{:02}]", s / 60, s % 60)
    };
    let opts = DriveOptions {
        dwell_ms,
        dwell_fix_ms: 1_000,
    };
    let driving = demo::drive_day(gw, day, &trace.points, &driver, &opts, |s| match s {
        Step::Started => println!("{} the driver leaves the depot", at()),
        Step::AtStop { stop } => println!("{} stopped at {stop}", at()),
        Step::Outcome {
            stop,
            tracking,
            what,
        } => println!("{} {stop} {tracking}: {what}", at()),
        Step::Finished => println!("{} back at the depot: the day is done", at()),
    });
    tokio::pin!(stop);
    let interrupted = tokio::select! {
        r = driving => {
            r?;
            false
        }
        _ = &mut stop => true,
    };
    if !interrupted {
        println!("Pages stay up until Ctrl-C.");
        stop.await;
    }
    Ok(())
}
