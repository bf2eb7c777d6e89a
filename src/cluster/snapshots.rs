//! Per-partition snapshots, for gateways that fold only the partitions they own
//! (`cluster.fold = "owned"`): the holder of a partition keeps its image
//! ([`milepost_core::store::image::PartImage`]) in the fleet's JetStream object store
//! (bucket `PREFIX-snap`, object `p<P>`), and a gateway taking the partition over installs the
//! newest image and reads the partition's subject only from the record after it. A takeover
//! then costs the image plus at most `cluster.partition_snapshot_s` of the partition's records,
//! however long the stream.
//!
//! The applier encodes an image of each partition it folded records of, every
//! `cluster.partition_snapshot_s` ([`PartSnapshot`]); the uploader task here writes those of
//! partitions this gateway holds. The object is framed:
//!
//! ```text
//! "MPPART01" | partition: u32 LE | partitions: u32 LE | lsn_next: u64 LE | stream: u64 LE
//!            | crc32: u32 LE | payload
//! ```
//!
//! where `stream` is the time the stream was made (UTC ms): an image of a stream since deleted
//! and made again is not this one's.
//!
//! ```text
//! ```
//!
//! An image is the deterministic fold of the partition's records before `lsn_next`, so any
//! holder's image is as good as another's; an image that is missing, damaged or of another
//! partition layout is skipped (logged and counted), and the partition is read from the start
//! of the stream as without snapshots.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use async_nats::jetstream;
use milepost_core::store::image::PartImage;
use tokio::io::AsyncReadExt;

use crate::cluster::lease::Owned;
use crate::cluster::nats::Cluster;
use crate::cluster::takeover::TakeoverStats;

const MAGIC: &[u8; 8] = b"MPPART01";
const HEADER: usize = 8 + 4 + 4 + 8 + 8 + 4;

/// A partition's encoded image, from the applier to the uploader.
#[derive(Debug)]
pub struct PartSnapshot {
    /// The partition.
    pub partition: u32,
    /// First record of the partition not in the image.
    pub lsn_next: u64,
    /// The encoded [`milepost_core::store::image::PartImageRef`].
    pub payload: Vec<u8>,
}

/// Where partition `p`'s images belong in `cluster`.
fn layout(cluster: &Cluster, p: u32) -> Layout {
    Layout {
        partition: p,
        partitions: cluster.cfg.partitions,
        stream: cluster.stream_made_ms,
    }
}

/// The object name of partition `p`'s image.
fn object(p: u32) -> String {
    format!("p{p}")
}

/// Where an image belongs: its partition, of how many, of which stream (made when, UTC ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The partition.
    pub partition: u32,
    /// Of how many.
    pub partitions: u32,
    /// When the stream was made, UTC ms.
    pub stream: u64,
}

/// Frames an image for the object store.
pub fn frame(at: Layout, lsn_next: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + payload.len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&at.partition.to_le_bytes());
    v.extend_from_slice(&at.partitions.to_le_bytes());
    v.extend_from_slice(&lsn_next.to_le_bytes());
    v.extend_from_slice(&at.stream.to_le_bytes());
    v.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// Checks a framed image of `at` and decodes it.
pub fn unframe(bytes: &[u8], at: Layout) -> Result<PartImage, String> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err("not a partition image (bad magic or too short)".into());
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let (p, n, stream) = (u32_at(8), u32_at(12), u64_at(24));
    if (p, n) != (at.partition, at.partitions) {
        return Err(format!(
            "the image is of partition {p} of {n}, not {} of {}",
            at.partition, at.partitions
        ));
    }
    if stream != at.stream {
        return Err(format!(
            "the image is of a stream made at {stream} ms, not of this one (made at {} ms)",
            at.stream
        ));
    }
    let payload = &bytes[HEADER..];
    if crc32fast::hash(payload) != u32_at(32) {
        return Err("the image's checksum does not match".into());
    }
    let image: PartImage = milepost_proto::codec::decode_trusted(payload)
        .map_err(|e| format!("the image does not decode: {e}"))?;
    if (image.partition, image.partitions, image.lsn_next) != (p, n, u64_at(16)) {
        return Err("the image's header and contents disagree".into());
    }
    Ok(image)
}

