//! One simulated driver: replays a recorded trace against a gateway the way a driver app
//! would. Fixes are timed as recorded (divided by a speedup), each fix goes out at once as a
//! live datagram, and every few fixes the unacked ones go as a batch on the session stream. A
//! fix is kept until an ack covers it; after a lost connection the driver reconnects with
//! backoff and resends everything the gateway has not acked, so a gateway restart (even a
//! `kill -9`) loses nothing that was acked and stores nothing twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use milepost_proto::{Ack, DeviceInfo, Fix, Seq};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{ClientEndpoint, ClientError, Session};
use crate::replay::trace::{Trace, TracePoint};

/// How to drive.
#[derive(Clone, Debug)]
pub struct DriveOptions {
    /// Gateway address.
    pub server: SocketAddr,
    /// Name on the gateway's certificate.
    pub server_name: String,
    /// Driver token.
    pub token: String,
    /// Driver id (the token's subject).
    pub driver: String,
    /// Replay speed: 1.0 = as recorded.
    pub speedup: f64,
    /// Fixes per batch upload.
    pub batch: usize,
    /// Also send each fix at once as a live datagram.
    pub live: bool,
    /// How long to keep trying to reconnect after losing the gateway.
    pub reconnect_for: Duration,
    /// Stop after this many fixes (0 = the whole trace).
    pub limit: usize,
    /// The instant the drive's time base is computed from ([`time_offset`]), UTC ms; `None`
    /// for the moment the drive starts. Set it when a route is shifted by the same offset.
    pub now_ms: Option<i64>,
}

/// What is added to a trace point's time to make its fix's: the drive starts at `now_ms` and
/// every fix's time is at or before the moment it is sent, whatever the speedup (the last
/// one lands on the drive's end). A route shifted by the same offset keeps its planned times
/// where they were against the trace.
pub fn time_offset(points: &[TracePoint], speedup: f64, now_ms: i64) -> i64 {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return 0;
    };
    let span_ms = last.t_ms - first.t_ms;
    let base_ms = now_ms - (span_ms as f64 * (1.0 - 1.0 / speedup.max(1e-3))).max(0.0) as i64;
    base_ms - first.t_ms
}

/// What happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriveReport {
    /// Fixes taken from the trace.
    pub fixes: u64,
    /// Fixes acked as stored.
    pub acked: u64,
    /// Fixes refused by the gateway.
    pub rejected: u64,
    /// Acks of resends (stored once).
    pub duplicates: u64,
    /// Reconnections after a lost connection.
    pub reconnects: u64,
    /// First seq used.
    pub first_seq: u64,
}

/// Maps a trace point to a fix, its time moved by `offset_ms` ([`time_offset`]).
fn to_fix(p: &TracePoint, offset_ms: i64) -> Fix {
    let mut f = Fix::from_degrees(
        p.t_ms + offset_ms,
        p.lat,
        p.lon,
        p.accuracy_m.unwrap_or(10.0),
    );
    f.speed_mps = p.speed_mps.filter(|s| s.is_finite() && *s >= 0.0);
    f.heading_deg = p.heading_deg.filter(|h| (0.0..=360.0).contains(h));
    f.altitude_m = p.altitude_m;
    f
}

