//! A proof-file upload stream (PROTOCOL.md section 6.11): a new bidirectional stream opens
//! with an `Upload` header, the file's raw bytes follow up to the stream's end; the gateway
//! checks the size, the digest and the role, stores the file content-addressed
//! ([`crate::proofs::ProofStore`]) and answers `Done` or one `Error` frame, then finishes its
//! side. Nothing is stored unless every check passed.

use milepost_proto::{ErrorCode, ErrorFrame, ServerMsg, Upload};

use crate::auth::Role;
use crate::proofs::{valid_name, ProofError};
use crate::server::session::peer::Peer;
use crate::server::shared::Shared;
use crate::wire::write_msg;

/// A refusal: the code and the words for the client's log.
type Refusal = (ErrorCode, String);

/// Serves one upload stream to its answer.
pub(super) async fn serve_upload(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: &Peer,
    shared: &Shared,
    up: Upload,
) {
    let msg = match receive(&mut recv, peer, shared, &up).await {
        Ok(created) => {
            tracing::info!(
                subject = %peer.claims.sub,
                sha256 = %&up.sha256[..12],
                bytes = up.size,
                created,
                "proof file uploaded"
            );
            ServerMsg::Done { id: up.id }
        }
        Err((code, message)) => {
            // Whatever the client still sends is not wanted.
            let _ = recv.stop(quinn::VarInt::from_u32(code.as_u32()));
            ServerMsg::Error(ErrorFrame { code, message })
        }
    };
    if write_msg(&mut send, &msg).await.is_ok() {
        let _ = send.finish();
    }
}

/// Reads, checks and stores the file; true if it was new.
async fn receive(
    recv: &mut quinn::RecvStream,
    peer: &Peer,
    shared: &Shared,
    up: &Upload,
) -> Result<bool, Refusal> {
    let refused = |m: String| (ErrorCode::UploadRefused, m);
    if !matches!(peer.claims.role, Role::Driver | Role::Dispatcher) {
        return Err((
            ErrorCode::WrongRole,
            "only drivers and dispatchers upload proof files".into(),
        ));
    }
    let store = &shared.proofs;
    if !valid_name(&up.sha256) {
        return Err(refused(ProofError::BadName.to_string()));
    }
    let limit = store.max_bytes() as u64;
    if up.size == 0 || up.size > limit {
        return Err(refused(format!("size must be 1 to {limit} bytes")));
    }
    // One upload per connection at a time, and one of the gateway's places (bounded memory:
    // at most `max_concurrent_uploads` files held at once); the wait for a place counts
    // against the upload's time.
    let timeout = store.upload_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let too_slow = || refused(format!("not finished within {} s", timeout.as_secs()));
    // A second upload on the same connection is refused at once rather than queued: its
    // unread bytes would fill the connection's receive window and stall the first upload
    // and the phone's fixes with it.
    let Ok(_mine) = peer.upload.try_lock() else {
        return Err(refused(
            "one upload at a time per connection: send the next when this one is answered".into(),
        ));
    };
    let Ok(Some(_slot)) = tokio::time::timeout_at(deadline, store.upload_slot()).await else {
        return Err(too_slow());
    };
    // Read in order into one buffer of the announced size (out-of-order reads would keep
    // every received packet's buffer alive), then make sure nothing follows.
    let want = up.size as usize;
    let mut bytes = vec![0u8; want];
    let read = async {
        recv.read_exact(&mut bytes).await?;
        let mut more = [0u8; 1];
        recv.read(&mut more)
            .await
            .map_err(quinn::ReadExactError::ReadError)
    };
    match tokio::time::timeout_at(deadline, read).await {
        Err(_) => return Err(too_slow()),
        Ok(Ok(None)) => {}
        Ok(Ok(Some(_))) => return Err(refused(format!("more than the announced {want} bytes"))),
        Ok(Err(quinn::ReadExactError::FinishedEarly(n))) => {
            return Err(refused(format!("{n} bytes, {want} announced")))
        }
        Ok(Err(quinn::ReadExactError::ReadError(e))) => {
            return Err(refused(format!("the upload broke off: {e}")))
        }
    }
    let store = store.clone();
    let name = up.sha256.clone();
    let put = tokio::task::spawn_blocking(move || store.put(&name, &bytes)).await;
    match put {
        Ok(Ok(created)) => Ok(created),
        Ok(Err(ProofError::Io(e))) if e.raw_os_error() == Some(28) => {
            Err((ErrorCode::DiskFull, "disk full: not stored".into()))
        }
        Ok(Err(ProofError::Io(e))) => Err((ErrorCode::StorageFailure, format!("not stored: {e}"))),
        Ok(Err(e)) => Err(refused(e.to_string())),
        Err(e) => Err((ErrorCode::StorageFailure, format!("not stored: {e}"))),
    }
}
