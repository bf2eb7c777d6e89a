//! The `milepost` command: the gateway (`serve`) and its clients and tools in one binary. This
//! file parses the command line and dispatches; each command group's body is in [`cli`].

mod cli;

use anyhow::Result;
use clap::{Parser, Subcommand};
use milepost::config::Config;

use crate::cli::drive::DriveArgs;
use crate::cli::key::KeyCmd;
use crate::cli::query::QueryArgs;
use crate::cli::route::RouteCmd;
use crate::cli::serve::ServeArgs;
use crate::cli::token::{RevokeArgs, TokenArgs};
use crate::cli::watch::WatchArgs;

/// Milepost: last-mile delivery tracking gateway.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (creates dev certificates and a data directory on first run).
    Serve(ServeArgs),
    /// Watch a delivery day: a gateway with its pages, a route on a real trace driven through
    /// it, the tracking and dispatcher links printed; until Ctrl-C.
    Demo(cli::demo::DemoArgs),
    /// Mint a signed token for a driver, dispatcher or recipient.
    Token(TokenArgs),
    /// Replay one recorded trace (GPX, CSV, GeoJSON) as one driver.
    Drive(DriveArgs),
    /// Ask the live fleet of a depot: nearby, within, nearest.
    Query(QueryArgs),
    /// Replay recorded traces as many simulated drivers (load generator).
    Replay(Box<milepost::replay::load::ReplayArgs>),
    /// Follow a feed in the terminal: a parcel's status (recipient token) or a depot's live
    /// fleet (dispatcher token).
    Watch(WatchArgs),
    /// Routes: check route files, load them into a gateway.
    #[command(subcommand)]
    Route(RouteCmd),
    /// Convert GTFS + recorded GTFS-realtime pings to route JSON files and traces.
    GtfsToRoute(milepost::tools::gtfs::GtfsArgs),
    /// Score the ETA model against observed arrivals (replays GTFS-realtime traces).
    EvalEta(milepost::tools::eval_eta::EvalEtaArgs),
    /// Revoke a token, or every token of a subject (takes effect within a second, no restart).
    Revoke(RevokeArgs),
    /// Record a parcel's outcome through the back-office API (uploads photo and signature).
    Outcome(cli::office::OutcomeArgs),
    /// API keys for back-office systems: create, list, revoke.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Write a day's analytics exports (Parquet, by carrier and day) from a data directory.
    Export(cli::export::ExportArgs),
    /// Print an example configuration file with every knob at its default.
    ConfigExample,
}

fn main() {
    let cli = Cli::parse();
    // The demo talks to a person in the terminal: the gateway's own log only says what
    // went wrong (RUST_LOG still decides when set).
    let default_filter = match cli.cmd {
        Cmd::Demo(_) => "warn",
        _ => "milepost=info,warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Serve(a) => cli::serve::serve(a).await,
        Cmd::Demo(a) => cli::demo::demo(a).await,
        Cmd::Token(a) => cli::token::token(a),
        Cmd::Drive(a) => cli::drive::drive(a).await,
        Cmd::Query(a) => cli::query::query(a).await,
        Cmd::Replay(a) => milepost::replay::load::run(*a).await,
        Cmd::Revoke(a) => cli::token::revoke(a),
        Cmd::Key(c) => cli::key::key(c),
        Cmd::Outcome(a) => cli::office::outcome(a),
        Cmd::Route(c) => cli::route::route(c).await,
        Cmd::Watch(a) => cli::watch::watch(a).await,
        Cmd::GtfsToRoute(a) => milepost::tools::gtfs::run(a),
        Cmd::EvalEta(a) => milepost::tools::eval_eta::run(a),
        Cmd::Export(a) => cli::export::export(a),
        Cmd::ConfigExample => {
            print!("{}", Config::example_toml());
            Ok(())
        }
    }
}
