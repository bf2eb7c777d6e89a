//! [`Caller`]: who is calling the API and what they may do. Credentials come only from
//! `Authorization: Bearer` (never a cookie or the URL): an API key (`mpk_...`, see
//! [`crate::apikeys`]) or a dispatcher token (`mp1...`, read-only for its depot). Each
//! caller has a token bucket (`web.api.rate_per_s`, burst `web.api.burst`); past it, 429 with
//! `Retry-After` ([`crate::web::api::limits`]).

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::apikeys::{KeyRole, Scope};
use crate::auth::{fingerprint, Role};
use crate::web::api::error::ApiError;
use crate::web::auth::verify;
use crate::web::state::WebState;

/// The authenticated caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Stable id: the key's id, or `token:` and the token's fingerprint.
    pub id: String,
    /// For the record (log records name who changed what): the key's name, or the
    /// dispatcher token's depot.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// A dispatcher of `depot`, by its token.
    pub fn dispatcher(depot: &str, token: &str) -> Caller {
        Caller {
            id: format!("token:{}", fingerprint(token)),
            name: format!("dispatcher:{depot}"),
            scopes: vec![Scope {
                role: KeyRole::Dispatcher,
                depot: depot.to_owned(),
            }],
        }
    }

    /// Allowed to act as `role` in `depot`, or 403.
    pub fn require(&self, role: KeyRole, depot: &str) -> Result<(), ApiError> {
        let ok = self
            .scopes
            .iter()
            .any(|s| s.covers(depot) && (s.role == role || s.role == KeyRole::Backoffice));
        if ok {
            Ok(())
        } else {
            let what = match role {
                KeyRole::Backoffice => "a backoffice",
                KeyRole::Dispatcher => "a dispatcher or backoffice",
            };
            Err(ApiError::forbidden(format!(
                "this needs {what} scope for depot {depot}"
            )))
        }
    }

    /// May read `depot` (any scope on it).
    pub fn reads(&self, depot: &str) -> bool {
        self.scopes.iter().any(|s| s.covers(depot))
    }

    /// Reads every depot (a `*` scope).
    pub fn reads_every_depot(&self) -> bool {
        self.scopes.iter().any(|s| s.depot == "*")
    }

    /// Has a back-office scope on some depot.
    pub fn any_backoffice(&self) -> bool {
        self.scopes.iter().any(|s| s.role == KeyRole::Backoffice)
    }
}

impl FromRequestParts<std::sync::Arc<WebState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &std::sync::Arc<WebState>,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("send an API key or token as Authorization: Bearer")
            })?;
        let caller = if presented.starts_with("mpk_") {
            let key = st
                .shared
                .api_keys
                .verify(presented)
                .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"))?;
            if st.shared.deny.denies_entry(&key.deny_entry()) {
                return Err(ApiError::unauthorized("unknown or revoked API key"));
            }
            Caller {
                id: key.id.clone(),
                name: key.name.clone(),
                scopes: key.scopes.clone(),
            }
        } else {
            let claims = verify(&st.shared, presented).map_err(ApiError::from)?;
            if claims.role != Role::Dispatcher {
                return Err(ApiError::forbidden(
                    "the API takes API keys and dispatcher tokens",
                ));
            }
            Caller::dispatcher(&claims.depot, presented)
        };
        // A call relayed from another gateway was charged there.
        if parts
            .extensions
            .get::<crate::web::api::relay::Relayed>()
            .is_none()
        {
            st.api
                .limits
                .take(&caller.id, Instant::now())
                .map_err(ApiError::rate_limited)?;
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_decide() {
        let c = Caller {
            id: "k".into(),
            name: "orders".into(),
            scopes: vec![
                Scope::parse("backoffice:north").unwrap(),
                Scope::parse("dispatcher:south").unwrap(),
            ],
        };
        c.require(KeyRole::Backoffice, "north").unwrap();
        c.require(KeyRole::Dispatcher, "south").unwrap();
        assert_eq!(
            c.require(KeyRole::Backoffice, "south").unwrap_err().status,
            axum::http::StatusCode::FORBIDDEN
        );
        assert!(c.reads("north") && c.reads("south") && !c.reads("east"));
    }
}
