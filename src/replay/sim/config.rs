//! The simulation's knobs: [`ReplayConfig`] (with its defaults), the fix [`Pace`], the errors a
//! run can fail with before it starts ([`ReplayError`]), and the range checks a configuration
//! must pass ([`check`]).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::net::NetParams;
use crate::auth::TokenKey;
use crate::client::{ClientError, Timers};

/// How fast drivers produce fixes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// One fix per recorded point, at the recorded intervals divided by `speedup`.
    Recorded {
        /// Replay speed: 1.0 = as recorded.
        speedup: f64,
    },
    /// A fixed number of fixes per second per driver, positions interpolated along the trace,
    /// which is travelled at `speedup` times its recorded speed.
    Rate {
        /// Fixes per second per driver.
        per_s: f64,
        /// Travel speed along the trace: 1.0 = as recorded.
        speedup: f64,
    },
}

impl Pace {
    /// How many times faster than recorded the traces are travelled.
    pub(super) fn speedup(self) -> f64 {
        match self {
            Pace::Recorded { speedup } | Pace::Rate { speedup, .. } => speedup,
        }
    }
}

/// Everything a replay run needs besides the traces.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// Gateway address.
    pub server: SocketAddr,
    /// Name on the gateway's certificate.
    pub server_name: String,
    /// CA certificate to trust.
    pub ca: PathBuf,
    /// The gateway's token key: one driver token is minted per simulated driver.
    pub key: TokenKey,
    /// Number of simulated drivers.
    pub drivers: u32,
    /// Number of the first driver: ids are `{driver_prefix}{n:05}` from here on (several load
    /// generators can split a fleet).
    pub first_driver: u32,
    /// Prefix of driver ids.
    pub driver_prefix: String,
    /// Depot every simulated driver belongs to...
    pub depot: String,
    /// ... or, above 1, the number of depots `{depot}-{k}` the drivers are spread over (by a
    /// hash of the driver id), as a fleet of many depots would be (a cluster that folds only
    /// what it owns partitions by depot).
    pub depots: u32,
    /// How fast fixes are produced.
    pub pace: Pace,
    /// How long every driver sends after the ramp.
    pub duration: Duration,
    /// Drivers start evenly spread over this time, so handshakes do not all land at once.
    pub ramp: Duration,
    /// Warm-up after the ramp before the measurement window opens (capped at a quarter of
    /// `duration`).
    pub warmup: Duration,
    /// Drivers sharing a trace are moved by a random offset up to this many metres.
    pub spread_m: f64,
    /// Upload after this many new fixes.
    pub batch: u32,
    /// Also upload at this interval when fixes are waiting.
    pub batch_interval: Option<Duration>,
    /// Send the newest fix of each upload as a live datagram.
    pub live: bool,
    /// A live fix not acked within this time is resent in a batch.
    pub live_timeout: Duration,
    /// Chance that a driver has one offline period during its run.
    pub offline_prob: f64,
    /// Length of an offline period.
    pub offline: Duration,
    /// Chance that a driver switches networks (rebinds its socket) once during its run.
    pub migrate_prob: f64,
    /// Connections sharing one UDP socket.
    pub per_endpoint: u32,
    /// Local address for the client sockets.
    pub bind: IpAddr,
    /// A driver that cannot reach the gateway for this long gives up.
    pub reconnect_for: Duration,
    /// After the run, how long drivers wait for their last acks.
    pub drain: Duration,
    /// Seed for every random choice (phases, offsets, offline and migration times).
    pub seed: u64,
    /// Print a progress line on stderr every second.
    pub progress: bool,
    /// The gateway's process id, to measure its CPU time and memory from `/proc`.
    pub gateway_pid: Option<u32>,
    /// The phones' mobile network, played by a user-space relay per driver (`None`: straight
    /// to the gateway). With one, a driver waits out its longest outage before giving up, and
    /// the drain is as long.
    pub net: Option<NetParams>,
    /// A recorded route on the one trace: every driver drives its own copy, in its time base
    /// (`replay --route`; the drivers start at the trace's start, not at spread phases).
    pub route: Option<milepost_proto::route::Route>,
    /// The phones' QUIC keep-alive and idle timeout.
    pub timers: Timers,
}

impl ReplayConfig {
    /// The depot of driver `id`.
    pub fn depot_of(&self, id: &str) -> String {
        if self.depots > 1 {
            let k = milepost_core::store::record::partition_of(&id.into(), self.depots);
            format!("{}-{k}", self.depot)
        } else {
            self.depot.clone()
        }
    }

