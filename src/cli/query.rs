//! `milepost query`: ask the live fleet of a dispatcher's depot (nearby, within, nearest) and
//! print the drivers found as a table.

use anyhow::Result;
use clap::{Args, Subcommand};
use milepost::client::Session;
use milepost_proto::{deg_to_e7, DeviceInfo, QueryKind};

use crate::cli::connect::{endpoint, token_subject, ConnectArgs};

#[derive(Args)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(subcommand)]
    what: QueryWhat,
}

#[derive(Subcommand)]
pub(crate) enum QueryWhat {
    /// Drivers within RADIUS metres of LAT,LON.
    Nearby {
        /// Latitude, degrees.
        #[arg(allow_hyphen_values = true)]
        lat: f64,
        /// Longitude, degrees.
        #[arg(allow_hyphen_values = true)]
        lon: f64,
        /// Radius, metres.
        radius_m: f32,
    },
    /// Drivers inside a box.
    Within {
        /// South edge.
        #[arg(allow_hyphen_values = true)]
        min_lat: f64,
        /// West edge.
        #[arg(allow_hyphen_values = true)]
        min_lon: f64,
        /// North edge.
        #[arg(allow_hyphen_values = true)]
        max_lat: f64,
        /// East edge.
        #[arg(allow_hyphen_values = true)]
        max_lon: f64,
    },
    /// The K drivers nearest to LAT,LON.
    Nearest {
        /// Latitude, degrees.
        #[arg(allow_hyphen_values = true)]
        lat: f64,
        /// Longitude, degrees.
        #[arg(allow_hyphen_values = true)]
        lon: f64,
        /// How many.
        #[arg(default_value_t = 10)]
        k: u32,
    },
}

/// Runs one query and prints the drivers found.
pub(crate) async fn query(a: QueryArgs) -> Result<()> {
    let ep = endpoint(&a.conn)?;
    let conn = ep.connect(a.conn.server, &a.conn.server_name).await?;
    let subject = token_subject(&a.conn.token)?;
    let mut s = Session::open(conn, &a.conn.token, &subject, DeviceInfo::default()).await?;
    let kind = match a.what {
        QueryWhat::Nearby { lat, lon, radius_m } => QueryKind::Nearby {
            lat_e7: deg_to_e7(lat),
            lon_e7: deg_to_e7(lon),
            radius_m,
        },
        QueryWhat::Within {
            min_lat,
            min_lon,
            max_lat,
            max_lon,
        } => QueryKind::Within {
            min_lat_e7: deg_to_e7(min_lat),
            min_lon_e7: deg_to_e7(min_lon),
            max_lat_e7: deg_to_e7(max_lat),
            max_lon_e7: deg_to_e7(max_lon),
        },
        QueryWhat::Nearest { lat, lon, k } => QueryKind::Nearest {
            lat_e7: deg_to_e7(lat),
            lon_e7: deg_to_e7(lon),
            k,
        },
    };
    let r = s.query(1, kind).await?;
    println!(
        "{:<16} {:>8} {:>11} {:>12} {:>9} {:>24}",
        "driver", "seq", "lat", "lon", "dist_m", "fix time (UTC)"
    );
    for d in &r.drivers {
        let t = chrono::DateTime::from_timestamp_millis(d.fix.t_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        println!(
            "{:<16} {:>8} {:>11.6} {:>12.6} {:>9.1} {:>24}",
            d.driver,
            d.seq,
            d.fix.lat(),
            d.fix.lon(),
            d.distance_m,
            t
        );
    }
    println!(
        "{} driver(s){}",
        r.drivers.len(),
        if r.truncated { " (truncated)" } else { "" }
    );
    s.close();
    ep.quinn().wait_idle().await;
    Ok(())
}
