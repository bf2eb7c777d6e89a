//! One simulated driver's tokio task: it carries out the [`Driver`]'s decisions over a QUIC
//! [`Link`] (connect with a time limit, send live fixes and batches, let connections go,
//! switch networks) and reports back what the network said and when. The task holds the
//! clock, the sockets and the logs; the driver decides.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use milepost_proto::ServerMsg;

use super::driver::{Action, ConnectFailure, Driver, Upload};
use super::link::{big_socket, fatal, next_event, open_link, Event, FrameRx, Link};
use super::plan::DriverPlan;
use super::run::Run;
use crate::client::{ClientEndpoint, Phone};
use crate::replay::metrics::{Counters, Kind, Wire};

/// Notes on stderr, with the wall-clock time, the moment every driver is in a state (the
/// reconnect storm bench reads these lines).
fn all_drivers(what: &str) {
    let ms = chrono::Utc::now().timestamp_millis();
    eprintln!("all drivers {what} at unix_ms={ms}");
}

/// One simulated driver and its network.
pub(super) struct DriverTask {
    run: Arc<Run>,
    driver: Driver,
    ep: ClientEndpoint,
    /// This phone's own TLS session tickets (resumed on every reconnect).
    phone: Phone,
    /// The open session; present exactly when the driver thinks it is connected.
    link: Option<Link>,
    /// Traffic of this driver's closed connections.
    wire_closed: Wire,
    /// Where it connects: the gateway, or its network's relay.
    server: SocketAddr,
}

impl DriverTask {
    /// The task of the driver planned as `plan`, on `ep`.
    pub fn new(
        run: Arc<Run>,
        plan: DriverPlan,
        ep: ClientEndpoint,
        phone: Phone,
        server: SocketAddr,
    ) -> DriverTask {
        DriverTask {
            server,
            driver: Driver::new(run.clone(), plan),
            run,
            ep,
            phone,
            link: None,
            wire_closed: Wire::default(),
        }
    }

