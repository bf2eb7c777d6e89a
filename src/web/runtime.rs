//! Where the web listener runs: on threads of its own, apart from the gateway's runtime, at a
//! lower CPU priority (`web.threads`, `web.nice`), so that tracking pages, event streams and
//! back-office lookups give way to drivers' fixes and their acks when the CPU is short. A
//! lookup costs a core about 16 us, most of it kernel TCP and HTTP parsing; on a gateway that
//! is also taking fixes, that time is better spent late than in front of a driver's ack.
//!
//! The listener's tasks (its connections, event streams, the writes it hands to the log) all
//! run on this runtime; what they share with the gateway (the fleet state, the log writer's
//! queue, the feeds) is runtime-agnostic.

use crate::priority::lower_priority;
use std::future::Future;

/// Resolves once the listener has stopped serving (its runtime is gone).
pub type Served = tokio::sync::oneshot::Receiver<()>;

/// Runs `serve` to completion on a runtime of `threads` threads at CPU priority `nice`, in a
/// thread of its own; returns at once, with what tells when it is done. With `threads == 0`
/// it is spawned on the current runtime instead.
///
/// # Errors
/// The runtime or its thread could not be started.
pub fn spawn_serving<F>(threads: usize, nice: i32, serve: F) -> std::io::Result<Served>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (done, served) = tokio::sync::oneshot::channel();
    if threads == 0 {
        tokio::spawn(async move {
            serve.await;
            let _ = done.send(());
        });
        return Ok(served);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("milepost-web")
        .on_thread_start(move || lower_priority(nice))
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("milepost-web-main".into())
        .spawn(move || {
            // This thread runs the accept loop (the future given to block_on): it gives way
            // too.
            lower_priority(nice);
            rt.block_on(serve);
            // The listener's leftover tasks (streams being closed) are not waited for.
            rt.shutdown_background();
            let _ = done.send(());
        })?;
    Ok(served)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    fn own_nice() -> i32 {
        // SAFETY: plain integer arguments; errno is cleared first, as getpriority may return -1.
        unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
        }
    }

    #[test]
    fn the_listener_runs_on_its_own_threads_at_the_lower_priority() {
        let base = own_nice();
        let (tx, rx) = std::sync::mpsc::channel();
        let served = spawn_serving(1, 7, async move {
            // A spawned task runs on a worker thread, like every connection's.
            let nice = tokio::spawn(async { own_nice() }).await.unwrap();
            tx.send(nice).unwrap();
        })
        .unwrap();
        assert_eq!(served.blocking_recv(), Ok(()));
        let nice = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        // Nice is set, not added; lowering it below the process's own (a test run niced
        // above 7) needs a privilege, and then the threads keep the process's value.
        assert!(
            nice == 7 || (base > 7 && nice == base),
            "nice {nice}, base {base}"
        );
    }
}
