//! The API's request extractors: [`ApiJson`] (a JSON body: 415 if not JSON, 413 over the
//! limit, 400 naming the field that does not parse) and [`ApiQuery`] (query parameters, 400
//! naming the one that does not parse). Both answer with [`ApiError`]s, never axum's plain-text
//! rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::web::api::error::ApiError;

/// A JSON body, and the SHA-256 of its bytes (what an `Idempotency-Key` is checked against).
pub struct ApiJson<T> {
    /// The parsed body.
    pub value: T,
    /// SHA-256 of the raw body.
    pub digest: [u8; 32],
    /// The raw body (for a part another type reads, like a route's `recipients`).
    pub raw: Bytes,
}

/// The raw body of a request, refused with a 413 over the router's limit.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("the request body is over the limit")
        } else {
            ApiError::bad_request(format!("the request body could not be read: {e}"))
        }
    })
}

/// Parses `bytes` as JSON into `T`, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let err = ApiError::bad_request(format!("malformed JSON: {inner}"));
        if path.is_empty() || path == "." {
            err
        } else {
            err.field(path)
        }
    })
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = body_bytes(req, state).await?;
        let value = parse_json(&bytes)?;
        Ok(ApiJson {
            value,
            digest: Sha256::digest(&bytes).into(),
            raw: bytes,
        })
    }
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let err = ApiError::bad_request(format!("bad query: {}", e.into_inner()));
                if path.is_empty() || path == "." {
                    err
                } else {
                    err.field(path)
                }
            })
    }
}

/// Path parameters (a percent-encoding that is not UTF-8 is a 400 in the API's shape).
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "bad path: {}",
                e.body_text()
            ))),
        }
    }
}
