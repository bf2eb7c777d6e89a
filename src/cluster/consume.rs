//! Reading the cluster's log: an ordered JetStream consumer over the whole stream, from the
//! sequence this gateway's state has reached, handing records to the applier in stream order
//! (the same queue a single box's log writer feeds). Every gateway reads every record, so every
//! gateway folds the same state. (With `cluster.fold = "owned"` a gateway reads only the
//! partitions it owns instead: [`crate::cluster::handover`].)
//!
//! It runs on a thread of its own with a small runtime: handing a group to the applier blocks
//! when the applier lags (backpressure), and that must not stall the gateway's async workers.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::cluster::nats::Cluster;
use crate::cluster::seq::{lsn_of, resume_seq};
use crate::store::writer::CommitSink;
use crate::store::Committed;
use milepost_core::store::LogRecord;

/// Records handed to the applier at once at most.
const GROUP: usize = 512;

/// Starts reading the stream after record number `lsn_next` (see [`crate::cluster::seq::lsn_of`])
/// into `sink`, on a thread of its own. The thread
/// stops (closing `sink`, which stops the applier) when `stop` turns true.
pub fn start_consumer(
    cluster: Cluster,
    lsn_next: u64,
    sink: CommitSink,
    stop: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let from = resume_seq(lsn_next);
    std::thread::Builder::new()
        .name("milepost-consume".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cluster consumer runtime");
                    return;
                }
            };
            rt.block_on(consume(cluster, from, sink, stop));
        })
}

async fn consume(cluster: Cluster, from: u64, sink: CommitSink, mut stop: watch::Receiver<bool>) {
    let mut next = from.max(1);
    // Reconnects from where it got to whenever the consumer fails (NATS restarts, the ordered
    // consumer gives up after missed heartbeats...).
    while !*stop.borrow() {
        match read(&cluster, &mut next, &sink, &mut stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, next, "cluster consumer failed; reopening");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Reads until stopped (`Ok`) or a failure (`Err`), advancing `next` past every record handed
/// over.
async fn read(
    cluster: &Cluster,
    next: &mut u64,
    sink: &CommitSink,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let stream = cluster
        .js
        .get_stream(&cluster.names.stream)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: *next,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut group = Vec::with_capacity(GROUP);
    loop {
        let first = tokio::select! {
            m = messages.next() => m,
            _ = stop.changed() => return Ok(()),
        };
        let Some(first) = first else {
            return Err("the consumer ended".into());
        };
        let first = first.map_err(|e| e.to_string())?;
        // A failure part-way through still hands over what was read before it: `next` has
        // moved past those messages, so dropping them would lose them from the fold.
        let (_, failed) = take_ready(first, &mut messages, next, &mut group, GROUP);
        if !group.is_empty() {
            let batch = std::mem::replace(&mut group, Vec::with_capacity(GROUP));
            // Blocks while the applier is behind: that is the backpressure we want here.
            if sink.send(batch.into()).is_err() {
                return Ok(());
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
}

/// Decodes the message at stream sequence `seq` into `group`. Every gateway skips an
/// undecodable message the same way, so the fold stays equal; a tick of no partition stands in
/// for it, so that the applier's position (which acks and readiness wait on) still moves past
/// it.
pub(crate) fn decode_into(seq: u64, payload: &[u8], group: &mut Vec<Committed>) {
    match milepost_proto::codec::decode_trusted::<Vec<LogRecord>>(payload) {
        Ok(records) => group.extend(
            records
                .into_iter()
                .enumerate()
                .map(|(i, record)| Committed {
                    lsn: lsn_of(seq, i),
                    record: Arc::new(record),
                }),
        ),
        Err(e) => {
            tracing::error!(seq, error = %e, "undecodable message in the stream");
            group.push(Committed {
                lsn: lsn_of(seq, 0),
                record: Arc::new(LogRecord::Tick {
                    owned: Vec::new(),
                    partitions: 1,
                    now_ms: 0,
                }),
            });
        }
    }
}

/// Takes `first`, then every message ready now, into `group` until it holds `max` records,
/// skipping messages below stream sequence `next` (a redelivery) and moving `next` past those
/// taken. Returns the sequence of the last message taken (0: none) and the failure that
/// stopped it, if any; what was read before a failure is in `group` all the same.
pub(crate) fn take_ready<S, E>(
    first: async_nats::jetstream::Message,
    messages: &mut S,
    next: &mut u64,
    group: &mut Vec<Committed>,
    max: usize,
) -> (u64, Option<String>)
where
    S: futures_util::Stream<Item = Result<async_nats::jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut last = 0;
    let mut msg = Some(first);
    while let Some(m) = msg.take() {
        match m.info() {
            Ok(info) if info.stream_sequence >= *next => {
                let seq = info.stream_sequence;
                *next = seq + 1;
                last = seq;
                decode_into(seq, &m.payload, group);
            }
            Ok(_) => {}
            Err(e) => return (last, Some(e.to_string())),
        }
        if group.len() >= max {
            break;
        }
        msg = match ready(messages) {
            Ok(m) => m,
            Err(e) => return (last, Some(e)),
        };
    }
    (last, None)
}

/// The consumer's next message if one is ready now (`Ok(None)`: none is); an error when the
/// consumer failed or ended.
pub(crate) fn ready<S, E>(
    messages: &mut S,
) -> Result<Option<async_nats::jetstream::Message>, String>
where
    S: futures_util::Stream<Item = Result<async_nats::jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    match messages.next().now_or_never() {
        Some(Some(Ok(m))) => Ok(Some(m)),
        Some(Some(Err(e))) => Err(e.to_string()),
        Some(None) => Err("the consumer ended".into()),
        None => Ok(None),
    }
}
