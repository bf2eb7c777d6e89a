//! An ordered retry queue for writes that failed: a full disk or a failing database delays a
//! route's history but never loses it or reorders it. Every later write first retries the
//! older ones, in order; [`Backlog::len`] is read without the lock, so the fold's hot path
//! (records that write nothing) costs one atomic load. The history's use of it, and why no
//! snapshot is taken while it holds anything, is in [`crate::history`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Writes waiting to be retried, oldest first.
#[derive(Debug)]
pub struct Backlog<W> {
    queue: Mutex<VecDeque<W>>,
    waiting: AtomicUsize,
}

impl<W> Default for Backlog<W> {
    fn default() -> Self {
        Backlog {
            queue: Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
        }
    }
}

impl<W> Backlog<W> {
    /// Writes `w` (if any) with `write` after every older waiting write, in order; whatever
    /// fails waits, with everything after it.
    ///
    /// # Errors
    /// The first write that failed.
    pub fn submit<E>(
        &self,
        w: Option<W>,
        mut write: impl FnMut(&W) -> Result<(), E>,
    ) -> Result<(), E> {
        if w.is_none() && self.is_empty() {
            return Ok(());
        }
        let mut q = self.lock();
        q.extend(w);
        let mut done = Ok(());
        while let Some(next) = q.front() {
            if let Err(e) = write(next) {
                done = Err(e);
                break;
            }
            q.pop_front();
        }
        self.waiting.store(q.len(), Ordering::Relaxed);
        done
    }

    /// Writes waiting.
    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<W>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_writes_wait_and_go_out_in_order() {
        let b = Backlog::default();
        let mut written = Vec::new();
        let mut fail = true;
        let write = |w: &u32, written: &mut Vec<u32>, fail: bool| {
            if fail {
                Err("disk full")
            } else {
                written.push(*w);
                Ok(())
            }
        };
        assert!(b.submit(Some(1), |w| write(w, &mut written, fail)).is_err());
        assert!(b.submit(Some(2), |w| write(w, &mut written, fail)).is_err());
        assert_eq!(b.len(), 2);
        // Nothing new to write, nothing retried while it fails.
        assert!(b.submit(None, |w| write(w, &mut written, fail)).is_err());
        fail = false;
        assert!(b.submit(None, |w| write(w, &mut written, fail)).is_ok());
        assert!(b.submit(Some(3), |w| write(w, &mut written, fail)).is_ok());
        assert_eq!((written, b.len()), (vec![1, 2, 3], 0));
    }
}
