//! The user-space network between one simulated phone and the gateway: a UDP relay that plays
//! [`net`](super::net)'s model on every packet. The phone connects to the relay's address as
//! if it were the gateway; the relay forwards each packet the model lets through, when the
//! model says it arrives, from an upstream socket of its own (the phone's public address as the
//! gateway sees it: a NAT rebinding replaces that socket, so the gateway sees a new port).
//!
//! The relay is also the phone's radio: it counts what the phone really sent and received
//! (not what a dead zone or a suspension swallowed) and the radio's wake-ups (a packet more
//! than [`WAKE_GAP_US`] after the previous one), for the battery and data budget.
//!
//! One socket per driver, until the driver's first NAT rebinding: until then the relay's one
//! socket is both the address the phone sends to and the phone's public address (packets from
//! the gateway's address go down, all others up); a rebinding gives the public side a socket of
//! its own. A run of N drivers needs N to 2N file descriptors (`ulimit -n`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::net::{Drop, NetParams, Pipe, Schedule};
use super::netcount::{add, NetCounters};
use super::run::Run;

/// A gap between radio activity longer than this, us, means the radio went idle and woke up
/// again (LTE's RRC inactivity timers are about 10 s).
pub const WAKE_GAP_US: u64 = 10_000_000;

/// Largest datagram relayed (QUIC's are at most 1,500 bytes here: no path MTU discovery).
const MAX_DATAGRAM: usize = 2_048;

/// A packet on its way: (arrival, order of arrival at the relay, direction, bytes).
type InFlight = Reverse<(u64, u64, Dir, Vec<u8>)>;

/// Receives on `sock`, or waits forever without one.
async fn recv_on(sock: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// The loopback address of `bind`'s family.
fn loopback(bind: SocketAddr) -> std::net::IpAddr {
    if bind.is_ipv4() {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        std::net::Ipv6Addr::LOCALHOST.into()
    }
}

/// Which way a packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    Up,
    Down,
}

/// One phone's link: the model's state and the relay's sockets.
pub(super) struct Relay {
    run: Arc<Run>,
    gateway: SocketAddr,
    counters: Arc<NetCounters>,
    schedule: Arc<Schedule>,
    p: Arc<NetParams>,
    up: Pipe,
    down: Pipe,
    /// Phone-facing socket (the address the phone connects to), also the phone's public
    /// address until the first rebinding.
    phone_side: UdpSocket,
    /// The phone's public address after a rebinding.
    public: Option<UdpSocket>,
    /// The phone's address, once it sent something.
    phone: Option<SocketAddr>,
    /// Packets on their way, earliest arrival first.
    queue: BinaryHeap<InFlight>,
    order: u64,
    /// When the NAT last saw traffic of this phone.
    mapped_at: Option<u64>,
    next_rebind: usize,
    last_radio: Option<u64>,
    down_entered: Option<u64>,
}

impl Relay {
    /// A relay to `gateway` bound on `bind`, with the phone's network `p` and planned events
    /// `schedule`, drawing from `seed`; its phone-facing address is [`Relay::addr`].
    pub async fn bind(
        run: Arc<Run>,
        bind: SocketAddr,
        gateway: SocketAddr,
        p: Arc<NetParams>,
        schedule: Arc<Schedule>,
        counters: Arc<NetCounters>,
        seed: u64,
    ) -> std::io::Result<Relay> {
        Ok(Relay {
            up: Pipe::new(&p, seed ^ 0x0A),
            down: Pipe::new(&p, seed ^ 0x0B),
            phone_side: UdpSocket::bind(bind).await?,
            public: None,
            run,
            gateway,
            counters,
            schedule,
            p,
            phone: None,
            queue: BinaryHeap::new(),
            order: 0,
            mapped_at: None,
            next_rebind: 0,
            last_radio: None,
            down_entered: None,
        })
    }

    /// The address the phone sends to (on loopback when bound to every interface: the phones
    /// live in this process).
    pub fn addr(&self) -> std::io::Result<SocketAddr> {
        let a = self.phone_side.local_addr()?;
        Ok(if a.ip().is_unspecified() {
            SocketAddr::new(loopback(a), a.port())
        } else {
            a
        })
    }

    /// Relays until dropped (the run aborts the task at its end).
    pub async fn run(mut self) {
        let mut from_phone = vec![0u8; MAX_DATAGRAM];
        let mut from_gw = vec![0u8; MAX_DATAGRAM];
        let sleep = tokio::time::sleep(std::time::Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            let now = self.run.now_us();
            self.due(now).await;
            let wake = self.next_wake();
            sleep.as_mut().reset(self.run.at(wake.max(now)));
            tokio::select! {
                r = self.phone_side.recv_from(&mut from_phone) => {
                    match r {
                        // The gateway, answering the public address before any rebinding.
                        Ok((n, from)) if from == self.gateway => {
                            if self.public.is_none() {
                                self.downlink(&from_phone[..n]);
                            }
                        }
                        Ok((n, phone)) => {
                            self.phone = Some(phone);
                            self.uplink(&from_phone[..n]).await;
                        }
                        Err(_) => {}
                    }
                }
                r = recv_on(self.public.as_ref(), &mut from_gw) => {
                    if let Ok((n, _)) = r {
                        self.downlink(&from_gw[..n]);
                    }
                }
                _ = &mut sleep => {}
            }
        }
    }

