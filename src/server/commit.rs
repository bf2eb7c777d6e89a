//! The one way a command becomes state: its record appended to the log, then the applier's
//! answer once folded. The QUIC commands, the tracking page and the HTTP API all come through
//! here, so a command is the same log record whichever way it came.

use milepost_core::fold::CommandResult;
use milepost_core::store::LogRecord;
use milepost_proto::ErrorCode;
use std::sync::Arc;

use crate::server::shared::Shared;
use crate::store::LogError;

/// Appends a command record to the log and waits until the applier has folded it: what the
/// core made of it, or why it was not stored. The QUIC commands and the HTTP API both go
/// through here, so a command is the same log record whichever way it came.
///
/// On a gateway that folds only the partitions it owns, a command about a partition held
/// elsewhere is forwarded to the gateway that holds it ([`crate::cluster::forward`]), whose
/// answer this returns.
pub async fn commit(
    shared: &Shared,
    record: LogRecord,
) -> Result<CommandResult, (ErrorCode, String)> {
    let record = Arc::new(record);
    match commit_here(shared, record.clone()).await {
        Err(Refusal::NotOwned(what)) => match &shared.cluster {
            Some(c) => crate::cluster::forward::ask(c, &record, &what).await,
            None => Err((ErrorCode::NotFound, format!("{what} is not held here"))),
        },
        Err(Refusal::Failed(code, msg)) => Err((code, msg)),
        Ok(r) => Ok(r),
    }
}

/// Why [`commit_here`] did not commit.
pub enum Refusal {
    /// The record's partition is held by another gateway (or by none now).
    NotOwned(String),
    /// Not stored.
    Failed(ErrorCode, String),
}

/// Like [`commit`], but never forwards: what a gateway does with a command forwarded to it.
pub async fn commit_here(
    shared: &Shared,
    record: Arc<LogRecord>,
) -> Result<CommandResult, Refusal> {
    let lsn = match shared.log.append(record).await {
        Ok(lsn) => lsn,
        Err(LogError::DiskFull) => {
            return Err(Refusal::Failed(
                ErrorCode::DiskFull,
                "disk full: retry later".into(),
            ))
        }
        Err(LogError::NotOwned(what)) => return Err(Refusal::NotOwned(what)),
        // Not forwarded: it is stored, and a resend would apply it twice.
        Err(LogError::InDoubt) => {
            return Err(Refusal::Failed(
                ErrorCode::ServerBusy,
                "stored, but its depot changed gateway before the result was known: check \
                 before resending"
                    .into(),
            ))
        }
        Err(_) => {
            return Err(Refusal::Failed(
                ErrorCode::StorageFailure,
                "not stored".into(),
            ))
        }
    };
    // `None`: a record that answers nothing (or whose answer was already dropped): applied.
    Ok(shared
        .applied
        .result(lsn)
        .await
        .unwrap_or(CommandResult::Applied))
}
