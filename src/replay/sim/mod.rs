//! The load generator's engine: thousands of simulated driver phones, each its own QUIC
//! connection and token, replaying recorded traces against a gateway, measured honestly.
//!
//! # Model of a phone
//! - It logs in (QUIC + TLS, `Hello`/`Welcome`), then measures a fix at the recorded pace of its
//!   trace times a speedup, or at a fixed rate. Seqs continue from `Welcome.watermark + 1`.
//! - Fixes are buffered and uploaded every `batch` fixes (or every `batch_interval`); at each
//!   upload the newest fix goes as a live datagram (when `live` is on) and the rest as one
//!   `FixBatch` on the session stream, pipelined. With `batch = 1` and live on, every fix is one
//!   single-fix datagram: the gateway's hot path.
//! - A fix stays in the phone's queue until an ack (or a `Welcome.watermark`) settles it. A live
//!   fix not acked within `live_timeout` is resent in a batch (PROTOCOL.md 6.3); a batch refused
//!   with a request-level error is resent after a back-off.
//! - Some phones go offline for a while (the app notices and closes the connection; fixes keep
//!   being measured and are uploaded as a backlog on reconnect); some switch networks mid-route
//!   (their own UDP socket is rebound: QUIC migrates the connection, nothing is resent).
//! - A lost connection (gateway restart, idle timeout) is reopened with exponential back-off and
//!   jitter, and everything unsettled is resent, oldest first, with the newest as live.
//!
//! # Honest numbers
//! Every fix has a *scheduled* send time, fixed when it is due, whatever the load generator's
//! own delays: ack latency is the ack's arrival minus that time (no coordinated omission). A
//! resent fix keeps its first scheduled time, so outages show in the tail. Fixes buffered on
//! purpose while offline are measured apart (age at ack), so they do not hide the live latency.
//!
//! # Scale
//! One tokio task per driver, no task per fix; drivers share a few UDP sockets (one
//! [`ClientEndpoint`] per `per_endpoint` connections), except migrating drivers, which need a
//! socket of their own to rebind. Per driver: the task, its quinn connection, its own TLS
//! session tickets and QUIC address tokens (as a phone has: see [`crate::client::Phone`]) and a
//! queue of the fixes not yet settled (usually one or two).
//!
//! # Map
//! - [`replay`] (here): sets a run up, starts every driver, waits, reports.
//! - `config`: the knobs ([`ReplayConfig`], [`Pace`]), their checks, [`ReplayError`].
//! - `plan`: what is fixed before the run: usable traces, each driver's plan from the seed.
//! - `rng`: splitmix64, the seeded randomness behind every plan and jitter.
//! - `run`: what every driver shares: configuration, traces, timeline, counters.
//! - `routes`: `--route`: each driver's copy of a recorded route, in its time base, and the
//!   dispatcher sessions that assign them.
//! - `driver`: a phone's decisions, sans IO: takes `now` and what the network said, says
//!   what to do (connect, upload, resend, back off, go offline, finish). Unit tested.
//! - `queue`: a phone's queue of unsettled fixes and where each stands.
//! - `task`: a phone's tokio task, carrying the driver's decisions out over its link.
//! - `link`: the QUIC side: sockets, opening a session, frames, live fixes and batches.
//! - `net`: a phone's mobile network, sans IO (burst loss, delay and jitter, a bottleneck,
//!   dead zones, NAT rebinding, suspensions), drawn from the seed. Unit tested.
//! - `netcount`: what the relays count (shared atomics).
//! - `relay`: the user-space UDP relay per driver that plays `net` on every packet, and
//!   counts the phone's radio use.
//! - `probe`: samples at the window's edges (`/proc`) and UDP drops over the run.
//! - `report`: the progress line and the [`ReplayReport`].

mod config;
mod driver;
mod link;
mod net;
mod netcount;
mod plan;
mod probe;
mod queue;
mod relay;
mod report;
mod rng;
mod routes;
mod run;
mod task;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use config::{Pace, ReplayConfig, ReplayError};
pub use net::{NetParams, PROFILES};
pub use relay::WAKE_GAP_US;
pub(crate) use routes::dispatcher;

use crate::client::ClientEndpoint;
use crate::replay::metrics::ReplayReport;
use crate::replay::procfs::proc_sample;
use crate::replay::trace::Trace;
use link::endpoint;
use plan::{plan_drivers, usable_traces};
use probe::{window_probe, DropProbe};
use relay::Relay;
use report::{progress_loop, report};
use run::{Run, Timeline};
use task::DriverTask;

