//! Starting the notification threads: the outbox ([`crate::notify::outbox`]) and the workers
//! that talk to providers, one job at a time each.

use std::sync::mpsc::{sync_channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::notify::adapters::provider::{Envelope, SendError};
use crate::notify::adapters::set::Adapters;
use crate::notify::compose::Composer;
use crate::notify::handle::{Job, JobDone, Notify};
use crate::notify::outbox::Outbox;
use crate::state::lock;

/// Starts the outbox thread and `composer.cfg.workers` workers.
pub fn start(notify: &Arc<Notify>, composer: Composer, adapters: Adapters) -> Result<(), String> {
    let workers = composer.cfg.workers;
    let (jobs_tx, jobs_rx) = sync_channel::<Job>(workers * 4);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<JobDone>();
    let outbox = Outbox::new(notify.clone(), composer, jobs_tx, done_rx)?;
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let adapters = Arc::new(adapters);
    let mut threads = lock(&notify.threads);
    for _ in 0..workers {
        let (rx, tx, ad) = (jobs_rx.clone(), done_tx.clone(), adapters.clone());
        threads.push(
            std::thread::Builder::new()
                .name("milepost-notify-worker".into())
                .spawn(move || work(&rx, &tx, &ad))
                .map_err(|e| e.to_string())?,
        );
    }
    threads.push(
        std::thread::Builder::new()
            .name("milepost-notify".into())
            .spawn(move || outbox.run())
            .map_err(|e| e.to_string())?,
    );
    Ok(())
}

/// A worker: takes jobs until the outbox hangs up.
fn work(jobs: &Mutex<Receiver<Job>>, done: &Sender<JobDone>, adapters: &Adapters) {
    loop {
        let job = match lock(jobs).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let q = &job.message;
        let result = match adapters.get(q.channel) {
            Some(a) => a.send(&Envelope {
                id: q.id,
                to: &job.to,
                name: job.name.as_deref(),
                rendered: &q.rendered,
                unsubscribe: q.unsubscribe.as_deref(),
            }),
            None => Err(SendError::Permanent(format!(
                "no {} adapter configured",
                q.channel.name()
            ))),
        };
        if done
            .send(JobDone {
                to: Some(job.to),
                message: job.message,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}
