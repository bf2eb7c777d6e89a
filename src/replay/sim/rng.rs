//! The load generator's randomness: splitmix64, a tiny seedable generator, so that one
//! `--seed` replays the same phases, offsets, offline periods, migrations and jitters.

/// The next number of the splitmix64 sequence kept in `state`.
pub(super) fn mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in [0, 1).
pub(super) fn unit(state: &mut u64) -> f64 {
    (mix(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform time in `[lo, hi]` us (`lo` when the range is empty).
pub(super) fn between(state: &mut u64, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        lo
    } else {
        lo + (unit(state) * (hi - lo) as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_its_reference_sequence() {
        // The first outputs of splitmix64 seeded with 0 (Vigna's reference implementation).
        let mut s = 0;
        assert_eq!(mix(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix(&mut s), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(mix(&mut s), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn units_and_times_stay_in_range() {
        let mut s = 42;
        for _ in 0..10_000 {
            let u = unit(&mut s);
            assert!((0.0..1.0).contains(&u), "{u}");
            let t = between(&mut s, 1_000, 2_000);
            assert!((1_000..=2_000).contains(&t), "{t}");
        }
        // An empty or reversed range is its low end, and draws nothing.
        let before = s;
        assert_eq!(between(&mut s, 5, 5), 5);
        assert_eq!(between(&mut s, 9, 3), 9);
        assert_eq!(s, before);
    }
}
