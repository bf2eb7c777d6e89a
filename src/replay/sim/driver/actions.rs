//! The driver's vocabulary with its task: what the driver asks the task to do ([`Action`],
//! [`Upload`], [`Close`]) and how the task tells it a connection attempt failed
//! ([`ConnectFailure`]).

use milepost_proto::Fix;

/// Something the task must do, in the order given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::replay::sim) enum Action {
    /// Record the wire totals at a window edge (`end`: the closing one).
    MarkWire {
        /// The window's closing edge.
        end: bool,
    },
    /// Switch networks (rebind the socket); it was planned for `at`.
    Migrate {
        /// The planned time, us since the run's start.
        at: u64,
    },
    /// Let go of the session's connection.
    Drop(Close),
    /// Note on stderr that every driver is now in this state.
    Announce(&'static str),
    /// The gateway stayed unreachable for `reconnect_for`: this driver gave up.
    Unreachable,
}

/// How a connection is let go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::replay::sim) enum Close {
    /// It is broken already: just drop it.
    Broken,
    /// The app goes offline and closes it.
    Offline,
    /// The driver is done and closes it.
    Done,
}

impl Close {
    /// The reason sent with an explicit close.
    pub fn reason(self) -> Option<&'static [u8]> {
        match self {
            Close::Broken => None,
            Close::Offline => Some(b"offline"),
            Close::Done => Some(b"done"),
        }
    }
}

/// Why a connection attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::replay::sim) enum ConnectFailure {
    /// Refused for a reason a retry with the same token cannot fix.
    Fatal,
    /// Failed otherwise (unreachable, refused for now, closed).
    Failed,
    /// Not done within the attempt's time.
    TimedOut,
}

/// An upload due now on the open session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(in crate::replay::sim) struct Upload {
    /// Its scheduled time, us since the run's start.
    pub sched: u64,
    /// The fix to send as a live datagram first (seq, fix); if it cannot go, it goes in a
    /// batch.
    pub live: Option<(u64, Fix)>,
}
