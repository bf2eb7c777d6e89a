//! [`ApiError`]: every refusal of the back-office API, with one JSON shape
//! ([`ErrorBody`]: `code`, `message`, `field`) and the right status: 400 malformed, 401 no or
//! bad credentials, 403 out of scope, 404 unknown, 409 conflicts with the live state, 413 too
//! large, 415 not JSON, 422 well-formed but refused, 429 over the key's rate, 503 busy.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use milepost_proto::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::web::error::WebError;
use crate::web::respond::{with_headers, NO_STORE};

/// The body of every error answer of `/api/v1`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `too_large`, `unsupported_media_type`, `unprocessable`, `rate_limited`, `busy`,
    /// `internal`.
    pub code: String,
    /// For people.
    pub message: String,
    /// The request field at fault (a JSON path such as `stops[2].lat`), when one is.
    pub field: Option<String>,
}

/// A refused or failed API request.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
    /// Seconds to wait, for 429 and 503.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                field: None,
            },
            retry_after_s: None,
        }
    }

    /// The same error, naming the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.body.field = Some(field.into());
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no credentials, or credentials that are not good.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: good credentials that do not cover this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such thing (or none the caller may know of).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the live state.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: the body is over the limit.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 422: well-formed but refused.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }

    /// 429: over the key's rate; retry after `secs`.
    pub fn rate_limited(secs: u64) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "over this key's request rate",
        );
        e.retry_after_s = Some(secs.max(1));
        e
    }

    /// 503: busy (the log cannot take more now, or the disk is full); retry later.
    pub fn busy(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message);
        e.retry_after_s = Some(1);
        e
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The API error for a refusal of the command path. Refusals by the core of a well-formed
    /// command are conflicts with the live state (a driver busy on another route, a stop
    /// already served, a re-sequence that does not match the route).
    pub fn from_command(code: ErrorCode, message: String) -> ApiError {
        match code {
            ErrorCode::TokenInvalid | ErrorCode::TokenExpired | ErrorCode::TokenRevoked => {
                ApiError::unauthorized(message)
            }
            ErrorCode::WrongRole | ErrorCode::OutOfScope => ApiError::forbidden(message),
            ErrorCode::NotFound => ApiError::not_found(message),
            ErrorCode::OutcomeRefused | ErrorCode::RouteRefused => ApiError::conflict(message),
            ErrorCode::BadQuery => ApiError::bad_request(message),
            ErrorCode::FrameTooLarge => ApiError::too_large(message),
            ErrorCode::DiskFull
            | ErrorCode::ServerBusy
            | ErrorCode::RateLimited
            | ErrorCode::ShuttingDown => ApiError::busy(message),
            _ => ApiError::internal(message),
        }
    }
}

impl From<WebError> for ApiError {
    fn from(e: WebError) -> ApiError {
        let message = e.to_string();
        match e {
            WebError::NoToken | WebError::BadToken(_) => ApiError::unauthorized(message),
            WebError::WrongRole(_) | WebError::OutOfScope(_) => ApiError::forbidden(message),
            WebError::NotFound(_) => ApiError::not_found(message),
            WebError::BadRequest(_) => ApiError::bad_request(message),
            WebError::Refused(_) => ApiError::conflict(message),
            WebError::Busy(_) => ApiError::busy(message),
            WebError::TooMany(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            }
            WebError::Internal(_) => ApiError::internal(message),
            WebError::HeldElsewhere(_) => {
                ApiError::new(StatusCode::MISDIRECTED_REQUEST, "held_elsewhere", message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = with_headers((self.status, axum::Json(&self.body)), &[NO_STORE]);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after_s {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}
