//! [`Clock`]: the clock the server reads (UTC milliseconds), injected so that tests can move
//! time. The fold never reads it; the applier, the sessions and the cluster's ticks do.

use std::sync::Arc;

/// The clock the shell reads: UTC milliseconds. Injected so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}
