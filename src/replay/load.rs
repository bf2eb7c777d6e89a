//! The load generator's command line (`milepost replay`): reads recorded traces, builds a
//! [`ReplayConfig`], runs [`replay`](crate::replay::sim::replay) and prints the report (a table
//! on stdout, optionally JSON to a file). The engine and the report live in
//! [`crate::replay::sim`] and [`crate::replay::metrics`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use crate::auth::TokenKey;
use crate::client::Timers;
use crate::replay::playback::split_at_gaps;
use crate::replay::route_source::RouteSource;
use crate::replay::sim::{replay, NetParams, Pace, ReplayConfig, PROFILES};
use crate::replay::trace::{read_traces_with, ReadOptions, TraceFormat};

/// Arguments of `milepost replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Recorded trace file (.gpx, .csv, .csv.gz, .txt.gz, .geojson); repeat for several.
    #[arg(long = "trace", required = true)]
    traces: Vec<PathBuf>,
    /// Format of the trace files: gpx, geojson, geolife, gtfs-rt or csv:lat=..,lon=..,time=..
    /// (default: from the extension and CSV header).
    #[arg(long)]
    format: Option<String>,
    /// Fail on an untimed or invalid point instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Split traces where consecutive points are further apart than this (recordings that
    /// span days become trips).
    #[arg(long, default_value = "5m")]
    split_gap: humantime::Duration,
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:4433")]
    server: SocketAddr,
    /// Name on the gateway's certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// CA certificate to trust (default: DATA_DIR/certs/ca.pem).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The gateway's data directory: its secret.key signs the drivers' tokens.
    #[arg(long, env = "MILEPOST_DATA_DIR", default_value = "milepost-data")]
    data_dir: PathBuf,
    /// The gateway's token secret, instead of DATA_DIR/secret.key.
    #[arg(long, env = "MILEPOST_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Simulated drivers, each its own QUIC connection and token.
    #[arg(long, default_value_t = 100)]
    drivers: u32,
    /// Number of the first driver (ids are PREFIX00001, PREFIX00002...).
    #[arg(long, default_value_t = 1)]
    first_driver: u32,
    /// Prefix of the driver ids.
    #[arg(long, default_value = "sim-")]
    driver_prefix: String,
    /// Depot of every simulated driver (with `--depots`, the prefix of their depots' names).
    #[arg(long, default_value = "sim")]
    depot: String,
    /// Spread the drivers over this many depots, `DEPOT-0` to `DEPOT-(N-1)` by a hash of the
    /// driver id (a cluster that folds only what it owns partitions by depot).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    depots: u32,
    /// Fixed fixes per second per driver (positions interpolated along the trace) instead of
    /// one fix per recorded point.
    #[arg(long)]
    rate: Option<f64>,
    /// Replay speed (1 = as recorded).
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// How long every driver sends after the ramp.
    #[arg(long, default_value = "60s")]
    duration: humantime::Duration,
    /// Spread the drivers' starts over this time (default: 1 s per 1000 drivers, at least 1 s).
    #[arg(long)]
    ramp: Option<humantime::Duration>,
    /// Warm-up after the ramp before the measurement window (at most a quarter of the run).
    #[arg(long, default_value = "5s")]
    warmup: humantime::Duration,
    /// Move drivers sharing a trace by a random offset up to this many metres.
    #[arg(long, default_value_t = 200.0)]
    spread_m: f64,
    /// Upload after this many new fixes.
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Also upload at this interval when fixes are waiting (e.g. 10s).
    #[arg(long)]
    batch_interval: Option<humantime::Duration>,
    /// Do not send the newest fix as a live datagram: batches only.
    #[arg(long)]
    no_live: bool,
    /// Resend a live fix in a batch when not acked within this time.
    #[arg(long, default_value = "3s")]
    live_timeout: humantime::Duration,
    /// Chance that a driver goes offline once during its run (0..1).
    #[arg(long, default_value_t = 0.0)]
    offline_prob: f64,
    /// Length of an offline period, seconds.
    #[arg(long, default_value_t = 30.0)]
    offline_secs: f64,
    /// Chance that a driver switches networks once during its run (0..1).
    #[arg(long, default_value_t = 0.0)]
    migrate_prob: f64,
    /// Connections sharing one UDP socket.
    #[arg(long, default_value_t = 1000)]
    per_endpoint: u32,
    /// Local IP for the client sockets (default: unspecified, of the server's family).
    #[arg(long)]
    bind: Option<IpAddr>,
    /// A driver that cannot reach the gateway this long gives up.
    #[arg(long, default_value = "60s")]
    reconnect_for: humantime::Duration,
    /// After the run, how long drivers wait for their last acks.
    #[arg(long, default_value = "10s")]
    drain: humantime::Duration,
    /// Seed for the random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A route driven on the trace: a route file (route JSON, docs/ROUTES.md), or the id of a
    /// route the gateway has loaded in `--route-depot`. Every driver drives its own copy (ids
    /// suffixed with the driver's, stops moved by its spread), moved in time with the trace so
    /// its planned times and windows hold; assigned as the drivers start. Needs one trace.
    #[arg(long)]
    route: Option<String>,
    /// The depot of a loaded `--route` (default: `--depot`; with `--depots`, name one of the
    /// real depots).
    #[arg(long)]
    route_depot: Option<String>,
    /// The phones' QUIC keep-alive: a PING after this long without sending ("off": none).
    #[arg(long, default_value = "15s")]
    keep_alive: String,
    /// The phones' QUIC idle timeout (the smaller of it and the gateway's applies).
    #[arg(long, default_value = "30s")]
    idle_timeout: humantime::Duration,
    /// The gateway's process id: measure its CPU per fix and memory per driver from /proc.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    net: NetArgs,
}

