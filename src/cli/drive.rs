//! `milepost drive`: replay one recorded trace as one driver, printing what the gateway acked.

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
    let opts = milepost::replay::drive::DriveOptions {
        server: a.conn.server,
        server_name: a.conn.server_name.clone(),
        token: a.conn.token.clone(),
        driver: token_subject(&a.conn.token)?,
        speedup: a.speedup,
        batch: a.batch.max(1),
        live: !a.no_live,
        reconnect_for: a.reconnect_for.into(),
        limit: a.limit,
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
