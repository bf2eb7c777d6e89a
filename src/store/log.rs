//! The on-disk log format, written by hand because it is the product's memory.
//!
//! The log is a directory of segment files named `<first record number, 20 digits>.seg`. A
//! segment is a sequence of records:
//!
//! ```text
//! +----------------+----------------+------------------------+
//! | len: u32 LE    | crc: u32 LE    | payload: len bytes     |
//! +----------------+----------------+------------------------+
//! ```
//!
//! `crc` is CRC-32 (IEEE, as in zlib) of the payload; the payload is a
//! [`LogRecord`](milepost_core::store::LogRecord) in the protocol codec. A crash can leave a torn
//! record at the end of the *last* segment (short header, short payload, or a CRC mismatch):
//! recovery cuts the file back to the last whole record, which is safe because nothing in a torn
//! record was acked. The same damage anywhere else is corruption of acked data, and recovery
//! refuses to start rather than silently drop it.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use milepost_core::store::LogRecord;

/// Bytes of a record header.
pub const HEADER_LEN: usize = 8;

/// Largest record payload accepted when reading (a larger length is damage).
pub const MAX_RECORD: usize = 16 << 20;

/// A log failure.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O error on a log file.
    #[error("log I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A damaged record that is not a torn tail.
    #[error("log corrupt in {path} at byte {offset}: {what}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Offset of the damaged record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The writer has stopped (after an earlier failure or at shutdown).
    #[error("log writer stopped")]
    Closed,
    /// The log is at its size bound or the disk is full: nothing was written.
    #[error("disk full: the log is at its size bound or the disk has no space left")]
    DiskFull,
    /// A cluster gateway that folds only the partitions it owns was given a record about a
    /// route, parcel or driver it does not hold: nothing was written; the gateway that owns
    /// the record's partition takes it.
    #[error("this gateway does not hold {0}: send it to the gateway that owns its partition")]
    NotOwned(String),
    /// A cluster gateway stored the record, but its partition passed to another gateway
    /// before it was folded here: its result is the other gateway's, unknown here.
    #[error(
        "stored, but its partition changed hands before it was applied here: its result is unknown"
    )]
    InDoubt,
}

impl LogError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
        move |source| LogError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Appends one framed record to `buf`.
pub fn frame_record(payload: &[u8], buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The segment file name for a segment starting at record number `first`.
pub fn segment_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// Lists the segments in `dir` as (first record number, path), in order.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut segs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(LogError::io(dir))?;
    for entry in entries {
        let path = entry.map_err(LogError::io(dir))?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            segs.push((first, path));
        }
    }
    segs.sort();
    Ok(segs)
}

/// Reads every record of a log directory in order, repairing a torn tail of the last segment.
pub struct LogReader {
    dir: PathBuf,
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Records read.
    pub records: u64,
    /// Segments read.
    pub segments: usize,
    /// Bytes cut from a torn tail.
    pub torn_bytes: u64,
    /// The number the next record will get.
    pub next_lsn: u64,
}

impl LogReader {
    /// A reader of the log in `dir`.
    pub fn new(dir: &Path) -> LogReader {
        LogReader {
            dir: dir.to_owned(),
        }
    }

    /// Calls `f` with every record in log order; cuts a torn tail off the last segment.
    pub fn replay(&self, f: impl FnMut(u64, LogRecord)) -> Result<RecoveryStats, LogError> {
        self.replay_from(0, f)
    }

    /// Calls `f` with every record numbered `from` or later, in order (segments wholly before
    /// `from` are skipped); cuts a torn tail off the last segment. `stats.next_lsn` is the
    /// number the next record will get.
    pub fn replay_from(
        &self,
        from: u64,
        mut f: impl FnMut(u64, LogRecord),
    ) -> Result<RecoveryStats, LogError> {
        let segs = list_segments(&self.dir)?;
        let mut stats = RecoveryStats {
            next_lsn: from,
            ..Default::default()
        };
        if let Some((first, path)) = segs.first() {
            if *first > from {
                return Err(LogError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    what: format!("the log starts at record {first} but record {from} is needed"),
                });
            }
        }
        for (i, (first, path)) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            if !last && segs[i + 1].0 <= from {
                continue;
            }
            stats.segments += 1;
            let mut lsn = *first;
            let good_end = read_segment(path, |payload| {
                if lsn < from {
                    // Folded into the snapshot already: CRC-checked, not decoded.
                    lsn += 1;
                    return Ok(());
                }
                match milepost_proto::codec::decode_trusted::<LogRecord>(payload) {
                    Ok(rec) => {
                        f(lsn, rec);
                        lsn += 1;
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            })?;
            stats.records += lsn.saturating_sub(from.max(*first));
            stats.next_lsn = stats.next_lsn.max(lsn);
            let len = std::fs::metadata(path).map_err(LogError::io(path))?.len();
            if let Some((offset, what)) = good_end.damage {
                if !last {
                    return Err(LogError::Corrupt {
                        path: path.clone(),
                        offset,
                        what,
                    });
                }
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(LogError::io(path))?;
                file.set_len(offset).map_err(LogError::io(path))?;
                file.sync_all().map_err(LogError::io(path))?;
                stats.torn_bytes = len - offset;
                tracing::warn!(segment = %path.display(), offset, cut = len - offset, %what,
                    "cut a torn record off the log tail");
            }
            if let Some(next) = segs.get(i + 1) {
                if next.0 != lsn {
                    return Err(LogError::Corrupt {
                        path: next.1.clone(),
                        offset: 0,
                        what: format!(
                            "segment starts at record {} but {} was expected",
                            next.0, lsn
                        ),
                    });
                }
            }
        }
        Ok(stats)
    }
}

/// Where reading a segment stopped.
struct SegmentEnd {
    /// Offset and description of the first damaged record, if any.
    damage: Option<(u64, String)>,
}

/// Reads a segment's records, calling `f` with each payload; stops at the first damage.
fn read_segment(
    path: &Path,
    mut f: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<SegmentEnd, LogError> {
    let file = File::open(path).map_err(LogError::io(path))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER_LEN];
        match read_full(&mut r, &mut header).map_err(LogError::io(path))? {
            0 => return Ok(SegmentEnd { damage: None }),
            n if n < HEADER_LEN => {
                return Ok(SegmentEnd {
                    damage: Some((offset, format!("short header ({n} bytes)"))),
                })
            }
            _ => {}
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            return Ok(SegmentEnd {
                damage: Some((offset, format!("record length {len} too large"))),
            });
        }
        payload.resize(len, 0);
        let n = read_full(&mut r, &mut payload).map_err(LogError::io(path))?;
        if n < len {
            return Ok(SegmentEnd {
                damage: Some((offset, format!("short payload ({n} of {len} bytes)"))),
            });
        }
        if crc32fast::hash(&payload) != crc {
            return Ok(SegmentEnd {
                damage: Some((offset, "CRC mismatch".into())),
            });
        }
        if let Err(e) = f(&payload) {
            return Ok(SegmentEnd {
                damage: Some((offset, format!("undecodable record: {e}"))),
            });
        }
        offset += (HEADER_LEN + len) as u64;
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
