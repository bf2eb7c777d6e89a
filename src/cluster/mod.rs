//! Scale-out: several gateways as one fleet over NATS JetStream (`serve --cluster URL`).
//!
//! The single-box gateway folds its own log into the fleet state. A cluster keeps that shape
//! and swaps the log: every record (fix batches, route commands, outcomes, ticks) is published
//! to one JetStream stream, and a phone is acked only once JetStream has acked the write. Every
//! gateway reads the whole stream, in stream order, and folds it with the very same function a
//! single box uses ([`milepost_core::fold::Parts::apply`]). So every gateway holds the same
//! state: a recipient connected to gateway B sees the milestones of a driver connected to A,
//! with the same feed offsets on every gateway (a subscriber may resume anywhere), and a
//! dispatcher's query covers the whole depot wherever its drivers are connected.
//!
//! - Subjects: `PREFIX.fix.P` for the fix batches of the drivers of partition `P`
//!   ([`milepost_core::store::record::partition_of`]); `PREFIX.cmd` for commands; `PREFIX.tick` for
//!   ticks. A message holds the records waiting when the publisher woke, for one subject (group
//!   commit); one holding a single batch carries the `Nats-Msg-Id` `driver:first-last`. The
//!   fold drops any seq it already holds, so a resend that reached two gateways is folded once.
//! - Ownership ([`lease`]): partitions are leased to gateways through a JetStream KV bucket,
//!   spread evenly over the live gateways. What happens *once* for the whole fleet is done by
//!   the owner: ticks (stall detection) of its partitions are logged as records so every
//!   gateway folds them at the same point; the owner of partition 0 sends the webhooks (their
//!   cursor is in the KV bucket) and archives finished routes. Revocations written on one
//!   gateway reach the others through the same bucket ([`revoke`]). A dead gateway's leases expire
//!   after `cluster.lease_ttl_s` and the others take them over; its state needs no rebuilding,
//!   every gateway already holds it (a restarted gateway rebuilds from its snapshot plus the
//!   stream).
//! - QUIC ([`cid`]): connection IDs carry this gateway's QUIC-LB server id, so a load balancer
//!   routes a phone's packets to it; TLS ticket and stateless-reset keys derive from the shared
//!   secret, so a phone that lands on another gateway resumes its TLS session and a reset from
//!   any gateway is recognised.
//!
//! `docs/CLUSTER.md` tells how to deploy it.
//!
//! # Files
//! - [`nats`]: the connection: JetStream, the log's stream, the KV buckets, their names.
//! - [`seq`]: record numbers from stream sequences and back.
//! - [`publish`]: the log writer of a cluster (records to JetStream, group commit).
//! - [`consume`]: the log reader feeding the applier, in stream order.
//! - [`handover`]: partitions changing hands when gateways fold only what they own.
//! - [`forward`]: commands sent to the gateway that holds their partition (likewise).
//! - [`lease`]: partition leases (who does the once-per-fleet work).
//! - [`tick`]: the owners' ticks, logged so every gateway folds them alike.
//! - [`revoke`]: token revocations shared through the KV bucket.
//! - [`keys`]: API keys shared through the KV bucket.
//! - [`hooks`]: webhook endpoints added at run time, shared through the KV bucket.
//! - [`brands`]: carriers' brands set through the API, shared through the KV bucket.
//! - [`notify_journal`]: the notification store's journal; [`notify_apply`]: every gateway's
//!   reader of it; [`notify_seed`]: the opt-out key, seeding, opt-outs kept for good.
//! - [`cursors`]: the webhook cursors in the KV bucket.
//! - [`node`]: this gateway's default name; keys derived from the shared secret.
//! - [`cid`]: QUIC-LB connection IDs. [`config`]: the `[cluster]` section.
//!
//! The gateway (`crate::server`) starts these parts and hands each only the handles it uses
//! ([`tick::TickParts`], [`revoke::RevokeParts`], [`keys::KeyParts`],
//! [`hooks::HookParts`]); nothing here reaches
//! back into the server.

pub mod brands;
pub mod cid;
pub mod config;
pub mod consume;
pub mod cursors;
pub mod forward;
pub mod handover;
pub mod hooks;
pub mod keys;
pub mod lease;
pub mod nats;
pub mod node;
pub mod notify_apply;
pub mod notify_journal;
pub mod notify_seed;
pub mod publish;
pub mod relay;
pub mod revoke;
pub mod seq;
pub mod snapshots;
pub mod takeover;
pub mod tick;

pub use consume::start_consumer;
pub use cursors::KvCursors;
pub use nats::{Cluster, ClusterError, Names};
pub use node::{default_node, derive_key};
pub use publish::run_publisher;
pub use seq::{lsn_of, resume_seq, GROUP_BITS};
