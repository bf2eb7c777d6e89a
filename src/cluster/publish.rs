//! The cluster's log writer: takes the records sessions submit (the same
//! [`crate::store::WriterHandle`] a single box uses) and publishes them to JetStream,
//! pipelined, answering each submitter with the record's stream sequence once JetStream has
//! acked it (stored, on `cluster.replicas` servers). Answers go out in submission order, so a
//! barrier answers only after everything before it is stored.
//!
//! A publish that fails (NATS down, a timeout) is refused: its seqs are unsettled through the
//! refused hook first, so the phone keeps and resends them. If it was in fact stored (only the
//! ack was lost), the resend carries the same message id and JetStream answers with the
//! original sequence.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_nats::jetstream::message::PublishMessage;
use futures_util::stream::{FuturesOrdered, StreamExt};

use crate::cluster::Cluster;
use crate::store::writer::{Answer, Queued, RefusedHook, RequestQueue};
use crate::store::{LogError, LogRecord};

/// Publishes in flight at most (JetStream acks pipeline; more only queues in NATS).
const MAX_IN_FLIGHT: usize = 8192;

type Pending = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What became of one queued request.
enum Outcome {
    Stored(u64, Answer),
    Failed(Arc<LogRecord>, Answer, String),
    Barrier(Answer),
}

/// Runs until every handle is gone or a shutdown is asked for, then answers what is in flight.
pub async fn run_publisher(cluster: Cluster, mut queue: RequestQueue, on_refused: RefusedHook) {
    let partitions = cluster.cfg.partitions;
    let started = chrono::Utc::now().timestamp_millis();
    let node = format!("{}@{started}", cluster.node);
    let mut n = 0u64;
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut last_seq = 0u64;
    let mut closed = false;
    loop {
        tokio::select! {
            req = queue.next(), if !closed && pending.len() < MAX_IN_FLIGHT => match req {
                None => closed = true,
                Some(Queued::Barrier { done }) => {
                    pending.push_back(Box::pin(async move { Outcome::Barrier(done) }));
                }
                Some(Queued::Append { record, done }) => {
                    n += 1;
                    let (subject, id) =
                        cluster.names.subject_and_id(&record, partitions, &node, n);
                    let payload = match milepost_proto::encode(&*record) {
                        Ok(p) => p,
                        Err(e) => {
                            on_refused(&record);
                            tracing::error!(error = %e, "unencodable log record");
                            done.send(Err(LogError::Closed));
                            continue;
                        }
                    };
                    let publish = PublishMessage::build().payload(payload.into()).message_id(id);
                    match cluster.js.send_publish(subject, publish).await {
                        Ok(ack) => pending.push_back(Box::pin(async move {
                            match ack.await {
                                Ok(a) => Outcome::Stored(a.sequence, done),
                                Err(e) => Outcome::Failed(record, done, e.to_string()),
                            }
                        })),
                        Err(e) => {
                            let reason = e.to_string();
                            pending.push_back(Box::pin(async move {
                                Outcome::Failed(record, done, reason)
                            }));
                        }
                    }
                }
            },
            Some(outcome) = pending.next(), if !pending.is_empty() => match outcome {
                Outcome::Stored(seq, done) => {
                    last_seq = last_seq.max(seq);
                    done.send(Ok(seq));
                }
                Outcome::Barrier(done) => done.send(Ok(last_seq + 1)),
                Outcome::Failed(record, done, reason) => {
                    on_refused(&record);
                    done.send(Err(LogError::Closed));
                    tracing::warn!(error = %reason, "JetStream publish failed; the phone will resend");
                }
            },
            else => {
                if closed {
                    break;
                }
            }
        }
        if closed && pending.is_empty() {
            break;
        }
    }
    tracing::info!(published = n, "cluster publisher stopped");
}
