//! Thread CPU priorities: the parts that must never slow fix ingest (the web listener, the
//! notification outbox and its workers) run their threads at a higher nice value.

/// Lowers the calling thread's CPU priority to `nice` (Linux: a thread's nice value is its
/// own). Best effort: a failure is logged, and the thread runs at the gateway's priority.
pub fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if rc != 0 {
            tracing::warn!(
                nice,
                error = %std::io::Error::last_os_error(),
                "a thread keeps the gateway's CPU priority"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::debug!(nice, "thread priorities are only set on Linux");
}
