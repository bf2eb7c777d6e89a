//! `/api/v1/proofs/{sha256}`: proof-of-delivery files. A back-office system (or a driver app
//! through it) uploads the photo or signature whose digest an outcome carries; the gateway
//! checks the bytes hash to the name (422 if not) and the size (413), and stores it
//! content-addressed ([`crate::proofs`]). A file is downloaded as the proof of a parcel
//! (`?tracking=`): the caller must read that parcel's depot and the parcel's proof must name
//! the file, so a caller never reaches another depot's photos.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::proofs::{valid_name, ProofError};
use crate::web::api::caller::Caller;
use crate::web::api::error::ApiError;
use crate::web::api::extract::{body_bytes, ApiPath, ApiQuery};
use crate::web::api::views::parcel_detail;
use crate::web::auth::valid_tracking;
use crate::web::respond::{with_headers, NOSNIFF, NO_STORE};
use crate::web::state::WebState;
use milepost_proto::route::TrackingNumber;

type St = State<Arc<WebState>>;

/// A stored proof file.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProofStored {
    /// Its SHA-256.
    pub sha256: String,
    /// Its size, bytes.
    pub bytes: usize,
    /// False if it was stored already.
    pub created: bool,
}

/// Upload a proof file
///
/// The body is the file itself (any content type); it is stored under its SHA-256, which
/// must be the path's.
#[utoipa::path(
    put,
    path = "/api/v1/proofs/{sha256}",
    tag = "proofs",
    params(("sha256" = String, Path, description = "The file's SHA-256, 64 lower-case hex digits")),
    request_body(content = String, content_type = "application/octet-stream", description = "The file's bytes"),
    responses(
        (status = 201, description = "Stored", body = ProofStored),
        (status = 200, description = "Stored before", body = ProofStored),
    )
)]
pub async fn put_proof(
    State(st): St,
    ApiPath(sha256): ApiPath<String>,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    if !caller.any_backoffice() {
        return Err(ApiError::forbidden(
            "uploading proof needs a backoffice scope",
        ));
    }
    if !valid_name(&sha256) {
        return Err(ApiError::bad_request(ProofError::BadName.to_string()).field("sha256"));
    }
    let bytes: Bytes = body_bytes(req, &()).await?;
    let n = bytes.len();
    let store = st.shared.proofs.clone();
    let name = sha256.clone();
    let put = tokio::task::spawn_blocking(move || store.put(&name, &bytes))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let created = match put {
        Ok(c) => c,
        Err(e @ ProofError::DigestMismatch { .. }) => {
            return Err(ApiError::unprocessable(e.to_string()).field("sha256"))
        }
        Err(e @ ProofError::TooLarge { .. }) => return Err(ApiError::too_large(e.to_string())),
        Err(e @ ProofError::Empty) => return Err(ApiError::bad_request(e.to_string())),
        Err(e @ ProofError::BadName) => {
            return Err(ApiError::bad_request(e.to_string()).field("sha256"))
        }
        Err(ProofError::Io(e)) => return Err(ApiError::busy(format!("not stored: {e}"))),
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = ProofStored {
        sha256,
        bytes: n,
        created,
    };
    Ok(with_headers((status, axum::Json(body)), &[NO_STORE]))
}

/// The content type of a stored file, from its first bytes (images only; anything else is
/// served as bytes).
pub fn sniff(b: &[u8]) -> &'static str {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if b.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "application/octet-stream"
    }
}

/// Which parcel's proof a download is.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProofQuery {
    /// The parcel whose proof of delivery names the file.
    pub tracking: String,
}

/// Download a proof file
///
/// As the proof of one parcel: the caller reads the parcel's depot, and the parcel's proof
/// names the file.
#[utoipa::path(
    get,
    path = "/api/v1/proofs/{sha256}",
    tag = "proofs",
    params(("sha256" = String, Path, description = "The file's SHA-256"), ProofQuery),
    responses((status = 200, description = "The file's bytes (image/png, image/jpeg, image/webp or application/octet-stream)", content_type = "application/octet-stream", body = String))
)]
pub async fn get_proof(
    State(st): St,
    ApiPath(sha256): ApiPath<String>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ProofQuery>,
) -> Result<Response, ApiError> {
    let no = || ApiError::not_found("no such proof");
    if !valid_name(&sha256) || !valid_tracking(&q.tracking) {
        return Err(no());
    }
    let parcel = parcel_detail(&st.shared, &TrackingNumber(q.tracking.clone()))?
        .filter(|d| caller.reads(&d.depot))
        .ok_or_else(no)?;
    let named = parcel.proof.as_ref().is_some_and(|p| {
        p.photo_sha256.as_deref() == Some(sha256.as_str())
            || p.signature_sha256.as_deref() == Some(sha256.as_str())
    });
    if !named {
        return Err(no());
    }
    let store = st.shared.proofs.clone();
    let got = tokio::task::spawn_blocking(move || store.get(&sha256))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match got {
        Ok(Some(bytes)) => {
            let mime = sniff(&bytes);
            Ok(with_headers(
                ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
                &[NO_STORE, NOSNIFF],
            ))
        }
        Ok(None) => Err(ApiError::not_found("no such proof")),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}
