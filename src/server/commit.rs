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
pub async fn commit(
    shared: &Shared,
    record: LogRecord,
) -> Result<CommandResult, (ErrorCode, String)> {
    let lsn = match shared.log.append(Arc::new(record)).await {
        Ok(lsn) => lsn,
        Err(LogError::DiskFull) => {
            return Err((ErrorCode::DiskFull, "disk full: retry later".into()))
        }
        Err(_) => return Err((ErrorCode::StorageFailure, "not stored".into())),
    };
    // `None`: a record that answers nothing (or whose answer was already dropped): applied.
    Ok(shared
        .applied
        .result(lsn)
        .await
        .unwrap_or(CommandResult::Applied))
}
