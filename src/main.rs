//! The `milepost` command: the gateway (`serve`) and its clients and tools in one binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use milepost::auth::{Claims, Role, TokenKey};
use milepost::client::{ClientEndpoint, Session};
use milepost::config::Config;
use milepost::server::Gateway;
use milepost_proto::{deg_to_e7, DeviceInfo, QueryKind};

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
    /// Print an example configuration file with every knob at its default.
    ConfigExample,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "MILEPOST_CONFIG")]
    config: Option<PathBuf>,
    /// UDP address to listen on (default 127.0.0.1:4433).
    #[arg(long, env = "MILEPOST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory (default ./milepost-data).
    #[arg(long, env = "MILEPOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TCP address of the admin HTTP listener: /metrics, /healthz, /readyz
    /// (default 127.0.0.1:9464).
    #[arg(long, env = "MILEPOST_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// TCP address of the web listener: tracking pages and the dispatcher map
    /// (default: off).
    #[arg(long, env = "MILEPOST_WEB_LISTEN")]
    web_listen: Option<SocketAddr>,
    /// Token signing secret (default: generated in the data directory).
    #[arg(long, env = "MILEPOST_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Run as one gateway of a cluster over NATS JetStream at this URL, e.g.
    /// nats://127.0.0.1:4222 (default: a single box with its own log).
    #[arg(long, env = "MILEPOST_CLUSTER")]
    cluster: Option<String>,
    /// This gateway's name in the cluster (default: host name and port).
    #[arg(long, env = "MILEPOST_NODE")]
    node: Option<String>,
}

