//! Round trips through the log writer and the log reader: what the writer wrote survives a torn
//! tail (cut), refuses recovery when damaged before the tail, and replays from the point a
//! snapshot covers. (Apart from `log.rs`, so the reader's file does not depend on the writer's.)

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use milepost_proto::{DriverId, Fix, Seq};

use crate::store::config::LogConfig;
use crate::store::log::{list_segments, LogError, LogReader, HEADER_LEN};
use crate::store::writer::thread::LogWriter;
use milepost_core::store::{BatchEntry, LogRecord};

fn rec(seq: u64) -> Arc<LogRecord> {
    Arc::new(LogRecord::Batch {
        driver: DriverId::from("d"),
        depot: "x".into(),
        received_ms: seq as i64,
        entries: vec![BatchEntry::Accepted {
            seq: Seq(seq),
            fix: Fix::new(1, 1, 1, 1.0),
        }],
    })
}

/// Writes `n` records through the real writer, with segments of `segment_bytes`.
fn write_log(dir: &Path, n: u64, segment_bytes: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = LogConfig {
        segment_bytes,
        ..LogConfig::default()
    };
    let w = LogWriter::start(dir, &cfg, 0, None, Default::default(), None).unwrap();
    let h = w.handle();
    rt.block_on(async {
        for i in 0..n {
            assert_eq!(h.append(rec(i + 1)).await.unwrap(), i);
        }
    });
    w.shutdown();
}

fn seqs(dir: &Path, from: u64) -> Result<Vec<u64>, LogError> {
    let mut v = Vec::new();
    LogReader::new(dir).replay_from(from, |lsn, _| v.push(lsn))?;
    Ok(v)
}

#[test]
fn every_kind_of_torn_tail_is_cut() {
    for garbage in [
        vec![7u8],
        vec![9, 0, 0, 0, 1, 2],
        vec![4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 5, 1 << 20);
        let (_, last) = list_segments(dir.path()).unwrap().pop().unwrap();
        let good_len = std::fs::metadata(&last).unwrap().len();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap()
            .write_all(&garbage)
            .unwrap();
        let mut n = 0;
        let stats = LogReader::new(dir.path()).replay(|_, _| n += 1).unwrap();
        assert_eq!(
            (n, stats.torn_bytes, stats.next_lsn),
            (5, garbage.len() as u64, 5)
        );
        assert_eq!(std::fs::metadata(&last).unwrap().len(), good_len);
        // The cut is durable: a second recovery finds nothing to cut.
        assert_eq!(
            LogReader::new(dir.path())
                .replay(|_, _| ())
                .unwrap()
                .torn_bytes,
            0
        );
    }
}

#[test]
fn damage_before_the_tail_refuses_recovery() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 30, 200);
    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() > 3);
    // Flip a payload byte in the second segment: a CRC mismatch that is not a torn tail.
    let path = &segs[1].1;
    let mut bytes = std::fs::read(path).unwrap();
    bytes[HEADER_LEN + 2] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
    assert!(matches!(seqs(dir.path(), 0), Err(LogError::Corrupt { .. })));
}

#[test]
fn replay_from_skips_what_a_snapshot_covers() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 30, 200);
    assert_eq!(seqs(dir.path(), 0).unwrap(), (0..30).collect::<Vec<_>>());
    assert_eq!(seqs(dir.path(), 17).unwrap(), (17..30).collect::<Vec<_>>());
    assert_eq!(seqs(dir.path(), 30).unwrap(), Vec::<u64>::new());
    // With the first segments gone, an older starting point is refused, a covered one works.
    let segs = list_segments(dir.path()).unwrap();
    std::fs::remove_file(&segs[0].1).unwrap();
    assert!(matches!(seqs(dir.path(), 0), Err(LogError::Corrupt { .. })));
    assert_eq!(
        seqs(dir.path(), segs[1].0).unwrap().len() as u64,
        30 - segs[1].0
    );
}
