//! Hash maps for the per-fix path. Every fix looks up its driver in several maps (the two
//! dedupe ledgers, live positions, the route index, the feed hub); std's SipHash was about 1% of
//! a fix's CPU. foldhash is seeded per process; it claims only minimal resistance to keys
//! chosen to collide, which is enough here because every key (a driver, route or parcel id)
//! comes from a token or a route signed or assigned by the operator, not from an anonymous
//! peer.

/// The hasher of every map here.
pub type FastState = foldhash::fast::RandomState;

/// A `std` hash map with [`FastState`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;

/// A concurrent map with [`FastState`].
pub type FastDashMap<K, V> = dashmap::DashMap<K, V, FastState>;