    /// Runs the driver from its start time until it is done.
    pub async fn run(mut self) {
        let run = self.run.clone();
        tokio::time::sleep_until(run.at(self.driver.start_us())).await;
        let started = run.now_us();
        self.driver.start(started);
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            let mut now = run.now_us();
            if let Some(until) = self.driver.suspended_until(now) {
                // The operating system suspended the app: it does nothing until it resumes
                // (its QUIC connection's timers run on; the relay passes nothing meanwhile).
                tokio::time::sleep_until(run.at(until)).await;
                now = run.now_us();
            }
            self.tick(now).await;
            if self.driver.done() {
                break;
            }
            let wake = self.driver.next_wake(now);
            sleep.as_mut().reset(run.at(wake.max(now)));
            let ev = next_event(self.link.as_mut(), sleep.as_mut()).await;
            self.on_event(ev, run.now_us());
        }
        self.driver.finish();
        self.act();
        if let Some(net) = &run.net {
            Counters::add(&net.phone_us, run.now_us().saturating_sub(started));
        }
    }

    /// Does everything that is due at `now`.
    async fn tick(&mut self, now: u64) {
        let attempt_ms = self.driver.begin_tick(now);
        self.act();
        if let Some(ms) = attempt_ms {
            self.connect(now, ms).await;
            if self.driver.done() {
                return;
            }
        }
        let now = self.run.now_us();
        if let Some(upload) = self.driver.upload(now) {
            self.send(upload, now).await;
        }
        self.driver.end_tick(now);
        self.act();
    }

    /// Tries to open a session for at most `attempt_ms` (asked for at `asked_at`).
    async fn connect(&mut self, asked_at: u64, attempt_ms: u64) {
        let run = self.run.clone();
        let started = run.now_us();
        let id = self.driver.id();
        let attempt = tokio::time::timeout(
            Duration::from_millis(attempt_ms),
            open_link(&run.cfg, self.server, &self.ep, &self.phone, id),
        )
        .await;
        match attempt {
            Ok(Ok((link, welcome))) => {
                self.link = Some(link);
                let (watermark, max_batch) = (welcome.watermark.0, welcome.limits.max_batch);
                self.driver
                    .connected(started, run.now_us(), watermark, max_batch);
            }
            Ok(Err(e)) => {
                // A gateway that does not hold the driver's depot names the one that does
                // (`cluster.fold = "owned"`): the next attempt goes there, as a phone app
                // would (not through a relay of the network model, which is the driver's own).
                if e.code() == Some(milepost_proto::ErrorCode::ServerBusy) && run.net.is_none() {
                    if let Some(holder) = holder_named(&e.to_string()) {
                        self.server = holder;
                    }
                }
                let why = if fatal(e.code()) {
                    tracing::warn!(driver = %id, error = %e, "refused: giving up");
                    ConnectFailure::Fatal
                } else {
                    tracing::debug!(driver = %id, error = %e, "connect failed");
                    ConnectFailure::Failed
                };
                self.driver.connect_failed(asked_at, run.now_us(), why);
            }
            Err(_) => {
                let why = ConnectFailure::TimedOut;
                self.driver.connect_failed(asked_at, run.now_us(), why);
            }
        }
        self.act();
    }

    /// Uploads: the live fix as a datagram (if it can go), then the batches.
    async fn send(&mut self, upload: Upload, now: u64) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if self.run.net.is_some() {
            let rtt = link.conn.rtt().as_micros() as u64;
            self.run.lat.record(Kind::Rtt, rtt, 1);
        }
        if let Some((seq, fix)) = upload.live {
            if link.send_live(seq, fix) {
                self.driver.sent_live(upload.sched, now);
            }
        }
        for (first, fixes) in self.driver.take_batches(upload.sched) {
            let count = fixes.len() as u32;
            if link.send_batch(first, fixes).await.is_err() {
                self.note_loss();
                self.driver.connection_lost(self.run.now_us());
                self.act();
                return;
            }
            self.driver.batch_sent(first, count);
        }
    }

    /// Hands what woke the task to the driver (or to the link, for its ack stream).
    fn on_event(&mut self, ev: Event, now: u64) {
        match ev {
            Event::Timer => {}
            Event::Session(Ok(Some(ServerMsg::Ack(ack)))) => {
                self.driver.on_session_ack(&ack, now);
            }
            Event::Session(Ok(Some(ServerMsg::Error(e)))) => {
                tracing::debug!(driver = %self.driver.id(), code = %e.code, "batch refused");
                self.driver.on_refused(now);
            }
            Event::Session(Ok(Some(other))) => {
                tracing::debug!(driver = %self.driver.id(), msg = ?other, "unexpected message");
            }
            Event::Session(Ok(None)) | Event::Session(Err(_)) | Event::AckStream(Err(_)) => {
                self.note_loss();
                self.driver.connection_lost(now);
            }
            Event::LiveAck(_, Ok(Some(ServerMsg::Ack(ack)))) => self.driver.on_live_ack(&ack, now),
            // A push (the driver's route) is not the load generator's business.
            Event::LiveAck(_, Ok(Some(_))) => {}
            Event::LiveAck(slot, Ok(None)) | Event::LiveAck(slot, Err(_)) => {
                // The server ended a stream: it opens another when it needs one; a broken
                // connection shows on the session stream.
                if let Some(l) = self.link.as_mut() {
                    l.acks[slot] = None;
                }
            }
            Event::AckStream(Ok(recv)) => {
                if let Some(free) = self
                    .link
                    .as_mut()
                    .and_then(|l| l.acks.iter_mut().find(|a| a.is_none()))
                {
                    *free = Some(FrameRx::new(recv));
                }
            }
        }
        self.act();
    }

    /// Counts why the open session's connection ended, when QUIC says.
    fn note_loss(&self) {
        let Some(l) = &self.link else {
            return;
        };
        let c = &self.run.c;
        match l.conn.close_reason() {
            Some(quinn::ConnectionError::Reset) => Counters::add(&c.conn_reset, 1),
            Some(quinn::ConnectionError::TimedOut) => Counters::add(&c.conn_timed_out, 1),
            _ => {}
        }
    }

    /// Carries out the driver's actions, in order.
    fn act(&mut self) {
        for action in self.driver.take_actions() {
            match action {
                Action::MarkWire { end } => self.run.wire.mark(end, self.wire_total()),
                Action::Migrate { at } => self.migrate(at),
                Action::Drop(how) => {
                    if let Some(l) = self.link.take() {
                        self.wire_closed = self.wire_closed.plus(l.wire());
                        if let Some(reason) = how.reason() {
                            l.conn.close(quinn::VarInt::from_u32(0), reason);
                        }
                    }
                }
                Action::Announce(what) => all_drivers(what),
                Action::Unreachable => {
                    tracing::warn!(driver = %self.driver.id(), "gateway unreachable: giving up");
                }
            }
        }
    }

    /// Switches networks: the socket is rebound and QUIC migrates the connection.
    fn migrate(&mut self, at: u64) {
        let c = &self.run.c;
        let moved = big_socket(SocketAddr::new(self.run.cfg.bind, 0))
            .and_then(|sock| self.ep.quinn().rebind(sock));
        match moved {
            Ok(()) => Counters::add(&c.migrations, 1),
            Err(e) => {
                tracing::warn!(driver = %self.driver.id(), error = %e, at, "rebind failed");
                Counters::add(&c.migration_errors, 1);
            }
        }
    }

    /// This driver's traffic so far, closed connections included.
    fn wire_total(&self) -> Wire {
        match &self.link {
            Some(l) => self.wire_closed.plus(l.wire()),
            None => self.wire_closed,
        }
    }
}

/// The QUIC address a `ServerBusy` message names ("... gateway g2 does (QUIC 10.0.0.2:4433,
/// web ...): connect there"), if any.
fn holder_named(message: &str) -> Option<SocketAddr> {
    let rest = &message[message.find("(QUIC ")? + "(QUIC ".len()..];
    let end = rest.find([',', ')'])?;
    rest[..end].trim().parse().ok()
}

#[cfg(test)]
mod redirect_tests {
    use super::holder_named;

    #[test]
    fn the_holder_a_refusal_names() {
        let m = "this gateway does not hold partition 3; gateway g2 does (QUIC 127.0.0.1:4433, \
                 web http://127.0.0.1:8080): connect there";
        assert_eq!(holder_named(m), Some("127.0.0.1:4433".parse().unwrap()));
        let bare = "this gateway does not hold partition 3; gateway g2 does (QUIC [::1]:9)";
        assert_eq!(holder_named(bare), Some("[::1]:9".parse().unwrap()));
        assert_eq!(
            holder_named("this gateway does not hold partition 3; it is changing hands"),
            None
        );
        assert_eq!(holder_named("(QUIC not-an-address)"), None);
    }
}