/// Replays `trace` as one driver through `endpoint`.
pub async fn drive(
    endpoint: &ClientEndpoint,
    trace: &Trace,
    opts: &DriveOptions,
) -> Result<DriveReport, ClientError> {
    let points = if opts.limit > 0 && opts.limit < trace.points.len() {
        &trace.points[..opts.limit]
    } else {
        &trace.points[..]
    };
    let mut report = DriveReport::default();
    let Some(first) = points.first() else {
        return Ok(report);
    };
    let t0 = first.t_ms;
    let speedup = opts.speedup.max(1e-3);
    let now_ms = opts
        .now_ms
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let offset_ms = time_offset(points, speedup, now_ms);

    let mut link = Link::connect(endpoint, opts).await?;
    let mut next_seq = link.session.welcome.watermark.0 + 1;
    report.first_seq = next_seq;
    let mut pending: BTreeMap<u64, Fix> = BTreeMap::new();
    // Every pending seq below this has gone out in a batch on the current connection.
    let mut batched_upto = next_seq;
    let start = Instant::now();
    for p in points {
        let due = start + Duration::from_secs_f64((p.t_ms - t0).max(0) as f64 / 1000.0 / speedup);
        tokio::time::sleep_until(due).await;
        let fix = to_fix(p, offset_ms);
        let seq = next_seq;
        next_seq += 1;
        report.fixes += 1;
        pending.insert(seq, fix);
        if opts.live {
            // A full datagram buffer or a lost link: the batch below covers it.
            let _ = link.session.send_live(Seq(seq), fix);
        }
        link.drain_live_acks(&mut pending, &mut report);
        if next_seq - batched_upto >= opts.batch as u64 {
            if let Err(e) = link.flush(&mut pending, batched_upto, &mut report).await {
                link = reconnect(endpoint, opts, e, &mut report).await?;
                batched_upto = pending.keys().next().copied().unwrap_or(next_seq);
                continue;
            }
            batched_upto = next_seq;
        }
    }
    // Give live acks a moment, then batch whatever is left until everything is acked.
    let settle_until = Instant::now() + Duration::from_secs(2);
    while !pending.is_empty() && Instant::now() < settle_until && opts.live {
        link.drain_live_acks(&mut pending, &mut report);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while !pending.is_empty() {
        let from = pending.keys().next().copied().unwrap_or(next_seq);
        match link.flush(&mut pending, from, &mut report).await {
            Ok(()) => {}
            Err(e) => link = reconnect(endpoint, opts, e, &mut report).await?,
        }
    }
    link.session.close();
    Ok(report)
}

/// A connected session plus the live-ack channel.
struct Link {
    session: Session,
    live_acks: mpsc::UnboundedReceiver<Ack>,
}

impl Link {
    async fn connect(endpoint: &ClientEndpoint, opts: &DriveOptions) -> Result<Link, ClientError> {
        let conn = endpoint.connect(opts.server, &opts.server_name).await?;
        let device = DeviceInfo {
            device_id: format!("sim-{}", opts.driver),
            app: concat!("milepost-drive/", env!("CARGO_PKG_VERSION")).into(),
            os: std::env::consts::OS.into(),
        };
        let session = Session::open(conn, &opts.token, &opts.driver, device).await?;
        let (tx, live_acks) = mpsc::unbounded_channel();
        let conn = session.conn.clone();
        tokio::spawn(async move {
            let Ok(recv) = conn.accept_uni().await else {
                return;
            };
            let mut acks = crate::client::AckStream::from_recv(recv);
            while let Ok(Some(ack)) = acks.next().await {
                if tx.send(ack).is_err() {
                    break;
                }
            }
        });
        Ok(Link { session, live_acks })
    }

    fn drain_live_acks(&mut self, pending: &mut BTreeMap<u64, Fix>, report: &mut DriveReport) {
        while let Ok(ack) = self.live_acks.try_recv() {
            settle(&ack, pending, report);
        }
    }

    /// Sends every pending fix with seq >= `from` as batches of consecutive seqs, each
    /// awaited.
    async fn flush(
        &mut self,
        pending: &mut BTreeMap<u64, Fix>,
        from: u64,
        report: &mut DriveReport,
    ) -> Result<(), ClientError> {
        let max = self.session.welcome.limits.max_batch.max(1) as usize;
        let runs = consecutive_runs(pending, from, max);
        for (first, fixes) in runs {
            let ack = self.session.batch(Seq(first), fixes).await?;
            settle(&ack, pending, report);
        }
        Ok(())
    }
}

/// Removes what an ack covers from `pending` and counts it.
fn settle(ack: &Ack, pending: &mut BTreeMap<u64, Fix>, report: &mut DriveReport) {
    let mut removed = 0u64;
    for s in ack.first_seq.0..ack.first_seq.0 + ack.count as u64 {
        if pending.remove(&s).is_some() {
            removed += 1;
        }
    }
    let rejected = ack.rejected.len() as u64;
    report.rejected += rejected;
    report.duplicates += ack.duplicates as u64;
    report.acked += removed.saturating_sub(rejected);
}

/// Splits pending fixes at or above `from` into runs of consecutive seqs, at most `max` long.
fn consecutive_runs(pending: &BTreeMap<u64, Fix>, from: u64, max: usize) -> Vec<(u64, Vec<Fix>)> {
    let mut runs: Vec<(u64, Vec<Fix>)> = Vec::new();
    for (&seq, fix) in pending.range(from..) {
        match runs.last_mut() {
            Some((first, fixes)) if *first + fixes.len() as u64 == seq && fixes.len() < max => {
                fixes.push(*fix)
            }
            _ => runs.push((seq, vec![*fix])),
        }
    }
    runs
}

/// Reconnects with exponential backoff after `err`, for at most `opts.reconnect_for`.
async fn reconnect(
    endpoint: &ClientEndpoint,
    opts: &DriveOptions,
    err: ClientError,
    report: &mut DriveReport,
) -> Result<Link, ClientError> {
    if matches!(err, ClientError::Refused(_)) {
        return Err(err);
    }
    tracing::warn!(error = %err, "lost the gateway; reconnecting");
    let deadline = Instant::now() + opts.reconnect_for;
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::time::sleep(backoff).await;
        match Link::connect(endpoint, opts).await {
            Ok(link) => {
                report.reconnects += 1;
                return Ok(link);
            }
            Err(e @ ClientError::Refused(_)) => return Err(e),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(e) => tracing::debug!(error = %e, "reconnect failed"),
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_on_gaps_and_size() {
        let f = Fix::new(1, 1, 1, 1.0);
        let pending: BTreeMap<u64, Fix> = [1, 2, 3, 5, 6, 7, 8].iter().map(|&s| (s, f)).collect();
        let runs: Vec<(u64, usize)> = consecutive_runs(&pending, 2, 3)
            .into_iter()
            .map(|(s, v)| (s, v.len()))
            .collect();
        assert_eq!(runs, vec![(2, 2), (5, 3), (8, 1)]);
    }
}
