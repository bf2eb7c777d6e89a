//! A partition of depots as an image, and back: [`Parts::part_image`] takes the state of one
//! partition (its drivers' ledgers and positions, its routes, their parcels' entries and feeds,
//! its depots' feeds and its ETA calibration) at a position of the fold; [`Parts::install`]
//! puts such an image into a state that holds nothing of that partition. Installing the image
//! and folding the partition's later records gives the state of folding all of them.

use std::collections::HashSet;

use milepost_proto::DriverId;

use super::Parts;
use crate::store::image::{PartImage, PartImageRef, PositionEntry};
use crate::store::record::partition_of_depot;

impl Parts<'_> {
    /// The image of partition `partition` (of `partitions`) after records `..lsn_next`, taken
    /// at `taken_ms`.
    pub fn part_image(
        &self,
        partition: u32,
        partitions: u32,
        lsn_next: u64,
        taken_ms: i64,
    ) -> PartImageRef<'_> {
        let ours = |d: &str| partition_of_depot(d, partitions) == partition;
        let core = self.core.part(|d| ours(&d.0), partition);
        let positions: Vec<PositionEntry> = self
            .positions
            .entries()
            .filter(|(_, depot, _, _)| ours(depot))
            .map(|(driver, depot, seq, fix)| PositionEntry {
                driver: driver.clone(),
                depot: depot.to_owned(),
                seq,
                fix: *fix,
            })
            .collect();
        let mut drivers: HashSet<&DriverId> = positions.iter().map(|p| &p.driver).collect();
        drivers.extend(core.routes.iter().map(|r| &r.plan.driver));
        let ledger = self.ledger.export_of(|d| drivers.contains(d));
        let parcels = core
            .routes
            .iter()
            .flat_map(|r| r.plan.stops.iter().flat_map(|s| &s.parcels))
            .map(|p| &p.tracking);
        let feed = self.feed.part(|d| ours(&d.0), parcels);
        PartImageRef {
            partition,
            partitions,
            lsn_next,
            taken_ms,
            ledger,
            positions,
            core,
            feed,
        }
    }

    /// Puts a partition's image into this state, which must hold nothing of the partition
    /// (a gateway taking it over). Returns how many routes and drivers it brought.
    pub fn install(&mut self, image: PartImage) -> (usize, usize) {
        let drivers = image.ledger.len();
        self.ledger.absorb_entries(image.ledger);
        for p in &image.positions {
            self.positions.update(&p.driver, &p.depot, p.seq, &p.fix);
        }
        let routes = self.core.install_part(image.core, image.partition);
        self.feed.absorb(image.feed);
        (routes, drivers)
    }
}
