//! A phone's mobile network, sans IO: what happens to each packet between a simulated phone and
//! the gateway (lost, or delivered at a time), and the link's planned events (dead zones, NAT
//! rebindings, app suspensions). Times are us since the run's start; randomness comes from the
//! driver's seeded stream, so one `--seed` draws the same network.
//!
//! - **Loss** is a Gilbert model, one per direction: a good state that loses nothing and a bad
//!   state that loses everything, with transitions drawn per packet so that the stationary loss
//!   is `loss` and losses come in bursts of `burst` packets on average (a geometric length).
//! - **Delay** is half the round trip each way plus normal jitter (the round trip's standard
//!   deviation split between the two directions), never negative. Each packet is delayed on
//!   its own, so a packet may overtake the one before it: the reordering that jitter brings.
//! - **Bandwidth**: a bottleneck per direction serialises packets at `bandwidth_bps`, with a
//!   buffer of `queue_bytes` (tail drop beyond: a cellular uplink's buffer).
//! - **Dead zones** (tunnels, garages): nothing passes either way; the phone keeps recording.
//! - **NAT rebinding**: the carrier's NAT gives the phone a new public port, at random times
//!   and whenever the mapping has been idle for `nat_timeout`; the gateway sees packets of the
//!   same connection from a new address (QUIC migration).
//! - **Suspension**: the operating system suspends the app: no packets either way, and the
//!   app does nothing until it resumes.

use std::time::Duration;

use super::rng::{between, unit};

/// A network's parameters (`--network` and the flags that override it).
#[derive(Clone, Debug, PartialEq)]
pub struct NetParams {
    /// The profile these came from, for the report.
    pub name: String,
    /// Stationary loss per direction, 0..1.
    pub loss: f64,
    /// Mean length of a loss burst, packets (>= 1).
    pub burst: f64,
    /// Round trip the link adds, ms (on top of loopback's).
    pub rtt_ms: f64,
    /// Standard deviation of that round trip, ms.
    pub jitter_ms: f64,
    /// Bottleneck rate per direction, bits/s (`None`: unlimited).
    pub bandwidth_bps: Option<u64>,
    /// The bottleneck's buffer, bytes.
    pub queue_bytes: u64,
    /// Mean time between dead zones (`None`: none).
    pub dead_every: Option<Duration>,
    /// A dead zone's duration, drawn uniformly in this range.
    pub dead_for: (Duration, Duration),
    /// Mean time between spontaneous NAT rebindings (`None`: none).
    pub rebind_every: Option<Duration>,
    /// The NAT forgets an idle mapping after this long (`None`: never).
    pub nat_timeout: Option<Duration>,
    /// Mean time between app suspensions (`None`: none).
    pub suspend_every: Option<Duration>,
    /// A suspension's duration, drawn uniformly in this range.
    pub suspend_for: (Duration, Duration),
}

/// The named profiles (`--network NAME`); docs/NETWORK.md gives their sources.
pub const PROFILES: [&str; 5] = ["clean", "lte-good", "lte-urban", "3g-poor", "rural-edge"];

impl NetParams {
    /// A profile by name.
    pub fn profile(name: &str) -> Option<NetParams> {
        let s = Duration::from_secs;
        let base = NetParams {
            name: name.to_owned(),
            loss: 0.0,
            burst: 1.0,
            rtt_ms: 0.0,
            jitter_ms: 0.0,
            bandwidth_bps: None,
            queue_bytes: 256 * 1024,
            dead_every: None,
            dead_for: (s(0), s(0)),
            rebind_every: None,
            nat_timeout: None,
            suspend_every: None,
            suspend_for: (s(0), s(0)),
        };
        Some(match name {
            "clean" => base,
            "lte-good" => NetParams {
                loss: 0.005,
                burst: 1.5,
                rtt_ms: 45.0,
                jitter_ms: 10.0,
                bandwidth_bps: Some(20_000_000),
                rebind_every: Some(s(20 * 60)),
                nat_timeout: Some(s(120)),
                ..base
            },
            "lte-urban" => NetParams {
                loss: 0.02,
                burst: 3.0,
                rtt_ms: 80.0,
                jitter_ms: 40.0,
                bandwidth_bps: Some(5_000_000),
                rebind_every: Some(s(5 * 60)),
                nat_timeout: Some(s(60)),
                ..base
            },
            "3g-poor" => NetParams {
                loss: 0.05,
                burst: 4.0,
                rtt_ms: 300.0,
                jitter_ms: 150.0,
                bandwidth_bps: Some(1_000_000),
                queue_bytes: 64 * 1024,
                rebind_every: Some(s(3 * 60)),
                nat_timeout: Some(s(30)),
                ..base
            },
            "rural-edge" => NetParams {
                loss: 0.10,
                burst: 5.0,
                rtt_ms: 600.0,
                jitter_ms: 200.0,
                bandwidth_bps: Some(200_000),
                queue_bytes: 32 * 1024,
                dead_every: Some(s(5 * 60)),
                dead_for: (s(30), s(180)),
                rebind_every: Some(s(3 * 60)),
                nat_timeout: Some(s(30)),
                ..base
            },
            _ => return None,
        })
    }