/// The phones' mobile network (`--network` and its overrides). Any of these puts a
/// user-space relay with the model between every phone and the gateway (docs/NETWORK.md).
#[derive(Args, Debug, Default)]
pub struct NetArgs {
    /// A named network: clean, lte-good, lte-urban, 3g-poor, rural-edge.
    #[arg(long)]
    network: Option<String>,
    /// Stationary packet loss per direction, 0..1 (Gilbert burst model).
    #[arg(long)]
    net_loss: Option<f64>,
    /// Mean length of a loss burst, packets.
    #[arg(long)]
    net_burst: Option<f64>,
    /// Round trip the network adds (e.g. 80ms).
    #[arg(long)]
    net_rtt: Option<humantime::Duration>,
    /// Standard deviation of that round trip (e.g. 40ms).
    #[arg(long)]
    net_jitter: Option<humantime::Duration>,
    /// Bottleneck rate per direction, bits per second.
    #[arg(long)]
    net_bandwidth: Option<u64>,
    /// The bottleneck's buffer, bytes.
    #[arg(long)]
    net_queue: Option<u64>,
    /// Mean time between dead zones (no packets either way; the phone keeps recording).
    #[arg(long)]
    dead_zone_every: Option<humantime::Duration>,
    /// Shortest dead zone.
    #[arg(long)]
    dead_zone_min: Option<humantime::Duration>,
    /// Longest dead zone.
    #[arg(long)]
    dead_zone_max: Option<humantime::Duration>,
    /// Mean time between spontaneous NAT rebindings (a new public port).
    #[arg(long)]
    nat_rebind_every: Option<humantime::Duration>,
    /// The NAT forgets a mapping idle this long (the next packet gets a new port).
    #[arg(long)]
    nat_timeout: Option<humantime::Duration>,
    /// Mean time between app suspensions (no packets either way, the app does nothing).
    #[arg(long)]
    suspend_every: Option<humantime::Duration>,
    /// Shortest suspension.
    #[arg(long)]
    suspend_min: Option<humantime::Duration>,
    /// Longest suspension.
    #[arg(long)]
    suspend_max: Option<humantime::Duration>,
}

