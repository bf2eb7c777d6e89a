//! The group-commit writer: one OS thread owns the active segment file. Sessions hand it
//! records and await a completion; the thread takes every request waiting in its queue (up to a
//! byte budget), writes them with one `write`, makes them durable with one `fdatasync`, and only
//! then completes them (or, when the records go on to a [`CommitSink`], has its consumer complete
//! them once it has folded them). One fsync (~140 us here) is thus shared by every fix that
//! arrived while the previous one ran, which is what lets durable acks keep up with thousands
//! of phones.
//!
//! A std thread and not a tokio task, because `fdatasync` blocks. The request queue is bounded:
//! when the disk falls behind, sessions wait, and QUIC flow control pushes back on the phones.
//! After a write or fsync failure the writer fails every pending and future request: nothing
//! that may not be on disk is ever acked.
//!
//! - [`queue`]: the submitting side: [`WriterHandle`], permits and completions, and the
//!   [`RequestQueue`] a log kept elsewhere (the cluster's publisher) drains instead.
//! - [`thread`]: [`LogWriter`], the thread that takes the queue and commits groups to the active
//!   segment.
//! - [`commit`]: what a commit hands on: [`Committed`] records in a [`CommitGroup`] with the
//!   [`Answers`] of their submitters, the [`CommitSink`] and the [`RefusedHook`].

pub mod commit;
pub mod queue;
pub mod thread;

pub use commit::{Answers, CommitGroup, CommitSink, Committed, RefusedHook};
pub use queue::{Answer, Completion, LogPermit, Queued, RequestQueue, WriterHandle};
pub use thread::LogWriter;
