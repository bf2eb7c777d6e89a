//! `milepost export`: writes a day's Parquet exports of every carrier (or one) from a data
//! directory's history, laid out by carrier and day:
//! `OUT/carrier=<id>/day=<YYYY-MM-DD>/{routes,stops,parcel_events}.parquet`, the layout Hive-
//! partitioned readers (DuckDB, pyarrow, Spark) take the carrier and day from. Offline: the
//! history database is one process's at a time, so run it beside a stopped gateway, or fetch
//! the same files from a running one (`GET /api/v1/exports/{carrier}/{day}/{table}.parquet`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use clap::Args;
use milepost::analytics::export::export_day;
use milepost::config::Config;
use milepost::history::History;
use milepost::tenancy::DEFAULT_CARRIER;

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The gateway's configuration file (its data directory and `[carriers]`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data directory (default: the configuration's).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// First local day, YYYY-MM-DD.
    #[arg(long)]
    day: String,
    /// Last local day (default: --day).
    #[arg(long)]
    to: Option<String>,
    /// Only this carrier.
    #[arg(long)]
    carrier: Option<String>,
    /// Where the files go.
    #[arg(long)]
    out: PathBuf,
}

fn date(s: &str, flag: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{flag} {s:?}: expected YYYY-MM-DD"))
}

pub(crate) fn export(a: ExportArgs) -> Result<()> {
    let mut cfg = match &a.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    cfg.carriers.validate().map_err(anyhow::Error::msg)?;
    let from = date(&a.day, "--day")?;
    let to = match &a.to {
        Some(t) => date(t, "--to")?,
        None => from,
    };
    if to < from || (to - from).num_days() > 366 {
        bail!("--to must be on or after --day, at most 366 days later");
    }
    let carriers = &cfg.carriers;
    if let Some(c) = &a.carrier {
        if !carriers.knows(c) {
            bail!("no carrier {c:?} in the configuration's [carriers] (nor the default one)");
        }
    }
    let path = cfg.data_dir.join("history.redb");
    if !path.exists() {
        bail!("{} does not exist: no history to export", path.display());
    }
    let history = History::open(&path, &cfg.history).with_context(|| {
        format!(
            "opening {} (a running gateway holds it: stop it, or use GET /api/v1/exports)",
            path.display()
        )
    })?;
    let mut depots: Vec<String> = history.depots()?.into_iter().map(|d| d.0).collect();
    for c in carriers.0.values() {
        depots.extend(c.depots.iter().cloned());
    }
    depots.sort();
    depots.dedup();
    let mut ids: Vec<String> = match &a.carrier {
        Some(c) => vec![c.clone()],
        None => {
            let mut v: Vec<String> = carriers.0.keys().cloned().collect();
            v.push(DEFAULT_CARRIER.to_owned());
            v
        }
    };
    ids.sort();
    ids.dedup();
    let mut day = from;
    while day <= to {
        let d = day.format("%Y-%m-%d").to_string();
        for carrier in &ids {
            let e = export_day(&history, carriers, &depots, carrier, day)?;
            let dir = a
                .out
                .join(format!("carrier={carrier}"))
                .join(format!("day={d}"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (table, bytes) in &e.files {
                let file = dir.join(format!("{table}.parquet"));
                std::fs::write(&file, bytes)
                    .with_context(|| format!("writing {}", file.display()))?;
            }
            println!(
                "{}: {} routes, {} parcel events",
                dir.display(),
                e.routes,
                e.parcel_events
            );
        }
        day = match day.succ_opt() {
            Some(n) => n,
            None => break,
        };
    }
    Ok(())
}