    /// Why these parameters cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.loss) {
            return Err(format!("loss {} is not in [0, 1)", self.loss));
        }
        if !(self.burst >= 1.0 && self.burst.is_finite()) {
            return Err(format!("burst {} is below one packet", self.burst));
        }
        for (what, v) in [("rtt", self.rtt_ms), ("jitter", self.jitter_ms)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{what} {v} ms is not a duration"));
            }
        }
        if self.bandwidth_bps == Some(0) {
            return Err("a bandwidth of 0 passes nothing".into());
        }
        for (what, every, range) in [
            ("dead zone", self.dead_every, self.dead_for),
            ("suspension", self.suspend_every, self.suspend_for),
        ] {
            if every.is_some_and(|e| e.is_zero()) {
                return Err(format!("{what}s every 0 s"));
            }
            if range.0 > range.1 {
                return Err(format!("{what} duration range {range:?} is reversed"));
            }
        }
        if self.rebind_every.is_some_and(|e| e.is_zero())
            || self.nat_timeout == Some(Duration::ZERO)
        {
            return Err("NAT rebinding every 0 s".into());
        }
        Ok(())
    }

    /// The longest time the link can be down at once (dead zone or suspension).
    pub fn longest_outage(&self) -> Duration {
        let dead = self.dead_every.map_or(Duration::ZERO, |_| self.dead_for.1);
        let susp = self
            .suspend_every
            .map_or(Duration::ZERO, |_| self.suspend_for.1);
        dead.max(susp)
    }
}

/// A Gilbert loss model: good (no loss) or bad (every packet lost).
#[derive(Clone, Debug)]
pub struct Gilbert {
    /// P(good -> bad) per packet.
    p: f64,
    /// P(bad -> good) per packet.
    r: f64,
    bad: bool,
}

impl Gilbert {
    /// Stationary loss `loss`, mean burst `burst` packets.
    pub fn new(loss: f64, burst: f64) -> Gilbert {
        let r = 1.0 / burst.max(1.0);
        let p = if loss <= 0.0 {
            0.0
        } else {
            (loss * r / (1.0 - loss)).min(1.0)
        };
        Gilbert { p, r, bad: false }
    }

    /// Whether the next packet is lost.
    pub fn lose(&mut self, rng: &mut u64) -> bool {
        let u = unit(rng);
        self.bad = if self.bad { u >= self.r } else { u < self.p };
        self.bad
    }
}

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut u64) -> f64 {
    let u1 = unit(rng).max(f64::MIN_POSITIVE);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Why a packet did not pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Random (burst) loss.
    Loss,
    /// The bottleneck's buffer was full.
    Queue,
    /// A dead zone or a suspension: the link was down.
    Down,
}

/// One direction of the link.
#[derive(Clone, Debug)]
pub struct Pipe {
    loss: Gilbert,
    one_way_us: f64,
    jitter_us: f64,
    bandwidth_bps: Option<u64>,
    queue_bytes: u64,
    /// When the bottleneck is free again.
    free_at: u64,
    rng: u64,
}

impl Pipe {
    /// A direction of a link with `p`, drawing from `seed`.
    pub fn new(p: &NetParams, seed: u64) -> Pipe {
        Pipe {
            loss: Gilbert::new(p.loss, p.burst),
            one_way_us: p.rtt_ms * 500.0,
            // The round trip's variance is the sum of both directions'.
            jitter_us: p.jitter_ms * 1000.0 / std::f64::consts::SQRT_2,
            bandwidth_bps: p.bandwidth_bps,
            queue_bytes: p.queue_bytes,
            free_at: 0,
            rng: seed,
        }
    }