    /// The next time something is due: a packet's arrival, a rebinding, a change of the link.
    fn next_wake(&self) -> u64 {
        let mut wake = u64::MAX;
        if let Some(Reverse((at, ..))) = self.queue.peek() {
            wake = wake.min(*at);
        }
        if let Some(&t) = self.schedule.rebinds.get(self.next_rebind) {
            wake = wake.min(t);
        }
        if wake == u64::MAX {
            // Nothing planned: look again in a second (an idle relay costs nothing else).
            wake = self.run.now_us() + 1_000_000;
        }
        wake
    }

    /// Sends what has arrived by `now`, and does the rebindings that are due.
    async fn due(&mut self, now: u64) {
        while self
            .schedule
            .rebinds
            .get(self.next_rebind)
            .is_some_and(|&t| t <= now)
        {
            self.next_rebind += 1;
            if self.rebind().await {
                add(&self.counters.rebinds, 1);
            }
        }
        while self
            .queue
            .peek()
            .is_some_and(|Reverse((at, ..))| *at <= now)
        {
            let Some(Reverse((_, _, dir, bytes))) = self.queue.pop() else {
                break;
            };
            let c = match dir {
                Dir::Up => &self.counters.up,
                Dir::Down => &self.counters.down,
            };
            // In flight when the link went down: lost.
            if self.schedule.down_until(now).is_some() {
                add(&c.down, 1);
                continue;
            }
            add(&c.delivered, 1);
            add(&c.delivered_bytes, bytes.len() as u64);
            match dir {
                Dir::Up => {
                    let public = self.public.as_ref().unwrap_or(&self.phone_side);
                    let _ = public.send_to(&bytes, self.gateway).await;
                }
                Dir::Down => {
                    if let Some(phone) = self.phone {
                        let _ = self.phone_side.send_to(&bytes, phone).await;
                        self.radio(now);
                    }
                }
            }
        }
    }

    /// A new public address: the old mapping is gone, packets to it are lost.
    async fn rebind(&mut self) -> bool {
        let Ok(bind) = self.phone_side.local_addr() else {
            return false;
        };
        match UdpSocket::bind(std::net::SocketAddr::new(bind.ip(), 0)).await {
            Ok(s) => {
                self.public = Some(s);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the link is down at `now` (counting each outage once).
    fn is_down(&mut self, now: u64) -> bool {
        let Some(until) = self.schedule.down_until(now) else {
            self.down_entered = None;
            return false;
        };
        if self.down_entered != Some(until) {
            self.down_entered = Some(until);
            if self.schedule.suspended_until(now).is_some() {
                add(&self.counters.suspensions, 1);
            } else {
                add(&self.counters.dead_zones, 1);
            }
        }
        true
    }

    /// Counts radio activity, and a wake-up after a quiet gap (the phone's first activity is
    /// not one: a run of minutes would count it as dozens per hour).
    fn radio(&mut self, now: u64) {
        if self
            .last_radio
            .is_some_and(|t| now.saturating_sub(t) > WAKE_GAP_US)
        {
            add(&self.counters.wakeups, 1);
        }
        self.last_radio = Some(now);
    }

    /// Whether the NAT has forgotten the phone's mapping by `now` (idle past its timeout).
    fn mapping_expired(&self, now: u64) -> bool {
        match (self.mapped_at, self.p.nat_timeout) {
            (Some(t), Some(timeout)) => now.saturating_sub(t) > timeout.as_micros() as u64,
            _ => false,
        }
    }

    /// A packet from the phone.
    async fn uplink(&mut self, bytes: &[u8]) {
        let now = self.run.now_us();
        if self.is_down(now) {
            self.counters.up.count(bytes.len(), Err(Drop::Down));
            return;
        }
        self.radio(now);
        // An idle mapping expired: the phone's packet opens a new one (a new public port).
        if self.mapping_expired(now) && self.rebind().await {
            add(&self.counters.expiries, 1);
        }
        self.mapped_at = Some(now);
        let verdict = self.up.offer(now, bytes.len());
        self.counters.up.count(bytes.len(), verdict);
        if let Ok(at) = verdict {
            self.push(at, Dir::Up, bytes);
        }
    }

    /// A packet from the gateway.
    fn downlink(&mut self, bytes: &[u8]) {
        let now = self.run.now_us();
        if self.is_down(now) {
            self.counters.down.count(bytes.len(), Err(Drop::Down));
            return;
        }
        if self.mapping_expired(now) {
            add(&self.counters.no_mapping, 1);
            return;
        }
        self.mapped_at = Some(now);
        let verdict = self.down.offer(now, bytes.len());
        self.counters.down.count(bytes.len(), verdict);
        if let Ok(at) = verdict {
            self.push(at, Dir::Down, bytes);
        }
    }

    fn push(&mut self, at: u64, dir: Dir, bytes: &[u8]) {
        self.order += 1;
        self.queue
            .push(Reverse((at, self.order, dir, bytes.to_vec())));
    }
}
