//! Record numbers in a cluster: record `i` of the stream message at sequence `s` is record
//! number `s << GROUP_BITS | i`, so record numbers grow in stream order as the applier,
//! snapshots and acks expect; [`resume_seq`] goes back from a record number to the stream.

/// Bits of a cluster record number that number the records within one stream message: record
/// `i` of the message at stream sequence `s` is record number `s << GROUP_BITS | i`. Record
/// numbers thus grow in stream order, as the applier, snapshots and acks expect.
pub const GROUP_BITS: u32 = 16;

/// The record number of record `index` of the message at stream sequence `seq`.
pub fn lsn_of(seq: u64, index: usize) -> u64 {
    (seq << GROUP_BITS) | index as u64
}

/// The stream sequence to read from when everything below record number `lsn_next` is folded
/// (the state only ever stops between whole messages).
pub fn resume_seq(lsn_next: u64) -> u64 {
    (lsn_next.saturating_sub(1) >> GROUP_BITS) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_numbers_follow_the_stream() {
        assert_eq!(resume_seq(lsn_of(1, 0)), 1);
        assert_eq!(resume_seq(lsn_of(7, 3) + 1), 8);
        assert!(lsn_of(7, 65_535) < lsn_of(8, 0));
        assert_eq!(resume_seq(0), 1);
    }
}
