//! The feed: everything the core emits, kept per audience with offsets, so subscribers get it
//! in order, resume after a reconnect with exactly what they missed, and never slow ingestion.
//!
//! The event store itself (every milestone of every parcel, a ring of route events per depot,
//! a ring of milestones for webhooks) is part of the snapshotted fleet state, in
//! `milepost_core::feed`; this module is the shell's side of the feeds:
//!
//! - [`hub`]: who is waiting for what: wakes exactly the subscriptions an applied group
//!   touched.
//! - [`webhook`]: the durable outbox that posts milestones to notifiers, signed and retried.
//! - [`registry`]: the webhook endpoints, configured and added at run time (the API), with
//!   their counters and newest deliveries.
//! - [`lag`]: every live subscriber's cursor, for the feed lag metrics per subscriber class.
//!
//! Subscribers read the store by cursor; the applier only appends and wakes them. A slow
//! subscriber therefore costs the applier nothing: its own QUIC stream fills, its writer waits,
//! and when it reads again it continues from its cursor (positions being coalesced to the
//! newest, read from the live position store).

pub mod hub;
pub mod lag;
pub mod registry;
pub mod webhook;

pub use hub::{FeedHub, Mailbox};
pub use lag::{FeedClass, FeedLag, LagHandle, LagTarget};
