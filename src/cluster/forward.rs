//! Commands find their owner, on gateways that fold only the partitions they own
//! (`cluster.fold = "owned"`): a command about a partition not held here (a back-office call,
//! a dispatcher's edit, a driver's outcome from a phone that landed on another gateway) is
//! forwarded over NATS request/reply, and the gateway that holds it commits it and answers
//! with what its fold made of it.
//!
//! Every such gateway listens on `PREFIX-fwd`. A request is the command's log record; a
//! gateway answers only if it holds the record's partition ([`ForwardParts::holds`]), by
//! committing it locally ([`ForwardParts::commit`], which never forwards again), so the asker
//! gets the first (and only) answer. No answer within [`DEADLINE`] (the partition is changing
//! hands, or no gateway holds that route or parcel) is a retryable error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use milepost_core::fold::CommandResult;
use milepost_core::store::LogRecord;
use milepost_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cluster::nats::Cluster;

/// How long an asker waits for the owner.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// What became of a forwarded command, as the owner answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Applied.
    Applied,
    /// Refused by the owner's fold, with the reason.
    Refused(String),
    /// Not stored, with the protocol's error code and a message.
    Failed(u32, String),
}

impl Answer {
    /// The answer as a local commit's result.
    pub fn into_result(self) -> Result<CommandResult, (ErrorCode, String)> {
        match self {
            Answer::Applied => Ok(CommandResult::Applied),
            Answer::Refused(why) => Ok(CommandResult::Refused(why)),
            Answer::Failed(code, msg) => Err((
                ErrorCode::from_u32(code).unwrap_or(ErrorCode::StorageFailure),
                msg,
            )),
        }
    }

    /// A local commit's result as an answer.
    pub fn of(r: Result<CommandResult, (ErrorCode, String)>) -> Answer {
        match r {
            Ok(CommandResult::Applied) => Answer::Applied,
            Ok(CommandResult::Refused(why)) => Answer::Refused(why),
            Err((code, msg)) => Answer::Failed(code.as_u32(), msg),
        }
    }
}

type Commit = Arc<dyn Fn(LogRecord) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// What the responder uses of the gateway (the server builds it).
pub struct ForwardParts {
    /// The cluster.
    pub cluster: Cluster,
    /// True when this gateway holds the record's partition now.
    pub holds: Arc<dyn Fn(&LogRecord) -> bool + Send + Sync>,
    /// Commits a record here, without forwarding it again.
    pub commit: Commit,
}

/// Outside the stream's subjects (`PREFIX.>`): a request there would be stored, and answered
/// by JetStream.
fn subject(cluster: &Cluster) -> String {
    format!("{}-fwd", cluster.names.prefix)
}

/// Sends `record` to the gateway that holds its partition and returns its answer.
pub async fn ask(
    cluster: &Cluster,
    record: &LogRecord,
    what: &str,
) -> Result<CommandResult, (ErrorCode, String)> {
    let payload = milepost_proto::encode(record).map_err(|e| {
        (
            ErrorCode::StorageFailure,
            format!("unencodable command: {e}"),
        )
    })?;
    let client = cluster.js.client();
    let asked = client.request(subject(cluster), payload.into());
    let retry = || {
        (
            ErrorCode::ServerBusy,
            format!(
                "no gateway of the cluster holds {what} now (its partition may be changing \
                 hands, or it does not exist): retry in a few seconds"
            ),
        )
    };
    match tokio::time::timeout(DEADLINE, asked).await {
        Ok(Ok(reply)) => match serde_json::from_slice::<Answer>(&reply.payload) {
            Ok(a) => a.into_result(),
            Err(e) => Err((
                ErrorCode::StorageFailure,
                format!("bad answer from the owner: {e}"),
            )),
        },
        Ok(Err(_)) | Err(_) => Err(retry()),
    }
}

/// Answers the forwarded commands this gateway holds, until `stop`.
pub async fn run(parts: ForwardParts, stop: watch::Receiver<bool>) {
    let client = parts.cluster.js.client();
    let subject = subject(&parts.cluster);
    each_request(
        &parts.cluster,
        subject,
        "forwarded commands",
        stop,
        |msg, reply| {
            let record = match milepost_proto::codec::decode::<LogRecord>(&msg.payload) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable forwarded command ignored");
                    return;
                }
            };
            if !(parts.holds)(&record) {
                return;
            }
            let (commit, client) = (parts.commit.clone(), client.clone());
            tokio::spawn(async move {
                let answer = commit(record).await;
                match serde_json::to_vec(&answer) {
                    Ok(body) => {
                        if let Err(e) = client.publish(reply, body.into()).await {
                            tracing::warn!(error = %e, "answer to a forwarded command lost");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "unencodable answer"),
                }
            });
        },
    )
    .await;
}

/// Takes the requests on `subject` (`what`, for the log) until `stop`, handing each with its
/// reply subject to `each` (requests without one are dropped).
pub async fn each_request(
    cluster: &Cluster,
    subject: String,
    what: &str,
    mut stop: watch::Receiver<bool>,
    mut each: impl FnMut(async_nats::Message, async_nats::Subject),
) {
    let mut sub = match cluster.js.client().subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot take {what}");
            return;
        }
    };
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = stop.changed() => return,
        };
        let Some(msg) = msg else { return };
        if let Some(reply) = msg.reply.clone() {
            each(msg, reply);
        }
    }
}
