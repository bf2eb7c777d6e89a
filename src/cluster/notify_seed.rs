//! What a gateway joining a cluster brings to, or takes from, the notification store's shared
//! state: the key opt-outs are signed with ([`shared_secret`]), the store of a gateway that ran
//! alone seeding a new cluster's journal ([`seed`]), and the opt-outs kept for good in the state
//! bucket ([`remember_opt_out`], [`import_opt_outs`]): the journal keeps its operations only
//! for the history's retention, an opt-out is kept for ever.

use std::sync::Arc;

use futures_util::StreamExt;

use crate::cluster::nats::{after_on_subject, Cluster, ClusterError};
use crate::notify::handle::Notify;
use crate::notify::journal::Op;
use crate::notify::store::StoreError;

/// Messages (or log lines, or once-keys) per round of a seed, as the outbox's rounds.
const PER_ROUND: usize = 256;

fn setup(what: &str) -> impl Fn(String) -> ClusterError + '_ {
    move |reason| ClusterError::Setup {
        what: what.to_owned(),
        reason,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The secret opt-out links and address keys are signed with, the same on every gateway: the
/// first gateway's own `notify.key` (a gateway that was alone before keeps its opt-outs), kept
/// in the state bucket; every later gateway takes it from there. True with it when it is this
/// gateway's own.
pub async fn shared_secret(
    cluster: &Cluster,
    mine: &[u8],
) -> Result<(Vec<u8>, bool), ClusterError> {
    let err = setup("notification key");
    if cluster
        .state_kv
        .create("notify-key", hex(mine).into())
        .await
        .is_ok()
    {
        return Ok((mine.to_vec(), true));
    }
    let theirs = cluster
        .state_kv
        .get("notify-key")
        .await
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("the state bucket lost its notify-key".into()))?;
    let secret = std::str::from_utf8(&theirs)
        .ok()
        .and_then(unhex)
        .ok_or_else(|| err("notify-key is not hex".into()))?;
    let own = secret == mine;
    Ok((secret, own))
}

/// Seeds a new cluster's empty journal with what this gateway's store holds (a gateway that
/// ran alone, joining a cluster on its data directory), so the gateways that join after it hold
/// its contacts, opt-outs, queue, dead letters and message logs too. Does nothing when the
/// journal has anything, this store has read it before, or the cluster's opt-out key is not
/// this gateway's (its opt-outs would match nothing). The outbox's rounds go first, where no
/// round is yet (so a gateway that already leads keeps its own); a failure part-way is an
/// error that stops the gateway's start. Returns the operations written.
pub async fn seed(
    cluster: &Cluster,
    notify: &Arc<Notify>,
    key_is_mine: bool,
) -> Result<usize, ClusterError> {
    let what = format!("seeding {}", cluster.names.notify_stream);
    let err = setup(&what);
    let n = notify.clone();
    let ops = tokio::task::spawn_blocking(move || -> Result<Vec<Op>, StoreError> {
        if n.store.journal_seq()? != 0 {
            return Ok(Vec::new());
        }
        n.store.export(PER_ROUND)
    })
    .await
    .map_err(|e| err(e.to_string()))?
    .map_err(|e| err(e.to_string()))?;
    if ops.is_empty() {
        return Ok(0);
    }
    let stream = cluster
        .js
        .get_stream_no_info(&cluster.names.notify_stream)
        .await
        .map_err(|e| err(e.to_string()))?;
    let info = stream.get_info().await.map_err(|e| err(e.to_string()))?;
    if info.state.last_sequence != 0 || !key_is_mine {
        tracing::warn!(
            "this gateway's notification store predates the cluster's journal, which is not \
             empty (or whose opt-out key is another gateway's): it follows the journal (see \
             docs/NOTIFY.md, \"Upgrading from one gateway\")"
        );
        return Ok(0);
    }
    let total = ops.len();
    let (rounds, rest): (Vec<Op>, Vec<Op>) =
        ops.into_iter().partition(|op| matches!(op, Op::Round(_)));
    let mut last = 0;
    for (i, op) in rounds.into_iter().enumerate() {
        let payload = serde_json::to_vec(&op).map_err(|e| err(e.to_string()))?;
        let subject = cluster.names.notify_subject(&op);
        let ack = cluster
            .js
            .publish_with_headers(subject, after_on_subject(last), payload.into())
            .await
            .map_err(|e| err(e.to_string()))?
            .await;
        match ack {
            Ok(a) => last = a.sequence,
            Err(e) if i == 0 => {
                tracing::warn!(error = %e, "another gateway leads already; outbox not seeded");
                return Ok(0);
            }
            Err(e) => return Err(err(e.to_string())),
        }
    }
    let mut acks = Vec::new();
    for op in rest {
        let subject = cluster.names.notify_subject(&op);
        if let Op::OptOut { key, at_ms } = &op {
            remember_opt_out(cluster, key, *at_ms).await.map_err(&err)?;
        }
        let payload = serde_json::to_vec(&op).map_err(|e| err(e.to_string()))?;
        let ack = cluster.js.publish(subject, payload.into()).await;
        acks.push(ack.map_err(|e| err(e.to_string()))?);
        if acks.len() >= 1024 {
            for a in acks.drain(..) {
                a.await.map_err(|e| err(e.to_string()))?;
            }
        }
    }
    for a in acks {
        a.await.map_err(|e| err(e.to_string()))?;
    }
    Ok(total)
}

/// Keeps an opt-out in the state bucket (`optout.HEX`), which keeps it for ever.
pub async fn remember_opt_out(cluster: &Cluster, key: &str, at_ms: i64) -> Result<(), String> {
    cluster
        .state_kv
        .put(
            format!("optout.{}", hex(key.as_bytes())),
            at_ms.to_string().into(),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Copies every opt-out of the state bucket into this gateway's store (those older than the
/// journal's retention included); the number read.
pub async fn import_opt_outs(
    cluster: &Cluster,
    notify: &Arc<Notify>,
) -> Result<usize, ClusterError> {
    let err = setup("opt-outs from the state bucket");
    let mut keys = cluster
        .state_kv
        .keys()
        .await
        .map_err(|e| err(e.to_string()))?;
    let mut found = Vec::new();
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| err(e.to_string()))?;
        let Some(key) = k
            .strip_prefix("optout.")
            .and_then(unhex)
            .and_then(|b| String::from_utf8(b).ok())
        else {
            continue;
        };
        let at_ms = match cluster.state_kv.get(&k).await {
            Ok(Some(v)) => std::str::from_utf8(&v)
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
            Ok(None) => continue,
            Err(e) => return Err(err(e.to_string())),
        };
        found.push((key, at_ms));
    }
    let n = notify.clone();
    let count = found.len();
    tokio::task::spawn_blocking(move || n.store.set_opt_outs(&found))
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(|e| err(e.to_string()))?;
    Ok(count)
}
