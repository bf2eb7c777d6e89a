//! [`RateLimits`]: a token bucket per API caller (`web.api.rate_per_s`, burst
//! `web.api.burst`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::state::lock;

/// Token buckets, one per caller.
pub struct RateLimits {
    rate_per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimits {
    /// Buckets refilling at `rate_per_s`, holding at most `burst`.
    pub fn new(rate_per_s: u32, burst: u32) -> RateLimits {
        RateLimits {
            rate_per_s: f64::from(rate_per_s.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `id`'s bucket, or says how many seconds until one is there.
    pub fn take(&self, id: &str, now: Instant) -> Result<(), u64> {
        let mut b = lock(&self.buckets);
        // Idle callers' full buckets are dropped now and then, so the map stays small.
        if b.len() > 10_000 {
            let (rate, burst) = (self.rate_per_s, self.burst);
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = b.entry(id.to_owned()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.rate_per_s).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate_per_s).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let l = RateLimits::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.take("k", t0).unwrap();
        }
        assert_eq!(l.take("k", t0), Err(1));
        // Another caller has its own bucket.
        l.take("other", t0).unwrap();
        // Half a second at 2/s is one more request.
        l.take("k", t0 + Duration::from_millis(500)).unwrap();
        assert!(l.take("k", t0 + Duration::from_millis(500)).is_err());
        // Refilling stops at the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            l.take("k", later).unwrap();
        }
        assert!(l.take("k", later).is_err());
    }
}