#[derive(Args)]
struct TokenArgs {
    /// What the token may do.
    #[arg(long, value_enum)]
    role: Role,
    /// Driver id, depot or tracking number.
    #[arg(long)]
    subject: String,
    /// Depot the holder belongs to (defaults to the subject for a dispatcher, else "default").
    #[arg(long)]
    depot: Option<String>,
    /// Lifetime, e.g. 12h, 30m, 7d.
    #[arg(long, default_value = "12h")]
    ttl: humantime::Duration,
    /// Data directory holding the secret (default ./milepost-data).
    #[arg(long, env = "MILEPOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Secret, instead of the data directory's.
    #[arg(long, env = "MILEPOST_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

#[derive(Args)]
struct WatchArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Whose feed: a recipient's parcel or a dispatcher's depot (default: the token's role).
    #[arg(long, value_enum)]
    role: Option<Role>,
}

#[derive(Subcommand)]
enum RouteCmd {
    /// Validate route files offline (format in docs/ROUTES.md).
    Check {
        /// Route JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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

#[derive(Args)]
struct RevokeArgs {
    /// Revoke this one token.
    #[arg(long, conflicts_with = "subject")]
    token: Option<String>,
    /// Revoke every token of this subject (with --role).
    #[arg(long, requires = "role")]
    subject: Option<String>,
    /// The subject's role.
    #[arg(long, value_enum)]
    role: Option<Role>,
    /// Data directory of the gateway (default ./milepost-data).
    #[arg(long, env = "MILEPOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ConnectArgs {
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:4433")]
    server: SocketAddr,
    /// Name on the gateway's certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// CA certificate to trust (default: the dev CA in ./milepost-data/certs/ca.pem).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Token (from `milepost token`).
    #[arg(long, env = "MILEPOST_TOKEN")]
    token: String,
}

#[derive(Args)]
struct DriveArgs {
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

#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(subcommand)]
    what: QueryWhat,
}

#[derive(Subcommand)]
enum QueryWhat {
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

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "milepost=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
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
        Cmd::Serve(a) => serve(a).await,
        Cmd::Token(a) => token(a),
        Cmd::Drive(a) => drive(a).await,
        Cmd::Query(a) => query(a).await,
        Cmd::Replay(a) => milepost::replay::load::run(*a).await,
        Cmd::Revoke(a) => revoke(a),
        Cmd::Route(c) => route(c).await,
        Cmd::Watch(a) => {
            let ep = endpoint(&a.conn)?;
            let subject = token_subject(&a.conn.token)?;
            let recipient = match a.role {
                Some(r) => r == Role::Recipient,
                None => token_role(&a.conn.token)? == Role::Recipient,
            };
            milepost::tools::watch::watch(
                &ep,
                a.conn.server,
                &a.conn.server_name,
                &a.conn.token,
                &subject,
                recipient,
            )
            .await?;
            Ok(())
        }
        Cmd::GtfsToRoute(a) => milepost::tools::gtfs::run(a),
        Cmd::EvalEta(a) => milepost::tools::eval_eta::run(a),
        Cmd::ConfigExample => {
            print!("{}", Config::example_toml());
            Ok(())
        }
    }
}

async fn serve(a: ServeArgs) -> Result<()> {
    let mut cfg = match &a.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(s) = a.secret {
        cfg.secret = Some(s);
    }
    if let Some(l) = a.admin_listen {
        cfg.admin_listen = l;
    }
    if let Some(l) = a.web_listen {
        cfg.web.listen = Some(l);
    }
    if let Some(url) = a.cluster {
        cfg.cluster.url = Some(url);
    }
    if let Some(node) = a.node {
        cfg.cluster.node = Some(node);
    }
    // Listen for signals before anything else, so a SIGTERM during recovery is not lost.
    let stop = shutdown_signal()?;
    let gw = Gateway::start(cfg.clone())
        .await
        .context("starting the gateway")?;
    tracing::info!(addr = %gw.local_addr, data_dir = %cfg.data_dir.display(), "milepost gateway listening (QUIC, ALPN milepost/1)");
    if let Some(admin) = gw.admin_addr {
        tracing::info!(admin = %admin, "admin listener: /metrics /healthz /readyz");
    }
    if let Some(web) = gw.web_addr {
        tracing::info!(web = %web, "web listener: /t/{{tracking}}?token=... /dispatch?token=...");
    }
    if let Some(ca) = &gw.dev_ca {
        tracing::info!(ca = %ca.display(), "development CA: clients trust this file (see certs/README.md)");
    }
    gw.run_until(stop).await;
    Ok(())
}

/// A future that resolves on SIGINT or SIGTERM; the handlers are installed when this returns.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn token(a: TokenArgs) -> Result<()> {
    let key = match a.secret {
        Some(s) => TokenKey::new(s.as_bytes()),
        None => {
            let dir = a.data_dir.unwrap_or_else(|| Config::default().data_dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            TokenKey::load_or_create(&dir.join("secret.key")).context("token secret")?
        }
    };
    let now = chrono::Utc::now().timestamp();
    let ttl = Duration::from(a.ttl).as_secs() as i64;
    let depot = a.depot.unwrap_or_else(|| match a.role {
        Role::Dispatcher => a.subject.clone(),
        _ => "default".into(),
    });
    let claims = Claims {
        role: a.role,
        sub: a.subject,
        depot,
        exp: now + ttl,
        iat: now,
    };
    println!("{}", key.mint(&claims));
    Ok(())
}

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

async fn route(c: RouteCmd) -> Result<()> {
    match c {
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

fn revoke(a: RevokeArgs) -> Result<()> {
    use std::io::Write;
    let entry = match (&a.token, &a.subject, a.role) {
        (Some(t), _, _) => milepost::server::guard::fingerprint(t),
        (None, Some(s), Some(r)) => format!("{r:?}:{s}").to_lowercase(),
        _ => bail!("give --token, or --subject with --role"),
    };
    let dir = a.data_dir.unwrap_or_else(|| Config::default().data_dir);
    let path = dir.join("revoked.txt");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{entry}  # revoked {}", chrono::Utc::now().to_rfc3339())?;
    println!("revoked {entry} (in {})", path.display());
    Ok(())
}

fn endpoint(c: &ConnectArgs) -> Result<ClientEndpoint> {
    let ca =
        c.ca.clone()
            .unwrap_or_else(|| Config::default().data_dir.join("certs/ca.pem"));
    if !ca.exists() {
        bail!(
            "CA certificate {} not found: pass --ca (the gateway prints where its dev CA is)",
            ca.display()
        );
    }
    let bind: SocketAddr = if c.server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .context("bind address")?;
    Ok(ClientEndpoint::new(bind, &ca)?)
}

/// The token's role, read without checking the signature (the server checks it).
fn token_role(token: &str) -> Result<Role> {
    Ok(token_claims(token)?.role)
}

/// The token's subject, read without checking the signature (the server checks it).
fn token_subject(token: &str) -> Result<String> {
    Ok(token_claims(token)?.sub)
}

fn token_claims(token: &str) -> Result<Claims> {
    use base64::Engine;
    let payload = token
        .strip_prefix("mp1.")
        .and_then(|r| r.split('.').next())
        .context("not a milepost token")?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .context("token payload")?;
    let claims: Claims = serde_json::from_slice(&json).context("token claims")?;
    Ok(claims)
}

async fn drive(a: DriveArgs) -> Result<()> {
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

async fn query(a: QueryArgs) -> Result<()> {
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