/// The newest image of partition `p`, if there is a usable one (else the partition is read from
/// the start of the stream; an unusable one is logged and counted).
pub async fn load(cluster: &Cluster, p: u32, stats: &TakeoverStats) -> Option<PartImage> {
    let store = cluster.snaps.as_ref()?;
    let at = layout(cluster, p);
    let started = std::time::Instant::now();
    let bytes = match store.get(object(p)).await {
        Ok(mut obj) => {
            let mut v = Vec::new();
            match obj.read_to_end(&mut v).await {
                Ok(_) => v,
                Err(e) => {
                    stats.load_failures.fetch_add(1, Relaxed);
                    tracing::warn!(partition = p, error = %e, "partition image unreadable");
                    return None;
                }
            }
        }
        Err(e) if e.kind() == jetstream::object_store::GetErrorKind::NotFound => return None,
        Err(e) => {
            stats.load_failures.fetch_add(1, Relaxed);
            tracing::warn!(partition = p, error = %e, "partition image not fetched");
            return None;
        }
    };
    let size = bytes.len();
    let decoded = tokio::task::spawn_blocking(move || unframe(&bytes, at)).await;
    match decoded {
        Ok(Ok(image)) => {
            tracing::info!(
                partition = p,
                bytes = size,
                ms = started.elapsed().as_millis() as u64,
                "partition image fetched and decoded"
            );
            Some(image)
        }
        Ok(Err(e)) => {
            stats.load_failures.fetch_add(1, Relaxed);
            tracing::warn!(partition = p, error = %e, "partition image not usable");
            None
        }
        Err(e) => {
            stats.load_failures.fetch_add(1, Relaxed);
            tracing::warn!(partition = p, error = %e, "partition image decoding failed");
            None
        }
    }
}

/// Writes the images the applier hands over, of the partitions this gateway holds; ends when
/// the applier drops its sender.
pub fn spawn_uploader(
    cluster: Cluster,
    owned: Arc<Owned>,
    mut images: tokio::sync::mpsc::Receiver<PartSnapshot>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(store) = cluster.snaps.clone() else {
            return;
        };
        let stats = &owned.takeover;
        while let Some(s) = images.recv().await {
            if !(owned.owns(s.partition) && owned.holds(s.partition)) {
                continue;
            }
            let framed = frame(layout(&cluster, s.partition), s.lsn_next, &s.payload);
            let size = framed.len() as u64;
            match store
                .put(object(s.partition).as_str(), &mut framed.as_slice())
                .await
            {
                Ok(_) => {
                    stats.written.fetch_add(1, Relaxed);
                    stats.written_bytes.store(size, Relaxed);
                    tracing::debug!(
                        partition = s.partition,
                        bytes = size,
                        "partition image written"
                    );
                }
                Err(e) => {
                    stats.write_failures.fetch_add(1, Relaxed);
                    tracing::warn!(partition = s.partition, error = %e, "partition image not written");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_image_is_checked_before_it_is_decoded() {
        let mut fleet = milepost_core::fold::Fleet::new(Default::default(), &Default::default());
        let payload = milepost_proto::encode(&fleet.parts().part_image(3, 8, 42, 7)).unwrap();
        let at = Layout {
            partition: 3,
            partitions: 8,
            stream: 1_765_000_000_000,
        };
        let framed = frame(at, 42, &payload);
        let image = unframe(&framed, at).unwrap();
        assert_eq!(
            (image.partition, image.lsn_next, image.taken_ms),
            (3, 42, 7)
        );
        // Another partition, another layout, another stream, a flipped bit, a short or foreign
        // object.
        let other = |f: fn(&mut Layout)| {
            let mut l = at;
            f(&mut l);
            unframe(&framed, l).unwrap_err()
        };
        assert!(other(|l| l.partition = 2).contains("partition 3 of 8"));
        assert!(other(|l| l.partitions = 16).contains("not 3 of 16"));
        assert!(
            other(|l| l.stream += 1).contains("another stream")
                || other(|l| l.stream += 1).contains("a stream made")
        );
        let mut bad = framed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(unframe(&bad, at).unwrap_err().contains("checksum"));
        assert!(unframe(&framed[..10], at).is_err());
        assert!(unframe(b"MPSNAP03 something else entirely", at).is_err());
        // A header that lies about the position is caught by the contents.
        let mut lying = framed;
        lying[16] ^= 1;
        assert!(unframe(&lying, at).unwrap_err().contains("disagree"));
    }
}