/// Replays `traces` as `cfg.drivers` simulated drivers and reports what was measured.
pub async fn replay(
    mut cfg: ReplayConfig,
    traces: Vec<Trace>,
) -> Result<ReplayReport, ReplayError> {
    config::check(&cfg)?;
    if let Some(net) = &cfg.net {
        // A phone waits out a dead zone or a suspension before giving up, and the run waits
        // for the backlog of one at the end.
        let outage = net.longest_outage();
        cfg.reconnect_for = cfg.reconnect_for.max(outage + Duration::from_secs(60));
        cfg.drain = cfg.drain.max(outage + Duration::from_secs(30));
    }
    let traces = usable_traces(&cfg, traces)?;
    if cfg.route.is_some() && traces.len() != 1 {
        return Err(ReplayError::Config(format!(
            "--route needs the one trace its route was driven on, not {} (after splitting at gaps)",
            traces.len()
        )));
    }
    let tl = Timeline::new(&cfg);
    let gw_pid = cfg.gateway_pid.map(|p| p.to_string());
    let gw_before = gw_pid.as_deref().and_then(proc_sample);
    let drops = DropProbe::start(cfg.server);

    // Endpoints: shared sockets, plus one per migrating driver.
    let plans = plan_drivers(&cfg, &traces, &tl);
    let shared_count = plans.iter().filter(|p| p.migrate_at.is_none()).count() as u64;
    let per_ep = cfg.per_endpoint.max(1) as u64;
    let bind = SocketAddr::new(cfg.bind, 0);
    let mut shared_eps = Vec::new();
    for _ in 0..shared_count.div_ceil(per_ep) {
        shared_eps.push(endpoint(bind, &cfg.ca, cfg.timers)?);
    }
    let mut drivers = Vec::with_capacity(plans.len());
    let mut shared_i = 0u64;
    for plan in plans {
        let ep = if plan.migrate_at.is_some() {
            endpoint(bind, &cfg.ca, cfg.timers)?
        } else {
            let ep = shared_eps[(shared_i / per_ep) as usize].clone();
            shared_i += 1;
            ep
        };
        let phone = ep.phone()?;
        drivers.push((plan, ep, phone));
    }

    // With a route, every driver's copy, in their time base, assigned as they start.
    let route_plans: Vec<(plan::DriverPlan, String)> = match &cfg.route {
        Some(_) => drivers
            .iter()
            .map(|(p, _, _)| (p.clone(), cfg.depot_of(&p.id)))
            .collect(),
        None => Vec::new(),
    };
    let run = Arc::new(Run::start(cfg, traces, tl));
    let assigning = run.cfg.route.clone().map(|route| {
        let ep = drivers[0].1.clone();
        tokio::spawn(routes::assign(run.clone(), route, route_plans, ep))
    });
    let all_eps: Vec<ClientEndpoint> = drivers.iter().map(|d| d.1.clone()).collect();
    // Each driver's network: a relay of its own, or the gateway itself.
    let mut relays = Vec::new();
    let mut tasks = Vec::with_capacity(drivers.len());
    let params = run.cfg.net.clone().map(Arc::new);
    for (plan, ep, phone) in drivers {
        let server = match (&params, &run.net) {
            (Some(p), Some(counters)) => {
                let relay = Relay::bind(
                    run.clone(),
                    bind,
                    run.cfg.server,
                    p.clone(),
                    plan.schedule.clone(),
                    counters.clone(),
                    plan.net_seed,
                )
                .await
                .map_err(|e| ReplayError::Client(e.into()))?;
                let addr = relay.addr().map_err(|e| ReplayError::Client(e.into()))?;
                relays.push(AbortOnDrop(tokio::spawn(relay.run())));
                addr
            }
            _ => run.cfg.server,
        };
        tasks.push(DriverTask::new(run.clone(), plan, ep, phone, server));
    }
    let handles: Vec<_> = tasks.into_iter().map(|t| tokio::spawn(t.run())).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = run
        .cfg
        .progress
        .then(|| tokio::spawn(progress_loop(run.clone(), stop.clone())));
    let window = tokio::spawn(window_probe(run.clone(), gw_pid));
    for h in handles {
        // A panicking driver is a bug in this module; its fixes count as unsettled.
        let _ = h.await;
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    if run.now_us() < run.win.1 {
        // Every driver stopped early (refused, unreachable): there is no window to wait for.
        window.abort();
    }
    let probes = window.await.unwrap_or_default();
    // Before the sockets close: their drop counters go with them.
    let udp_drops = drops.finish(&all_eps);
    // Let the closes reach the gateway (bounded: a dead gateway does not hold us up).
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for ep in &all_eps {
            ep.wait_idle().await;
        }
    })
    .await;
    drop(relays);
    let routes = match assigning {
        Some(a) => a.await.ok(),
        None => None,
    };
    Ok(ReplayReport {
        udp_drops,
        routes,
        ..report(&run, probes, gw_before)
    })
}

/// A task aborted when this is dropped (the relays live until the replay ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
