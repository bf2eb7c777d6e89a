//! `milepost drive`: replay one recorded trace as one driver, printing what the gateway acked.
//! With `--route` (a route file, or the id of a route the gateway has loaded), the recorded
//! day's route is assigned first, moved in time by the same offset as the trace, so that its
//! planned times and windows stay where they were against the drive.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::connect::{endpoint, token_subject, ConnectArgs};

#[derive(Args)]
pub(crate) struct DriveArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Recorded trace: .gpx, .csv, .csv.gz, .geojson.
    #[arg(long)]
    trace: PathBuf,
    /// Which trace in the file, when it holds several (by id; default the first).
    #[arg(long)]
    trace_id: Option<String>,
    /// Replay speed (1 = as recorded).
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// Fixes per batch upload.
    #[arg(long, default_value_t = 5)]
    batch: usize,
    /// Do not send live datagrams (batches only).
    #[arg(long)]
    no_live: bool,
    /// Stop after N fixes.
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Keep reconnecting this long after losing the gateway.
    #[arg(long, default_value = "60s")]
    reconnect_for: humantime::Duration,
    /// The route the trace drives: a route file (route JSON, docs/ROUTES.md), or the id of a
    /// route the gateway has loaded. Assigned (or replaced) first, shifted in time by the
    /// trace's offset, so a recorded day replays today with its plan intact.
    #[arg(long, requires = "dispatcher_token")]
    route: Option<String>,
    /// A dispatcher token of the route's depot, to assign `--route`.
    #[arg(long, env = "MILEPOST_DISPATCHER_TOKEN", hide_env_values = true)]
    dispatcher_token: Option<String>,
}

/// Drives the chosen trace and prints what the gateway acked.
pub(crate) async fn drive(a: DriveArgs) -> Result<()> {
    let traces = milepost::replay::trace::read_traces(&a.trace, None)
        .with_context(|| format!("reading {}", a.trace.display()))?;
    let trace = match &a.trace_id {
        Some(id) => traces
            .iter()
            .find(|t| &t.id == id)
            .with_context(|| format!("no trace {id} in the file"))?,
        None => traces.first().context("the file holds no trace")?,
    };
    let ep = endpoint(&a.conn)?;
    let driver = token_subject(&a.conn.token)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    if let (Some(arg), Some(token)) = (&a.route, &a.dispatcher_token) {
        let offset = milepost::replay::drive::time_offset(&trace.points, a.speedup, now_ms);
        let start = trace.points.first().map(|p| p.t_ms);
        assign_shifted(&ep, &a.conn, token, arg, &driver, (offset, start)).await?;
    }
    let opts = milepost::replay::drive::DriveOptions {
        server: a.conn.server,
        server_name: a.conn.server_name.clone(),
        token: a.conn.token.clone(),
        driver,
        speedup: a.speedup,
        batch: a.batch.max(1),
        live: !a.no_live,
        reconnect_for: a.reconnect_for.into(),
        limit: a.limit,
        now_ms: Some(now_ms),
    };
    eprintln!(
        "driving {} ({} points) as {} at {}x",
        trace.id,
        trace.points.len(),
        opts.driver,
        a.speedup
    );
    let r = milepost::replay::drive::drive(&ep, trace, &opts).await?;
    println!(
        "fixes {}  acked {}  rejected {}  duplicates {}  reconnects {}  seqs {}..{}",
        r.fixes,
        r.acked,
        r.rejected,
        r.duplicates,
        r.reconnects,
        r.first_seq,
        r.first_seq + r.fixes.saturating_sub(1)
    );
    ep.quinn().wait_idle().await;
    Ok(())
}

/// Reads the route `arg` (a file, or a loaded route's id), moves it by `offset_ms` and
/// assigns it (a loaded one is replaced) with the dispatcher's `token`. `trace_start_ms`: the
/// trace's first point, which a loaded route must still be on the day of.
async fn assign_shifted(
    ep: &milepost::client::ClientEndpoint,
    conn: &ConnectArgs,
    token: &str,
    arg: &str,
    driver: &str,
    (offset_ms, trace_start_ms): (i64, Option<i64>),
) -> Result<()> {
    use milepost::replay::route_source::{self, RouteSource};
    use milepost_core::fleet::route::shift_route;
    // Read a file before connecting: a bad one is said without a round trip. `Err`: the id of
    // a loaded route, asked for once connected.
    let file = match RouteSource::parse(arg) {
        RouteSource::File(path) => Ok(route_source::read_file(&path)?),
        RouteSource::Loaded(id) => Err(id),
    };
    let qc = ep.connect(conn.server, &conn.server_name).await?;
    let depot = token_subject(token)?;
    let mut s =
        milepost::client::Session::open(qc, token, &depot, milepost_proto::DeviceInfo::default())
            .await?;
    let mut route = match file {
        Ok(route) => route,
        Err(id) => {
            let route = route_source::fetch(&mut s, &depot, &id).await?;
            if let Some(start) = trace_start_ms {
                route_source::on_the_traces_day(&route, start)?;
            }
            route
        }
    };
    if route.driver.0 != driver {
        anyhow::bail!(
            "route {} is for driver {}, but the token drives as {driver}",
            route.id,
            route.driver
        );
    }
    shift_route(&mut route, offset_ms);
    let id = route.id.clone();
    let start = milepost_core::present::hhmm(route.planned_start_ms);
    s.command(2, milepost_proto::CommandKind::AssignRoute(route))
        .await
        .with_context(|| format!("assigning route {id}"))?;
    s.close();
    eprintln!(
        "route {id} assigned, moved by {} with the trace: it starts at {start} UTC",
        milepost_core::present::duration_text(offset_ms.unsigned_abs() / 1000)
    );
    Ok(())
}
