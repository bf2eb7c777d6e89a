//! The published-view issue's targets, checked against an evaluation: each target, the value
//! measured, whether it is met and, when not, by how much it is missed. `eval-eta` prints
//! them after its tables and writes them to its JSON (`targets`).

use serde::Serialize;

use crate::tools::eval_published::Published;

/// Core and published MAE targets by horizon bucket, seconds.
const MAE_S: [f64; 5] = [25.0, 45.0, 65.0, 85.0, 110.0];
/// Window targets hold up to this many buckets (1 to 7-10 stops ahead).
const WINDOW_BUCKETS: usize = 4;
/// Least window coverage there.
const COVERAGE: f64 = 0.90;
/// Widest median window there, seconds.
const WIDTH_S: f64 = 480.0;
/// Least share of exact "N stops away".
const STOPS_AWAY: f64 = 0.95;
/// Least arrival recall and precision.
const ARRIVALS: f64 = 0.97;

/// One target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    /// What is measured, e.g. "published MAE s, 2-3 stops".
    pub what: String,
    /// The measured value.
    pub value: f64,
    /// The target.
    pub target: f64,
    /// `true` when the target is an upper bound (`value <= target`), else a lower one.
    pub at_most: bool,
    /// Whether it is met.
    pub met: bool,
    /// How far from the target when missed (0 when met), in the value's unit.
    pub missed_by: f64,
}

fn at_most(what: String, value: f64, target: f64) -> Target {
    let met = value <= target;
    Target {
        what,
        value,
        target,
        at_most: true,
        met,
        missed_by: if met { 0.0 } else { value - target },
    }
}

fn at_least(what: String, value: f64, target: f64) -> Target {
    let met = value >= target;
    Target {
        what,
        value,
        target,
        at_most: false,
        met,
        missed_by: if met { 0.0 } else { target - value },
    }
}

/// Every target against the core's MAE by bucket (`core_mae_s`, seconds, vehicle under way)
/// and the published view `p`.
pub fn check(core_mae_s: &[f64], p: &Published) -> Vec<Target> {
    let mut out = Vec::new();
    for (k, (core, publ)) in core_mae_s.iter().zip(&p.buckets).enumerate() {
        let h = &publ.horizon;
        let mae = MAE_S.get(k).copied().unwrap_or(f64::INFINITY);
        out.push(at_most(format!("core MAE s, {h} stops"), *core, mae));
        out.push(at_most(
            format!("published MAE s, {h} stops"),
            publ.mae_s,
            mae,
        ));
        if k < WINDOW_BUCKETS {
            let what = format!("window coverage, {h} stops");
            out.push(at_least(what, publ.window_coverage, COVERAGE));
            let what = format!("median window width s, {h} stops");
            out.push(at_most(what, publ.window_p50_s, WIDTH_S));
        }
        out.push(at_most(
            format!("past share, {h} stops"),
            publ.past_share,
            0.0,
        ));
        let what = format!("\"stops away\" exact, {h} stops");
        out.push(at_least(what, publ.stops_away_exact, STOPS_AWAY));
    }
    out.push(at_least(
        "arrival recall".into(),
        p.arrival_recall,
        ARRIVALS,
    ));
    out.push(at_least(
        "arrival precision".into(),
        p.arrival_precision,
        ARRIVALS,
    ));
    let early = p.false_arriving_soon as f64;
    out.push(at_most("early \"Arriving soon\"".into(), early, 0.0));
    out
}

/// The targets as text: one line each, the missed ones saying by how much.
pub fn render(targets: &[Target]) -> String {
    use std::fmt::Write as _;
    let met = targets.iter().filter(|t| t.met).count();
    let mut s = format!("targets: {met} of {} met\n", targets.len());
    for t in targets {
        let op = if t.at_most { "<=" } else { ">=" };
        let verdict = if t.met {
            "met".to_owned()
        } else {
            format!("missed by {}", num(t.missed_by))
        };
        let _ = writeln!(
            s,
            "  {:<36} {:>8} (target {op} {}): {verdict}",
            t.what,
            num(t.value),
            num(t.target)
        );
    }
    s
}

/// Seconds and counts with one decimal, shares with three.
fn num(v: f64) -> String {
    if v.abs() < 1.0 && v != 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_target_says_by_how_much() {
        let over = at_most("MAE".into(), 41.0, 25.0);
        assert!(!over.met && over.missed_by == 16.0);
        let under = at_least("recall".into(), 0.926, 0.97);
        assert!(!under.met && (under.missed_by - 0.044).abs() < 1e-9);
        let ok = at_least("coverage".into(), 0.914, 0.90);
        assert!(ok.met && ok.missed_by == 0.0);
        let text = render(&[over, under, ok]);
        assert!(text.starts_with("targets: 1 of 3 met\n"), "{text}");
        assert!(
            text.contains("41.0 (target <= 25.0): missed by 16.0"),
            "{text}"
        );
        assert!(
            text.contains("0.926 (target >= 0.970): missed by 0.044"),
            "{text}"
        );
        assert!(text.contains("0.914 (target >= 0.900): met"), "{text}");
    }
}