    /// A packet of `size` bytes offered at `now`: when it arrives, or why it does not.
    pub fn offer(&mut self, now: u64, size: usize) -> Result<u64, Drop> {
        let depart = match self.bandwidth_bps {
            Some(bps) => {
                let start = self.free_at.max(now);
                let backlog = (start - now) as f64 * bps as f64 / 8e6;
                if backlog + size as f64 > self.queue_bytes as f64 {
                    return Err(Drop::Queue);
                }
                let tx_us = (size as f64 * 8e6 / bps as f64).ceil() as u64;
                self.free_at = start + tx_us;
                self.free_at
            }
            None => now,
        };
        if self.loss.lose(&mut self.rng) {
            return Err(Drop::Loss);
        }
        let jitter = if self.jitter_us > 0.0 {
            normal(&mut self.rng) * self.jitter_us
        } else {
            0.0
        };
        Ok(depart + (self.one_way_us + jitter).max(0.0) as u64)
    }
}

/// A link's planned events over a run, us since its start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    /// Dead zones: (from, until), sorted, disjoint.
    pub dead: Vec<(u64, u64)>,
    /// Suspensions: (from, until), sorted, disjoint.
    pub suspended: Vec<(u64, u64)>,
    /// Spontaneous NAT rebindings, sorted.
    pub rebinds: Vec<u64>,
}

/// Intervals of `(lo, hi)` length every `every` on average (exponential gaps) over
/// `[from, until)`.
fn intervals(
    rng: &mut u64,
    every: Option<Duration>,
    len: (Duration, Duration),
    from: u64,
    until: u64,
) -> Vec<(u64, u64)> {
    let Some(every) = every else {
        return Vec::new();
    };
    let mean = every.as_micros() as f64;
    let mut out = Vec::new();
    let mut t = from;
    loop {
        t += (-(1.0 - unit(rng)).ln() * mean) as u64;
        if t >= until {
            return out;
        }
        let d = between(rng, len.0.as_micros() as u64, len.1.as_micros() as u64);
        out.push((t, t + d));
        t += d;
    }
}

impl Schedule {
    /// The events of a link with `p` over `[from, until)`, drawn from `rng`.
    pub fn plan(p: &NetParams, rng: &mut u64, from: u64, until: u64) -> Schedule {
        let dead = intervals(rng, p.dead_every, p.dead_for, from, until);
        let suspended = intervals(rng, p.suspend_every, p.suspend_for, from, until);
        let rebinds = intervals(
            rng,
            p.rebind_every,
            (Duration::ZERO, Duration::ZERO),
            from,
            until,
        )
        .into_iter()
        .map(|(t, _)| t)
        .collect();
        Schedule {
            dead,
            suspended,
            rebinds,
        }
    }

    /// The end of the dead zone or suspension `now` is in, if any.
    pub fn down_until(&self, now: u64) -> Option<u64> {
        let inside = |v: &Vec<(u64, u64)>| {
            v.iter()
                .find(|&&(a, b)| a <= now && now < b)
                .map(|&(_, b)| b)
        };
        inside(&self.dead).max(inside(&self.suspended))
    }