impl NetArgs {
    /// The network asked for: `None` when no flag names one.
    pub fn params(&self) -> anyhow::Result<Option<NetParams>> {
        let any = self.net_loss.is_some()
            || self.net_burst.is_some()
            || self.net_rtt.is_some()
            || self.net_jitter.is_some()
            || self.net_bandwidth.is_some()
            || self.net_queue.is_some()
            || self.dead_zone_every.is_some()
            || self.nat_rebind_every.is_some()
            || self.nat_timeout.is_some()
            || self.suspend_every.is_some();
        if self.network.is_none() && !any {
            return Ok(None);
        }
        let name = self.network.as_deref().unwrap_or("clean");
        let Some(mut p) = NetParams::profile(name) else {
            bail!("--network {name}: unknown (known: {})", PROFILES.join(", "));
        };
        let d = |v: Option<humantime::Duration>| v.map(Duration::from);
        let ms = |v: humantime::Duration| Duration::from(v).as_secs_f64() * 1000.0;
        if any {
            p.name = format!("{name}+flags");
        }
        p.loss = self.net_loss.unwrap_or(p.loss);
        p.burst = self.net_burst.unwrap_or(p.burst);
        p.rtt_ms = self.net_rtt.map_or(p.rtt_ms, ms);
        p.jitter_ms = self.net_jitter.map_or(p.jitter_ms, ms);
        p.bandwidth_bps = self.net_bandwidth.or(p.bandwidth_bps);
        p.queue_bytes = self.net_queue.unwrap_or(p.queue_bytes);
        p.dead_every = d(self.dead_zone_every).or(p.dead_every);
        p.dead_for = (
            d(self.dead_zone_min).unwrap_or(p.dead_for.0),
            d(self.dead_zone_max).unwrap_or(p.dead_for.1),
        );
        p.rebind_every = d(self.nat_rebind_every).or(p.rebind_every);
        p.nat_timeout = d(self.nat_timeout).or(p.nat_timeout);
        p.suspend_every = d(self.suspend_every).or(p.suspend_every);
        p.suspend_for = (
            d(self.suspend_min).unwrap_or(p.suspend_for.0),
            d(self.suspend_max).unwrap_or(p.suspend_for.1),
        );
        p.check().map_err(|e| anyhow::anyhow!("--network: {e}"))?;
        Ok(Some(p))
    }
}

