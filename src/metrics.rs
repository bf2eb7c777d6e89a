//! Counters and latency histograms, rendered in the Prometheus text format. Written by hand: a
//! few atomics are all the gateway needs, and a metrics framework would put a lock or a map
//! lookup on the per-fix path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds of latency histograms, seconds.
const BOUNDS_S: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram with fixed buckets (cumulative on rendering).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_S.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BOUNDS_S
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(BOUNDS_S.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The upper bound, seconds, of the bucket holding quantile `q` (0..=1): the quantile is
    /// at most this (infinity past the last bucket, 0 with no observation).
    pub fn quantile_bound(&self, q: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        let want = (q * n as f64).ceil().max(1.0) as u64;
        let mut cum = 0;
        for (i, b) in BOUNDS_S.iter().enumerate() {
            cum += self.buckets[i].load(Ordering::Relaxed);
            if cum >= want {
                return *b;
            }
        }
        f64::INFINITY
    }

    /// Appends the histogram in Prometheus text format.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.samples(name, "", out);
    }

    /// The bucket, sum and count lines, each with `labels` (`k="v",` or empty) first.
    fn samples(&self, name: &str, labels: &str, out: &mut String) {
        let mut cum = 0;
        for (i, b) in BOUNDS_S.iter().enumerate() {
            cum += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{b}\"}} {cum}");
        }
        cum += self.buckets[BOUNDS_S.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cum}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let plain = labels.trim_end_matches(',');
        let set = if plain.is_empty() {
            String::new()
        } else {
            format!("{{{plain}}}")
        };
        let _ = writeln!(out, "{name}_sum{set} {sum}\n{name}_count{set} {cum}");
    }
}

/// Appends a counter or gauge in Prometheus text format.
pub fn render_value(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Appends a labelled family of counters.
pub fn render_labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) {
    render_labelled_kind(out, name, "counter", help, label, values);
}

/// Appends a labelled family of metrics of type `kind` (`counter`, `gauge`).
pub fn render_labelled_kind(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (l, v) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{l}\"}} {v}");
    }
}

/// Appends a family of histograms, one per value of `label`.
pub fn render_labelled_histograms(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, &Histogram)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (l, h) in values {
        h.samples(name, &format!("{label}=\"{l}\","), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_bounds_come_from_the_buckets() {
        let h = Histogram::default();
        assert_eq!(h.quantile_bound(0.99), 0.0);
        for ms in [1, 2, 3, 40, 400] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.quantile_bound(0.5), 0.005);
        assert_eq!(h.quantile_bound(0.8), 0.05);
        assert_eq!(h.quantile_bound(0.99), 0.5);
        h.observe(Duration::from_secs(9));
        assert_eq!(h.quantile_bound(1.0), f64::INFINITY);
    }

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let mut s = String::new();
        h.render("x_seconds", "test", &mut s);
        assert!(s.contains("x_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(s.contains("x_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(s.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(s.contains("x_seconds_count 3\n"));
    }
}
