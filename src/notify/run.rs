//! Starting the notification threads: the outbox ([`crate::notify::outbox`]) and the workers
//! that talk to providers, one job at a time each.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::notify::adapters::provider::{Envelope, SendError};
use crate::notify::adapters::set::Adapters;
use crate::notify::compose::Composer;
use crate::notify::handle::{Job, JobDone, Notify};
use crate::notify::outbox::Outbox;
use crate::priority::lower_priority;
use crate::state::lock;

/// Starts the outbox thread and `composer.cfg.workers` workers.
pub fn start(notify: &Arc<Notify>, composer: Composer, adapters: Adapters) -> Result<(), String> {
    let workers = composer.cfg.workers;
    // Room for a round's worth of messages per worker: a round (one commit) hands out many.
    let (jobs_tx, jobs_rx) = sync_channel::<Job>(workers * 64);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<JobDone>();
    let nice = composer.cfg.nice;
    let carriers = Arc::new(composer.carriers.clone());
    let outbox = Outbox::new(notify.clone(), composer, jobs_tx, done_rx)?;
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let adapters = Arc::new(adapters);
    let mut threads = lock(&notify.threads);
    for _ in 0..workers {
        let (rx, tx, ad) = (jobs_rx.clone(), done_tx.clone(), adapters.clone());
        let (stop, carriers) = (notify.stop.clone(), carriers.clone());
        let epoch = notify.epoch.clone();
        threads.push(
            std::thread::Builder::new()
                // Linux keeps 15 bytes of a thread's name: distinct from the outbox's in `top -H`.
                .name("milepost-send".into())
                .spawn(move || {
                    lower_priority(nice);
                    work(&rx, &tx, &ad, &carriers, &stop, &epoch)
                })
                .map_err(|e| e.to_string())?,
        );
    }
    threads.push(
        std::thread::Builder::new()
            .name("milepost-notify".into())
            .spawn(move || {
                lower_priority(nice);
                outbox.run()
            })
            .map_err(|e| e.to_string())?,
    );
    Ok(())
}

/// With notifications off, contacts the API stored are still erased when their retention
/// ends: a thread sweeps the store hourly (the outbox does it when notifications are on).
pub fn start_sweeper(
    notify: &Arc<Notify>,
    retention_ms: i64,
    clock: crate::notify::compose::Clock,
) -> Result<(), String> {
    let n = notify.clone();
    let t = std::thread::Builder::new()
        .name("milepost-notify-sweep".into())
        .spawn(move || {
            let mut next = 0;
            while !n.stop.load(Ordering::Relaxed) {
                let now = clock();
                if now >= next {
                    next = now + 3_600_000;
                    if let Err(e) = n.store.sweep(now - retention_ms) {
                        tracing::error!(error = %e, "contacts not swept");
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
        .map_err(|e| e.to_string())?;
    lock(&notify.threads).push(t);
    Ok(())
}

/// A worker: takes jobs until the outbox hangs up. Once the gateway stops, jobs still
/// buffered are answered "not sent" at once (the outbox records them as waiting, so the next
/// start sends them), jobs of an epoch that has passed (the outbox stopped leading) are
/// answered untried, and a panicking adapter answers a retry instead of leaving its message
/// in flight.
fn work(
    jobs: &Mutex<Receiver<Job>>,
    done: &Sender<JobDone>,
    adapters: &Adapters,
    carriers: &crate::tenancy::Carriers,
    stop: &AtomicBool,
    epoch: &std::sync::atomic::AtomicU64,
) {
    loop {
        let job = match lock(jobs).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let q = &job.message;
        let tried = job.epoch == epoch.load(Ordering::Relaxed);
        let result = if !tried {
            Err(SendError::Retry {
                error: "not sent: another gateway sends now".into(),
                after_ms: None,
            })
        } else if stop.load(Ordering::Relaxed) {
            Err(SendError::Retry {
                error: "not sent: the gateway is stopping".into(),
                after_ms: None,
            })
        } else {
            match adapters.get(q.channel) {
                Some(a) => {
                    let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        a.send(&Envelope {
                            id: q.id,
                            to: &job.to,
                            name: job.name.as_deref(),
                            rendered: &q.rendered,
                            unsubscribe: q.unsubscribe.as_deref(),
                            sender: carriers.sender_of_depot(&q.depot),
                        })
                    }));
                    sent.unwrap_or_else(|_| {
                        Err(SendError::Retry {
                            error: "the adapter panicked".into(),
                            after_ms: None,
                        })
                    })
                }
                None => Err(SendError::Permanent(format!(
                    "no {} adapter configured",
                    q.channel.name()
                ))),
            }
        };
        if done
            .send(JobDone {
                to: Some(job.to),
                message: job.message,
                result,
                tried,
            })
            .is_err()
        {
            return;
        }
    }
}
