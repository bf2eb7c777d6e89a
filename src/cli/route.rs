//! `milepost route check` and `milepost route load`: validate route files offline, or assign
//! them on a gateway as a dispatcher of their depot.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use milepost::client::Session;
use milepost_proto::DeviceInfo;

use crate::cli::connect::{endpoint, token_subject, ConnectArgs};

#[derive(Subcommand)]
pub(crate) enum RouteCmd {
    /// Validate route files offline (format in docs/ROUTES.md).
    Check {
        /// Route JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Cancel a live route, through the back-office API (its parcels keep their history).
    Cancel {
        /// The route's id.
        route: String,
        #[command(flatten)]
        api: crate::cli::office::ApiArgs,
    },
    /// Assign (or replace) routes on a gateway, as a dispatcher of their depot.
    Load {
        #[command(flatten)]
        conn: ConnectArgs,
        /// Route JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Reads and parses route files, naming the file in any error.
fn read_routes(files: &[PathBuf]) -> Result<Vec<milepost_proto::route::Route>> {
    use milepost_core::fleet::route::RouteJson;
    files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            milepost_proto::route::Route::from_json(&text)
                .with_context(|| format!("{}", f.display()))
        })
        .collect()
}

/// Checks route files, or loads them on a gateway.
pub(crate) async fn route(c: RouteCmd) -> Result<()> {
    match c {
        RouteCmd::Cancel { route, api } => crate::cli::office::cancel(&api, &route),
        RouteCmd::Check { files } => {
            for (f, r) in files.iter().zip(read_routes(&files)?) {
                let parcels: usize = r.stops.iter().map(|s| s.parcels.len()).sum();
                println!(
                    "{}: ok (route {}, driver {}, {} stops, {} parcels)",
                    f.display(),
                    r.id,
                    r.driver,
                    r.stops.len(),
                    parcels
                );
            }
            Ok(())
        }
        RouteCmd::Load { conn, files } => {
            let routes = read_routes(&files)?;
            let ep = endpoint(&conn)?;
            let qc = ep.connect(conn.server, &conn.server_name).await?;
            let subject = token_subject(&conn.token)?;
            let mut s = Session::open(qc, &conn.token, &subject, DeviceInfo::default()).await?;
            for (i, r) in routes.into_iter().enumerate() {
                let id = r.id.clone();
                s.command(i as u32, milepost_proto::CommandKind::AssignRoute(r))
                    .await
                    .with_context(|| format!("assigning route {id}"))?;
                println!("route {id} assigned");
            }
            s.close();
            ep.quinn().wait_idle().await;
            Ok(())
        }
    }
}
