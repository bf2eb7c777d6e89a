//! Protocol error codes and per-fix rejection reasons. The numeric values are part of the wire
//! format (see `PROTOCOL.md`) and never change meaning.

use serde::{Deserialize, Serialize};

/// Connection- or request-level error. The numeric value (`as u32`) is also the QUIC
/// application close code used when the server closes the connection for this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[repr(u32)]
pub enum ErrorCode {
    /// Normal close.
    #[error("no error")]
    NoError = 0,
    /// A frame could not be decoded, or a message came where it is not allowed.
    #[error("protocol violation")]
    ProtocolViolation = 1,
    /// The client's protocol version is not supported.
    #[error("unsupported protocol version")]
    UnsupportedVersion = 2,
    /// The token is malformed or its signature is wrong.
    #[error("token invalid")]
    TokenInvalid = 3,
    /// The token has expired.
    #[error("token expired")]
    TokenExpired = 4,
    /// The token's role may not do this.
    #[error("wrong role")]
    WrongRole = 5,
    /// The token's subject or depot does not cover what was asked.
    #[error("out of scope")]
    OutOfScope = 6,
    /// A frame's length exceeds the limit.
    #[error("frame too large")]
    FrameTooLarge = 7,
    /// A batch holds more fixes than the limit, or none.
    #[error("bad batch size")]
    BadBatchSize = 8,
    /// Too many fixes per second for this driver.
    #[error("rate limited")]
    RateLimited = 9,
    /// The server is overloaded; retry later with backoff.
    #[error("server busy")]
    ServerBusy = 10,
    /// The server is shutting down; reconnect (possibly elsewhere).
    #[error("shutting down")]
    ShuttingDown = 11,
    /// The server could not store data; nothing in the failed request was acked.
    #[error("storage failure")]
    StorageFailure = 12,
    /// No Hello arrived in time.
    #[error("hello timeout")]
    HelloTimeout = 13,
    /// A seq is too far from the driver's watermark.
    #[error("sequence out of window")]
    SeqOutOfWindow = 14,
    /// A query's parameters are invalid.
    #[error("bad query")]
    BadQuery = 15,
    /// The token was revoked.
    #[error("token revoked")]
    TokenRevoked = 16,
    /// Too many connections for this token.
    #[error("too many connections")]
    TooManyConnections = 17,
    /// The server's disk is full: fixes are not accepted; keep them and retry later.
    #[error("disk full")]
    DiskFull = 18,
    /// A route is invalid or conflicts with another (duplicate stop, driver busy...).
    #[error("route refused")]
    RouteRefused = 19,
    /// An outcome or instructions were refused (wrong one-time code, unknown stop, already
    /// reported...).
    #[error("outcome refused")]
    OutcomeRefused = 20,
    /// The route or parcel is not known.
    #[error("not found")]
    NotFound = 21,
    /// A proof-file upload was refused: a name that is not a SHA-256, an empty file, a file
    /// over the server's limit, fewer or more bytes than announced, or bytes that do not hash
    /// to the name. Nothing was stored.
    #[error("upload refused")]
    UploadRefused = 22,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::NoError,
        ErrorCode::ProtocolViolation,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenExpired,
        ErrorCode::WrongRole,
        ErrorCode::OutOfScope,
        ErrorCode::FrameTooLarge,
        ErrorCode::BadBatchSize,
        ErrorCode::RateLimited,
        ErrorCode::ServerBusy,
        ErrorCode::ShuttingDown,
        ErrorCode::StorageFailure,
        ErrorCode::HelloTimeout,
        ErrorCode::SeqOutOfWindow,
        ErrorCode::BadQuery,
        ErrorCode::TokenRevoked,
        ErrorCode::TooManyConnections,
        ErrorCode::DiskFull,
        ErrorCode::RouteRefused,
        ErrorCode::OutcomeRefused,
        ErrorCode::NotFound,
        ErrorCode::UploadRefused,
    ];

    /// The code as a QUIC application close code.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The code for a QUIC application close code, if known.
    pub fn from_u32(v: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.get(v as usize).copied()
    }
}

/// Why one fix was refused. A refused fix is settled: the phone must not resend it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[repr(u8)]
pub enum RejectReason {
    /// Latitude outside -90..=90 degrees.
    #[error("latitude out of range")]
    LatitudeOutOfRange = 0,
    /// Longitude outside -180..=180 degrees.
    #[error("longitude out of range")]
    LongitudeOutOfRange = 1,
    /// Exactly (0, 0): a phone that had no fix.
    #[error("null island (0,0)")]
    NullIsland = 2,
    /// Accuracy not a positive number.
    #[error("accuracy not positive")]
    AccuracyInvalid = 3,
    /// Accuracy worse than the server's bound.
    #[error("accuracy too poor")]
    AccuracyTooPoor = 4,
    /// Measured too far in the future (clock skew).
    #[error("timestamp in the future")]
    FutureTimestamp = 5,
    /// Measured longer ago than the server keeps backlog for.
    #[error("timestamp too old")]
    TooOld = 6,
    /// The speed implied by the neighbouring fix is implausible.
    #[error("implausible jump")]
    ImplausibleJump = 7,
    /// Marked as a mock location, and the server refuses those.
    #[error("mock location")]
    MockLocation = 8,
    /// Same seq as a stored fix but different contents.
    #[error("conflicting duplicate")]
    ConflictingDuplicate = 9,
    /// A speed, heading, altitude or battery value out of its range, or not a number.
    #[error("field out of range")]
    FieldOutOfRange = 10,
}

impl RejectReason {
    /// Every reason, in numeric order.
    pub const ALL: [RejectReason; 11] = [
        RejectReason::LatitudeOutOfRange,
        RejectReason::LongitudeOutOfRange,
        RejectReason::NullIsland,
        RejectReason::AccuracyInvalid,
        RejectReason::AccuracyTooPoor,
        RejectReason::FutureTimestamp,
        RejectReason::TooOld,
        RejectReason::ImplausibleJump,
        RejectReason::MockLocation,
        RejectReason::ConflictingDuplicate,
        RejectReason::FieldOutOfRange,
    ];

    /// A short stable name, for metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::LatitudeOutOfRange => "lat_range",
            RejectReason::LongitudeOutOfRange => "lon_range",
            RejectReason::NullIsland => "null_island",
            RejectReason::AccuracyInvalid => "accuracy_invalid",
            RejectReason::AccuracyTooPoor => "accuracy_poor",
            RejectReason::FutureTimestamp => "future",
            RejectReason::TooOld => "too_old",
            RejectReason::ImplausibleJump => "jump",
            RejectReason::MockLocation => "mock",
            RejectReason::ConflictingDuplicate => "conflict",
            RejectReason::FieldOutOfRange => "field_range",
        }
    }
}