    /// The end of the suspension `now` is in, if any.
    pub fn suspended_until(&self, now: u64) -> Option<u64> {
        self.suspended
            .iter()
            .find(|&&(a, b)| a <= now && now < b)
            .map(|&(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(loss: f64, burst: f64) -> NetParams {
        NetParams {
            loss,
            burst,
            ..NetParams::profile("clean").unwrap()
        }
    }

    #[test]
    fn gilbert_loss_converges_to_its_rate_in_bursts_of_its_mean_length() {
        for (loss, burst) in [(0.02, 3.0), (0.05, 4.0), (0.10, 5.0), (0.005, 1.5)] {
            let mut g = Gilbert::new(loss, burst);
            let mut rng = 11;
            let n = 2_000_000;
            let (mut lost, mut bursts, mut prev) = (0u64, 0u64, false);
            for _ in 0..n {
                let l = g.lose(&mut rng);
                lost += l as u64;
                bursts += (l && !prev) as u64;
                prev = l;
            }
            let rate = lost as f64 / n as f64;
            let mean_burst = lost as f64 / bursts as f64;
            assert!((rate - loss).abs() < loss * 0.05, "{loss}: {rate}");
            assert!(
                (mean_burst - burst).abs() < burst * 0.05,
                "{burst}: {mean_burst}"
            );
        }
        let mut none = Gilbert::new(0.0, 3.0);
        let mut rng = 1;
        assert!((0..10_000).all(|_| !none.lose(&mut rng)));
    }

    #[test]
    fn delay_has_its_mean_and_spread_and_reorders_only_with_jitter() {
        let p = NetParams {
            rtt_ms: 80.0,
            jitter_ms: 40.0,
            ..params(0.0, 1.0)
        };
        let mut pipe = Pipe::new(&p, 5);
        let n = 100_000u64;
        let mut sum = 0.0;
        let mut sq = 0.0;
        let mut reordered = 0;
        let mut last = 0;
        for i in 0..n {
            let now = i * 1_000;
            let at = pipe.offer(now, 100).unwrap();
            let d = (at - now) as f64 / 1000.0;
            sum += d;
            sq += d * d;
            reordered += (at < last) as u32;
            last = last.max(at);
        }
        let mean = sum / n as f64;
        let sd = (sq / n as f64 - mean * mean).sqrt();
        // Clamping at zero (8 % of the draws at 40 +- 28 ms) lifts the mean by about 1 ms and
        // trims the spread a little.
        assert!((mean - 40.0).abs() < 2.0, "one way {mean} ms");
        assert!((sd - 28.3).abs() < 3.0, "sd {sd} ms");
        assert!(reordered > 0, "jitter larger than the gap reorders");

        let mut steady = Pipe::new(
            &NetParams {
                jitter_ms: 0.0,
                ..p
            },
            5,
        );
        let ats: Vec<u64> = (0..100)
            .map(|i| steady.offer(i * 10, 100).unwrap())
            .collect();
        assert!(
            ats.windows(2).all(|w| w[0] < w[1]),
            "no jitter, no reordering"
        );
    }

    #[test]
    fn a_bottleneck_serialises_and_drops_what_its_buffer_cannot_hold() {
        let p = NetParams {
            bandwidth_bps: Some(1_000_000),
            queue_bytes: 10_000,
            ..params(0.0, 1.0)
        };
        let mut pipe = Pipe::new(&p, 1);
        // 1,250 bytes take 10 ms at 1 Mbit/s.
        assert_eq!(pipe.offer(0, 1_250), Ok(10_000));
        assert_eq!(pipe.offer(0, 1_250), Ok(20_000));
        // A burst of 1,250-byte packets at time 0: 10,000 bytes of buffer hold 8.
        let passed = (0..20).filter(|_| pipe.offer(0, 1_250).is_ok()).count();
        assert_eq!(passed, 6, "8 in the buffer, 2 were there already");
        assert_eq!(pipe.offer(0, 100), Err(Drop::Queue));
        // Once drained, it passes again.
        assert!(pipe.offer(1_000_000, 1_250).is_ok());
    }

    #[test]
    fn schedules_are_drawn_from_the_seed_and_answer_where_the_link_is_down() {
        let p = NetParams::profile("rural-edge").unwrap();
        let hour = 3_600_000_000;
        let a = Schedule::plan(&p, &mut 9, 0, hour);
        let b = Schedule::plan(&p, &mut 9, 0, hour);
        assert_eq!(a, b, "same seed, same network");
        assert_ne!(a, Schedule::plan(&p, &mut 10, 0, hour));
        // Every 5 minutes on average for 30-180 s: a handful an hour.
        assert!((4..=20).contains(&a.dead.len()), "{}", a.dead.len());
        for &(s, e) in &a.dead {
            assert!((30_000_000..=180_000_000).contains(&(e - s)));
            assert_eq!(a.down_until(s), Some(e));
            assert_ne!(a.down_until(e), Some(e), "the end is outside");
        }
        assert!(
            a.dead.windows(2).all(|w| w[0].1 <= w[1].0),
            "disjoint, sorted"
        );
        assert!(!a.rebinds.is_empty());
        assert!(a.suspended.is_empty());
        assert_eq!(a.down_until(a.dead[0].0 - 1), None);
    }

    #[test]
    fn profiles_are_valid_and_bad_flags_are_refused() {
        for name in PROFILES {
            let p = NetParams::profile(name).unwrap();
            assert_eq!(p.check(), Ok(()), "{name}");
        }
        assert!(NetParams::profile("5g-dream").is_none());
        assert!(params(1.0, 2.0).check().is_err());
        assert!(params(0.1, 0.5).check().is_err());
        let zero = NetParams {
            bandwidth_bps: Some(0),
            ..params(0.0, 1.0)
        };
        assert!(zero.check().is_err());
    }
}