    /// A configuration with defaults: 100 drivers at the recorded pace for 60 s, batches of 1
    /// with live datagrams, no offline periods or migrations.
    pub fn new(server: SocketAddr, ca: PathBuf, key: TokenKey) -> ReplayConfig {
        ReplayConfig {
            server,
            server_name: "localhost".into(),
            ca,
            key,
            drivers: 100,
            first_driver: 1,
            driver_prefix: "sim-".into(),
            depot: "sim".into(),
            depots: 1,
            pace: Pace::Recorded { speedup: 1.0 },
            duration: Duration::from_secs(60),
            ramp: Duration::from_secs(1),
            warmup: Duration::from_secs(5),
            spread_m: 200.0,
            batch: 1,
            batch_interval: None,
            live: true,
            live_timeout: Duration::from_secs(3),
            offline_prob: 0.0,
            offline: Duration::from_secs(30),
            migrate_prob: 0.0,
            per_endpoint: 1000,
            bind: if server.is_ipv4() {
                IpAddr::from([0, 0, 0, 0])
            } else {
                IpAddr::from([0u16; 8])
            },
            reconnect_for: Duration::from_secs(60),
            drain: Duration::from_secs(10),
            seed: 1,
            progress: false,
            gateway_pid: None,
            net: None,
            route: None,
            timers: Timers::default(),
        }
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No trace has a point (recorded pace also needs two distinct times).
    #[error("no usable trace: {0}")]
    NoTraces(String),
    /// A configuration value is out of range.
    #[error("invalid replay configuration: {0}")]
    Config(String),
    /// A client endpoint could not be made (CA file, socket).
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Refuses a configuration with a value out of range.
pub(super) fn check(cfg: &ReplayConfig) -> Result<(), ReplayError> {
    let bad = |m: &str| Err(ReplayError::Config(m.into()));
    let speedup = cfg.pace.speedup();
    if !(speedup.is_finite() && speedup > 0.0) {
        return bad("speedup must be a positive number");
    }
    if let Pace::Rate { per_s, .. } = cfg.pace {
        if !(per_s.is_finite() && per_s > 0.0 && per_s <= 1000.0) {
            return bad("rate must be in (0, 1000] fixes per second");
        }
    }
    if cfg.drivers == 0 || cfg.batch == 0 {
        return bad("drivers and batch must be at least 1");
    }
    for (p, what) in [
        (cfg.offline_prob, "offline probability"),
        (cfg.migrate_prob, "migration probability"),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(ReplayError::Config(format!("{what} must be in [0, 1]")));
        }
    }
    if let Some(net) = &cfg.net {
        net.check()
            .map_err(|e| ReplayError::Config(format!("network: {e}")))?;
    }
    if !(cfg.spread_m.is_finite() && cfg.spread_m >= 0.0) {
        return bad("spread must be a non-negative number of metres");
    }
    // Fixes are stamped up to speedup x run length in the past: stay inside the gateway's
    // default backlog bound (7 days) with a margin.
    let stamped_s = (cfg.ramp + cfg.duration).as_secs_f64() * speedup.max(1.0);
    if stamped_s > 6.0 * 86_400.0 {
        return bad("speedup x run length exceeds 6 days: fixes would be refused as too old");
    }
    Ok(())
}

/// A configuration for unit tests: defaults, nothing opened.
#[cfg(test)]
pub(super) fn test_config() -> ReplayConfig {
    ReplayConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 4433)),
        PathBuf::from("ca.pem"),
        TokenKey::new(b"test-secret-test-secret-test-secret!"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of the error `check` gives after `edit`, or "ok".
    fn checked(edit: impl FnOnce(&mut ReplayConfig)) -> String {
        let mut cfg = test_config();
        edit(&mut cfg);
        match check(&cfg) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_pass_and_bind_the_server_family() {
        let cfg = test_config();
        assert_eq!(check(&cfg).ok(), Some(()));
        assert_eq!(cfg.bind, IpAddr::from([0, 0, 0, 0]));
        let v6 = ReplayConfig::new("[::1]:4433".parse().unwrap(), "ca".into(), cfg.key.clone());
        assert_eq!(v6.bind, IpAddr::from([0u16; 8]));
        assert_eq!(
            Pace::Rate {
                per_s: 5.0,
                speedup: 3.0
            }
            .speedup(),
            3.0
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let speed = "invalid replay configuration: speedup must be a positive number";
        assert_eq!(checked(|c| c.pace = Pace::Recorded { speedup: 0.0 }), speed);
        assert_eq!(
            checked(|c| c.pace = Pace::Recorded { speedup: f64::NAN }),
            speed
        );
        let rate = |per_s| {
            checked(move |c| {
                c.pace = Pace::Rate {
                    per_s,
                    speedup: 1.0,
                }
            })
        };
        assert!(rate(0.0).contains("rate must be in (0, 1000]"));
        assert!(rate(1000.5).contains("rate must be in (0, 1000]"));
        assert_eq!(rate(1000.0), "ok");
        assert!(checked(|c| c.drivers = 0).contains("drivers and batch"));
        assert!(checked(|c| c.batch = 0).contains("drivers and batch"));
        assert!(checked(|c| c.offline_prob = 1.5).contains("offline probability must be in"));
        assert!(checked(|c| c.migrate_prob = -0.1).contains("migration probability must be"));
        assert_eq!(checked(|c| c.migrate_prob = 1.0), "ok");
        assert!(checked(|c| c.spread_m = -1.0).contains("spread must be"));
    }

    #[test]
    fn fixes_may_not_be_stamped_more_than_six_days_back() {
        // 61 s at 8000x is about 5.6 days; at 9000x, 6.4 days.
        assert_eq!(
            checked(|c| c.pace = Pace::Recorded { speedup: 8000.0 }),
            "ok"
        );
        assert!(checked(|c| c.pace = Pace::Recorded { speedup: 9000.0 }).contains("6 days"));
        // A slow replay is stamped in real time, however long.
        let slow = |c: &mut ReplayConfig| {
            c.pace = Pace::Recorded { speedup: 0.5 };
            c.duration = Duration::from_secs(5 * 86_400);
        };
        assert_eq!(checked(slow), "ok");
    }
}
