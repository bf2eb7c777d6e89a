//! Back-office API calls find their owner, on gateways that fold only the partitions they own
//! (`cluster.fold = "owned"`): a call about a route, parcel or alert this gateway does not hold
//! (it answered 404 here) is relayed over NATS to the other gateways, and the one that holds
//! it answers with its own response, as if called directly.
//!
//! A gateway does not know which partition an id belongs to until it holds it, so the call
//! goes to every gateway on `PREFIX-api` (outside the stream's subjects) with a reply inbox.
//! Each peer runs it through its own API (which never relays again) and answers a [`Reply`]:
//! a hit (its status, headers and body), or a miss (404 there too). The asker stops at the
//! first hit, or once every live peer (the partitions' owners in the lease bucket) missed.
//! A peer that does not answer within [`DEADLINE`], or a partition that has no owner now,
//! makes the result [`Outcome::Unreachable`]: a retryable error, never a false 404.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cluster::forward::each_request;
use crate::cluster::lease::Owned;
use crate::cluster::nats::Cluster;

/// How long an asker waits for its peers.
pub const DEADLINE: Duration = Duration::from_secs(3);
/// Largest request or response body relayed (NATS carries 1 MiB per message by default).
pub const MAX_BODY: usize = 512 * 1024;

/// An HTTP call, as relayed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Call {
    /// The asking gateway (it does not answer its own call).
    pub from: String,
    /// The method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The request's headers (authorization included: the peer checks the caller itself).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// A peer's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Not found there either.
    Miss,
    /// Found: the peer's response.
    Hit {
        /// Status code.
        status: u16,
        /// Headers.
        headers: Vec<(String, Vec<u8>)>,
        /// Body.
        body: Vec<u8>,
    },
    /// Found, but the response is larger than [`MAX_BODY`]: ask that gateway directly.
    TooLarge,
    /// Cannot say now (taking a partition over, overloaded, failing): retry.
    Busy,
}

/// What the asker made of its peers' answers.
#[derive(Debug)]
pub enum Outcome {
    /// A peer holds it: its response, and its name.
    Hit {
        /// The peer.
        node: String,
        /// Status code.
        status: u16,
        /// Headers.
        headers: Vec<(String, Vec<u8>)>,
        /// Body.
        body: Vec<u8>,
    },
    /// A peer holds it but its response is too large to relay.
    TooLarge {
        /// The peer.
        node: String,
    },
    /// Every live peer answered that it does not hold it, and every partition has an owner.
    Missed,
    /// Some peer did not answer in time, or some partition has no owner now: retry.
    Unreachable {
        /// Why, for the caller.
        why: String,
    },
}

/// Outside the stream's subjects (`PREFIX.>`).
fn subject(cluster: &Cluster) -> String {
    format!("{}-api", cluster.names.prefix)
}

/// Relays `call` to the other gateways and returns what they made of it.
pub async fn ask(cluster: &Cluster, owned: &Owned, call: &Call) -> Outcome {
    let owners: Vec<Option<String>> = (0..owned.partitions())
        .map(|p| owned.owner_of(p).map(|a| a.node))
        .collect();
    let unowned = owners.iter().filter(|o| o.is_none()).count();
    let peers: BTreeSet<String> = owners
        .into_iter()
        .flatten()
        .filter(|n| *n != cluster.node)
        .collect();
    let changing = || Outcome::Unreachable {
        why: format!(
            "{unowned} partition(s) of the cluster have no gateway holding them now (changing \
             hands): retry in a few seconds"
        ),
    };
    if peers.is_empty() {
        return if unowned > 0 {
            changing()
        } else {
            Outcome::Missed
        };
    }
    let payload = match milepost_proto::encode(call) {
        Ok(p) => p,
        Err(e) => {
            return Outcome::Unreachable {
                why: format!("the call does not encode: {e}"),
            }
        }
    };
    let client = cluster.js.client();
    let inbox = client.new_inbox();
    let mut answers = match client.subscribe(inbox.clone()).await {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Unreachable {
                why: format!("NATS: {e}"),
            }
        }
    };
    if let Err(e) = client
        .publish_with_reply(subject(cluster), inbox, payload.into())
        .await
    {
        return Outcome::Unreachable {
            why: format!("NATS: {e}"),
        };
    }
    let (mut missed, mut busy) = (BTreeSet::new(), BTreeSet::new());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, answers.next()).await else {
            break;
        };
        let Ok((node, reply)) = milepost_proto::codec::decode::<(String, Reply)>(&msg.payload)
        else {
            continue;
        };
        match reply {
            Reply::Hit {
                status,
                headers,
                body,
            } => {
                return Outcome::Hit {
                    node,
                    status,
                    headers,
                    body,
                }
            }
            Reply::TooLarge => return Outcome::TooLarge { node },
            Reply::Miss => {
                missed.insert(node);
            }
            Reply::Busy => {
                busy.insert(node);
            }
        }
        if peers.iter().all(|p| missed.contains(p) || busy.contains(p)) {
            break;
        }
    }
    if !busy.is_empty() {
        return Outcome::Unreachable {
            why: format!(
                "gateway(s) {} cannot answer now (taking a partition over, or failing): retry \
                 in a few seconds",
                names(busy.iter())
            ),
        };
    }
    if !peers.is_subset(&missed) {
        return Outcome::Unreachable {
            why: format!(
                "gateway(s) {} did not answer within {} s: retry in a few seconds",
                names(peers.difference(&missed)),
                DEADLINE.as_secs()
            ),
        };
    }
    if unowned > 0 {
        return changing();
    }
    // This gateway itself may be taking over the partition that holds it.
    if !owned.taking_over().is_empty() {
        return Outcome::Unreachable {
            why: "this gateway is taking a partition over: retry in a few seconds".into(),
        };
    }
    Outcome::Missed
}

/// Gateways' names, for a message.
fn names<'a>(nodes: impl Iterator<Item = &'a String>) -> String {
    nodes.map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// Runs a relayed call through this gateway's API (without relaying it again).
pub type Handler = Arc<dyn Fn(Call) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// Answers the other gateways' relayed calls, until `stop`.
pub async fn serve(cluster: Cluster, handler: Handler, stop: watch::Receiver<bool>) {
    let client = cluster.js.client();
    let (subject, node) = (subject(&cluster), cluster.node.clone());
    each_request(
        &cluster,
        subject,
        "relayed API calls",
        stop,
        |msg, reply_to| {
            let call = match milepost_proto::codec::decode::<Call>(&msg.payload) {
                Ok(c) if c.from != node => c,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable relayed call ignored");
                    return;
                }
            };
            let (handler, client, node) = (handler.clone(), client.clone(), node.clone());
            tokio::spawn(async move {
                let reply = handler(call).await;
                match milepost_proto::encode(&(node, reply)) {
                    Ok(body) => {
                        if let Err(e) = client.publish(reply_to, body.into()).await {
                            tracing::warn!(error = %e, "answer to a relayed call lost");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "unencodable answer to a relayed call"),
                }
            });
        },
    )
    .await;
}
