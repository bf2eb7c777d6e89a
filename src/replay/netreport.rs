//! What a run's network model did (realised loss, round trip, rebindings, outages), so that
//! its figures can be trusted, and what the phones' radios spent: bytes and packets each way
//! and radio wake-ups, per phone and hour (the battery and data budget).

use serde::Serialize;

/// One direction's realised figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DirReport {
    /// Packets offered while the link was up.
    pub packets: u64,
    /// Lost at random (the burst model).
    pub lost: u64,
    /// Dropped by a full bottleneck buffer.
    pub queue_drops: u64,
    /// Swallowed by dead zones and suspensions.
    pub down_drops: u64,
    /// Delivered.
    pub delivered: u64,
    /// `lost / packets`.
    pub loss: f64,
}

/// The network model's report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NetReport {
    /// The profile's name.
    pub profile: String,
    /// Towards the gateway.
    pub up: DirReport,
    /// Towards the phones.
    pub down: DirReport,
    /// Downlink packets lost to an expired NAT mapping.
    pub no_mapping: u64,
    /// QUIC's smoothed round trip sampled at every upload: median, us.
    pub rtt_p50_us: u64,
    /// Its 99th percentile, us.
    pub rtt_p99_us: u64,
    /// Spontaneous NAT rebindings.
    pub rebinds: u64,
    /// Idle NAT mappings that expired and were replaced.
    pub nat_expiries: u64,
    /// Dead zones entered.
    pub dead_zones: u64,
    /// App suspensions entered.
    pub suspensions: u64,
    /// Phone-hours the counts below cover (every driver from its start to its end).
    pub phone_hours: f64,
    /// Per phone and hour: bytes sent (UDP payload).
    pub bytes_up_per_h: f64,
    /// Per phone and hour: bytes received.
    pub bytes_down_per_h: f64,
    /// Per phone and hour: packets sent.
    pub packets_up_per_h: f64,
    /// Per phone and hour: packets received.
    pub packets_down_per_h: f64,
    /// Per phone and hour: radio wake-ups (activity after more than 10 s of quiet; a phone's
    /// first activity is not counted).
    pub wakeups_per_h: f64,
}

impl NetReport {
    /// The report's lines for the run's table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let ms = |us: u64| us as f64 / 1000.0;
        let dir = |d: &DirReport| {
            format!(
                "{} pkts, lost {} ({:.2} %), queue {}, down {}",
                d.packets,
                d.lost,
                d.loss * 100.0,
                d.queue_drops,
                d.down_drops
            )
        };
        let mut o = String::new();
        let _ = writeln!(o, "network {}: up {}", self.profile, dir(&self.up));
        let _ = writeln!(
            o,
            "        down {}; no NAT mapping {}",
            dir(&self.down),
            self.no_mapping
        );
        let _ = writeln!(
            o,
            "        QUIC rtt p50 {:.1} ms p99 {:.1} ms; NAT rebinds {} + {} expired mappings; dead zones {}; suspensions {}",
            ms(self.rtt_p50_us),
            ms(self.rtt_p99_us),
            self.rebinds,
            self.nat_expiries,
            self.dead_zones,
            self.suspensions
        );
        let _ = writeln!(
            o,
            "phone radio per hour: {:.0} KB up, {:.0} KB down ({:.2} MB), {:.0} packets up, {:.0} down, {:.0} wake-ups ({:.2} phone-hours measured)",
            self.bytes_up_per_h / 1e3,
            self.bytes_down_per_h / 1e3,
            (self.bytes_up_per_h + self.bytes_down_per_h) / 1e6,
            self.packets_up_per_h,
            self.packets_down_per_h,
            self.wakeups_per_h,
            self.phone_hours
        );
        o
    }
}
