//! [`WebError`]: every refusal and failure of a web request, with its HTTP status, its short
//! machine-readable code, the mapping from the command path's protocol errors, and its JSON
//! answer. The pages show the same errors as HTML (`pages::error_page`).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use milepost_proto::ErrorCode;

use crate::web::respond::{with_headers, NO_STORE};

/// A refused or failed request, mapped to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No token was presented.
    #[error("this link needs a token")]
    NoToken,
    /// The token is malformed, badly signed, expired or revoked.
    #[error("{0}")]
    BadToken(&'static str),
    /// The token's role may not do this.
    #[error("{0}")]
    WrongRole(String),
    /// The token covers another parcel or depot.
    #[error("{0}")]
    OutOfScope(String),
    /// The parcel, route or page does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The core refused the command (the attempt is logged).
    #[error("{0}")]
    Refused(String),
    /// Too many event streams, or the log cannot take more now.
    #[error("{0}")]
    Busy(String),
    /// Over a per-parcel limit (messages an hour): 429.
    #[error("{0}")]
    TooMany(String),
    /// Storage failed.
    #[error("{0}")]
    Internal(String),
    /// A cluster whose gateways fold only the partitions they own: the depot is held by
    /// another gateway (421, with where to go).
    #[error("{0}")]
    HeldElsewhere(crate::server::shared::HeldElsewhere),
}

impl WebError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NoToken | WebError::BadToken(_) => StatusCode::UNAUTHORIZED,
            WebError::WrongRole(_) | WebError::OutOfScope(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WebError::HeldElsewhere(_) => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WebError::NoToken => "no_token",
            WebError::BadToken(_) => "bad_token",
            WebError::WrongRole(_) => "wrong_role",
            WebError::OutOfScope(_) => "out_of_scope",
            WebError::NotFound(_) => "not_found",
            WebError::BadRequest(_) => "bad_request",
            WebError::Refused(_) => "refused",
            WebError::Busy(_) => "busy",
            WebError::TooMany(_) => "rate_limited",
            WebError::Internal(_) => "internal",
            WebError::HeldElsewhere(_) => "held_elsewhere",
        }
    }

    /// The web error for a protocol error code from the command path.
    pub fn from_code(code: ErrorCode, message: String) -> WebError {
        match code {
            ErrorCode::TokenInvalid | ErrorCode::TokenExpired | ErrorCode::TokenRevoked => {
                WebError::BadToken("token refused")
            }
            ErrorCode::WrongRole => WebError::WrongRole(message),
            ErrorCode::OutOfScope => WebError::OutOfScope(message),
            ErrorCode::NotFound => WebError::NotFound(message),
            ErrorCode::OutcomeRefused | ErrorCode::RouteRefused => WebError::Refused(message),
            ErrorCode::BadQuery | ErrorCode::FrameTooLarge => WebError::BadRequest(message),
            ErrorCode::RateLimited => WebError::TooMany(message),
            ErrorCode::DiskFull | ErrorCode::ServerBusy | ErrorCode::ShuttingDown => {
                WebError::Busy(message)
            }
            _ => WebError::Internal(message),
        }
    }
}

impl IntoResponse for WebError {
    /// JSON `{"error": code, "message": text}` with the status (plus `partition` and `owner`,
    /// the gateway that holds it, for `held_elsewhere`); pages render their own.
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        // Where to go instead, for a client that follows it.
        if let WebError::HeldElsewhere(h) = &self {
            body["partition"] = h.partition.into();
            body["owner"] = serde_json::to_value(&h.owner).unwrap_or_default();
        }
        let answer = (self.status(), axum::Json(body));
        if matches!(self, WebError::NoToken | WebError::BadToken(_)) {
            with_headers(answer, &[(header::WWW_AUTHENTICATE, "Bearer"), NO_STORE])
        } else {
            with_headers(answer, &[NO_STORE])
        }
    }
}
