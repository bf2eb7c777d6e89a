//! Snapshots of the fleet state, so that a restart replays only the log tail.
//!
//! A snapshot is the fold of every log record before `lsn_next`: the durable dedupe ledger,
//! the live positions and the fleet core (routes, stop progress, learned ETA state). It is taken
//! by the applier, which folds committed records in log order, so it is consistent by
//! construction: no pause of ingestion is needed. File format, in `DATA_DIR/snapshots/`:
//!
//! ```text
//! "MPSNAP01" | len: u64 LE | crc32: u32 LE | payload (codec encoding of the snapshot)
//! ```
//!
//! written to a temporary file, fsynced, renamed to `<lsn_next, 20 digits>.snap`, and the
//! directory fsynced. Recovery takes the newest snapshot whose CRC checks (an older one if the
//! newest is damaged), then replays records from `lsn_next` on.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub use milepost_core::store::image::{PositionEntry, Snapshot, SnapshotRef};

use crate::store::log::LogError;

/// The file's magic: `MPSNAP03` holds the snapshot image followed by the core's service book,
/// its ETA calibration and its analytics tally. Older files are still read: `MPSNAP02` (no
/// tally: the live routes' analytics start from there) and `MPSNAP01` (only the image).
const MAGIC: &[u8; 8] = b"MPSNAP03";
const MAGIC_V2: &[u8; 8] = b"MPSNAP02";
const MAGIC_V1: &[u8; 8] = b"MPSNAP01";

/// Snapshots kept on disk (the newest ones).
pub const KEEP: usize = 2;

/// Encodes a snapshot (the part that needs the state; [`persist`] is the part that waits on
/// the disk). `dir` only names the error.
pub fn encode(dir: &Path, snap: &SnapshotRef<'_>) -> Result<Vec<u8>, LogError> {
    let none = milepost_core::fleet::engine::ServiceBook::default();
    let service = snap.service.unwrap_or(&none);
    let uncalibrated = milepost_core::fleet::calibrate::Calibration::default();
    let calibration = snap.calibration.unwrap_or(&uncalibrated);
    let tally = snap.tally.as_deref().unwrap_or_default();
    milepost_proto::encode(&(snap, service, calibration, tally)).map_err(|e| LogError::Corrupt {
        path: dir.to_owned(),
        offset: 0,
        what: format!("snapshot does not encode: {e}"),
    })
}

/// Writes an [`encode`]d snapshot taken at `lsn_next` durably into `dir` and removes all but
/// the newest [`KEEP`]. Returns its path and size.
pub fn persist(dir: &Path, lsn_next: u64, payload: &[u8]) -> Result<(PathBuf, u64), LogError> {
    std::fs::create_dir_all(dir).map_err(LogError::io(dir))?;
    let final_path = dir.join(format!("{lsn_next:020}.snap"));
    let tmp = dir.join(format!("{lsn_next:020}.snap.tmp"));
    let mut f = File::create(&tmp).map_err(LogError::io(&tmp))?;
    let mut header = Vec::with_capacity(20);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f.write_all(&header).map_err(LogError::io(&tmp))?;
    f.write_all(payload).map_err(LogError::io(&tmp))?;
    f.sync_all().map_err(LogError::io(&tmp))?;
    std::fs::rename(&tmp, &final_path).map_err(LogError::io(&final_path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io(dir))?;
    for (_, old) in list(dir)?.into_iter().rev().skip(KEEP) {
        let _ = std::fs::remove_file(old);
    }
    Ok((final_path, (header.len() + payload.len()) as u64))
}

/// The snapshots in `dir` as (lsn_next, path), oldest first.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut v = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(v);
    };
    for e in entries {
        let path = e.map_err(LogError::io(dir))?.path();
        let lsn = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".snap"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(lsn) = lsn {
            v.push((lsn, path));
        }
    }
    v.sort();
    Ok(v)
}

/// Reads one snapshot file, checking its magic and CRC.
pub fn read(path: &Path) -> Result<Snapshot, LogError> {
    let corrupt = |what: &str| LogError::Corrupt {
        path: path.to_owned(),
        offset: 0,
        what: what.into(),
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(LogError::io(path))?;
    let magic = &bytes[..8.min(bytes.len())];
    if bytes.len() < 20 || ![MAGIC, MAGIC_V2, MAGIC_V1].iter().any(|m| &m[..] == magic) {
        return Err(corrupt("not a snapshot"));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| corrupt("header"))?) as usize;
    let crc = u32::from_le_bytes(bytes[16..20].try_into().map_err(|_| corrupt("header"))?);
    let payload = bytes
        .get(20..20 + len)
        .ok_or_else(|| corrupt("truncated"))?;
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("CRC mismatch"));
    }
    let undecodable = |e: milepost_proto::CodecError| corrupt(&format!("undecodable: {e}"));
    if &bytes[..8] == MAGIC_V1 {
        return milepost_proto::codec::decode_trusted(payload).map_err(undecodable);
    }
    if &bytes[..8] == MAGIC_V2 {
        let (mut snap, service, calibration): (Snapshot, _, _) =
            milepost_proto::codec::decode_trusted(payload).map_err(undecodable)?;
        snap.service = service;
        snap.calibration = calibration;
        return Ok(snap);
    }
    let (mut snap, service, calibration, tally): (Snapshot, _, _, _) =
        milepost_proto::codec::decode_trusted(payload).map_err(undecodable)?;
    snap.service = service;
    snap.calibration = calibration;
    snap.tally = tally;
    Ok(snap)
}

/// The newest readable snapshot in `dir`, skipping damaged ones (with a warning).
pub fn newest(dir: &Path) -> Result<Option<Snapshot>, LogError> {
    for (_, path) in list(dir)?.into_iter().rev() {
        match read(&path) {
            Ok(s) => return Ok(Some(s)),
            Err(e) => tracing::warn!(error = %e, "skipping a damaged snapshot"),
        }
    }
    Ok(None)
}