/// Runs the load generator.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let format = args
        .format
        .as_deref()
        .map(str::parse::<TraceFormat>)
        .transpose()
        .context("--format")?;
    let opts = if args.strict {
        ReadOptions::strict()
    } else {
        ReadOptions::lenient()
    };
    let mut traces = Vec::new();
    for path in &args.traces {
        let t = read_traces_with(path, format.clone(), &opts)
            .with_context(|| format!("reading {}", path.display()))?;
        traces.extend(t);
    }
    let gap_ms = Duration::from(args.split_gap).as_millis() as i64;
    let traces = split_at_gaps(traces, gap_ms.max(1), 10);
    if traces.is_empty() {
        bail!(
            "no trace of at least 10 points after splitting at {} gaps",
            args.split_gap
        );
    }
    let points: usize = traces.iter().map(|t| t.len()).sum();

    let key = match &args.secret {
        Some(s) => TokenKey::new(s.as_bytes()),
        None => {
            // Read, never create: a fresh secret would not match the gateway's.
            let path = args.data_dir.join("secret.key");
            let bytes = std::fs::read(&path).with_context(|| {
                format!(
                    "reading the token secret {} (pass --data-dir of the gateway, or --secret)",
                    path.display()
                )
            })?;
            if bytes.len() < 32 {
                bail!("{} holds fewer than 32 bytes", path.display());
            }
            TokenKey::new(&bytes)
        }
    };
    let ca = args
        .ca
        .clone()
        .unwrap_or_else(|| args.data_dir.join("certs/ca.pem"));
    if !ca.exists() {
        bail!("CA certificate {} not found: pass --ca", ca.display());
    }

    let mut cfg = ReplayConfig::new(args.server, ca, key);
    cfg.server_name = args.server_name;
    cfg.drivers = args.drivers;
    cfg.first_driver = args.first_driver;
    cfg.driver_prefix = args.driver_prefix;
    cfg.depot = args.depot;
    cfg.depots = args.depots;
    cfg.pace = match args.rate {
        Some(per_s) => Pace::Rate {
            per_s,
            speedup: args.speedup,
        },
        None => Pace::Recorded {
            speedup: args.speedup,
        },
    };
    cfg.duration = args.duration.into();
    cfg.ramp = match args.ramp {
        Some(r) => r.into(),
        None => Duration::from_millis((args.drivers as u64).max(1000)),
    };
    cfg.warmup = args.warmup.into();
    cfg.spread_m = args.spread_m;
    cfg.batch = args.batch;
    cfg.batch_interval = args.batch_interval.map(Into::into);
    cfg.live = !args.no_live;
    cfg.live_timeout = args.live_timeout.into();
    cfg.offline_prob = args.offline_prob;
    cfg.offline = Duration::try_from_secs_f64(args.offline_secs).context("--offline-secs")?;
    cfg.migrate_prob = args.migrate_prob;
    cfg.per_endpoint = args.per_endpoint;
    if let Some(b) = args.bind {
        cfg.bind = b;
    }
    cfg.reconnect_for = args.reconnect_for.into();
    cfg.drain = args.drain.into();
    cfg.seed = args.seed;
    cfg.progress = !args.quiet;
    cfg.gateway_pid = args.gateway_pid;
    cfg.net = args.net.params()?;
    if let Some(arg) = &args.route {
        let depot = args.route_depot.as_deref().unwrap_or(&cfg.depot);
        let start = traces
            .first()
            .and_then(|t| t.points.first())
            .map(|p| p.t_ms);
        cfg.route = Some(route_of(&cfg, arg, depot, start).await?);
    }
    cfg.timers = Timers {
        keep_alive: match args.keep_alive.as_str() {
            "off" | "none" => None,
            v => Some(
                humantime::parse_duration(v)
                    .with_context(|| format!("--keep-alive {v}: a duration or \"off\""))?,
            ),
        },
        idle_timeout: args.idle_timeout.into(),
    };

    eprintln!(
        "replaying {} traces ({} points) as {} drivers against {} for {} after a {:?} ramp",
        traces.len(),
        points,
        cfg.drivers,
        cfg.server,
        args.duration,
        cfg.ramp
    );
    let report = replay(cfg, traces).await?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The `--route` of a replay: read from its file, or asked of the gateway over a dispatcher
/// session of `depot` and checked to be on the day of the trace starting at `trace_start_ms`.
async fn route_of(
    cfg: &ReplayConfig,
    arg: &str,
    depot: &str,
    trace_start_ms: Option<i64>,
) -> anyhow::Result<milepost_proto::route::Route> {
    use crate::replay::route_source;
    let id = match RouteSource::parse(arg) {
        RouteSource::File(path) => return route_source::read_file(&path),
        RouteSource::Loaded(id) => id,
    };
    let ep = crate::client::ClientEndpoint::new(SocketAddr::new(cfg.bind, 0), &cfg.ca)?;
    let mut s = crate::replay::sim::dispatcher(cfg, &ep, depot).await?;
    let route = route_source::fetch(&mut s, depot, &id).await;
    s.close();
    let route = route?;
    if let Some(start) = trace_start_ms {
        route_source::on_the_traces_day(&route, start)?;
    }
    Ok(route)
}
