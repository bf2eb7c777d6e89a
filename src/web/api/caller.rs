//! [`Caller`]: who is calling the API and what they may do. Credentials come only from
//! `Authorization: Bearer` (never a cookie or the URL): an API key (`mpk_...`, see
//! [`crate::apikeys`]) or a dispatcher token (`mp1...`, read-only for its depot). Each
//! caller speaks for a tenant ([`crate::tenancy::Tenant`]): its key's carrier, or the carrier
//! of its token's depot; every depot check here asks it first. Each
//! caller has a token bucket (`web.api.rate_per_s`, burst `web.api.burst`); past it, 429 with
//! `Retry-After` ([`crate::web::api::limits`]).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::apikeys::{KeyRole, Scope};
use crate::auth::{fingerprint, Role};
use crate::tenancy::{Carriers, Tenant};
use crate::web::api::error::ApiError;
use crate::web::auth::verify;
use crate::web::state::WebState;

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Stable id: the key's id, or `token:` and the token's fingerprint.
    pub id: String,
    /// For the record (log records name who changed what): the key's name, or the
    /// dispatcher token's depot.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Whom it speaks for.
    pub tenant: Tenant,
    /// The gateway's carriers (which depot is whose).
    pub carriers: Arc<Carriers>,
}

impl Caller {
    /// A dispatcher of `depot`, by its token (its carrier is the depot's).
    pub fn dispatcher(carriers: Arc<Carriers>, depot: &str, token: &str) -> Caller {
        Caller {
            id: format!("token:{}", fingerprint(token)),
            name: format!("dispatcher:{depot}"),
            scopes: vec![Scope {
                role: KeyRole::Dispatcher,
                depot: depot.to_owned(),
            }],
            tenant: Tenant::Carrier(carriers.carrier_of(depot).to_owned()),
            carriers,
        }
    }

    /// Allowed to act as `role` in `depot`, or 403.
    pub fn require(&self, role: KeyRole, depot: &str) -> Result<(), ApiError> {
        let ok = self.tenant.admits(&self.carriers, depot)
            && self
                .scopes
                .iter()
                .any(|s| s.covers(depot) && (s.role == role || s.role == KeyRole::Backoffice));
        if ok {
            Ok(())
        } else {
            let what = match role {
                KeyRole::Backoffice => "a backoffice",
                KeyRole::Dispatcher | KeyRole::Shipper => "a dispatcher or backoffice",
            };
            Err(ApiError::forbidden(format!(
                "this needs {what} scope for depot {depot}"
            )))
        }
    }

    /// May read `depot`: it is the caller's carrier's, and a scope covers it.
    pub fn reads(&self, depot: &str) -> bool {
        self.tenant.admits(&self.carriers, depot) && self.scopes.iter().any(|s| s.covers(depot))
    }

    /// May look up one parcel of `depot` by its tracking number: reads the depot, or is a
    /// shipper at its carrier.
    pub fn follows_parcel_in(&self, depot: &str) -> bool {
        self.reads(depot) || {
            let carrier = self.carriers.carrier_of(depot);
            self.scopes.iter().any(|s| s.follows_carrier(carrier))
        }
    }

    /// Reads every depot of every carrier (a platform key with a `*` scope).
    pub fn reads_every_depot(&self) -> bool {
        self.tenant == Tenant::Platform && self.scopes.iter().any(|s| s.covers("*"))
    }

    /// Acts as `role` on every depot of its tenant (a `*` scope), or 403: what the tenant's
    /// own settings (its webhooks) need.
    pub fn require_everywhere(&self, role: KeyRole) -> Result<(), ApiError> {
        let ok = self.scopes.iter().any(|s| {
            s.depot == "*" && s.covers("*") && (s.role == role || s.role == KeyRole::Backoffice)
        });
        if ok {
            Ok(())
        } else {
            let scope = Scope {
                role,
                depot: "*".into(),
            };
            Err(ApiError::forbidden(format!("this needs a {scope} scope")))
        }
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
            let tenant = key.tenant();
            let carriers = st.api.carriers.clone();
            if let Some(c) = tenant.carrier().filter(|c| !carriers.knows(c)) {
                return Err(ApiError::forbidden(format!(
                    "this key belongs to carrier {c:?}, which this gateway does not know ([carriers.{c}])"
                )));
            }
            Caller {
                id: key.id.clone(),
                name: key.name.clone(),
                scopes: key.scopes.clone(),
                tenant,
                carriers,
            }
        } else {
            let claims = verify(&st.shared, presented).map_err(ApiError::from)?;
            if claims.role != Role::Dispatcher {
                return Err(ApiError::forbidden(
                    "the API takes API keys and dispatcher tokens",
                ));
            }
            Caller::dispatcher(st.api.carriers.clone(), &claims.depot, presented)
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
            tenant: Tenant::Platform,
            carriers: Arc::new(Carriers::default()),
        };
        c.require(KeyRole::Backoffice, "north").unwrap();
        c.require(KeyRole::Dispatcher, "south").unwrap();
        assert_eq!(
            c.require(KeyRole::Backoffice, "south").unwrap_err().status,
            axum::http::StatusCode::FORBIDDEN
        );
        assert!(c.reads("north") && c.reads("south") && !c.reads("east"));
    }

    #[test]
    fn a_carriers_key_reads_its_carriers_depots_only() {
        let carriers: Carriers =
            toml::from_str("[acme]\ndepots = [\"north\"]\n[zeta]\ndepots = [\"south\"]\n").unwrap();
        let carriers = Arc::new(carriers);
        let acme = Caller {
            id: "k".into(),
            name: "acme-orders".into(),
            scopes: vec![Scope::parse("backoffice:*").unwrap()],
            tenant: Tenant::Carrier("acme".into()),
            carriers: carriers.clone(),
        };
        assert!(acme.reads("north") && !acme.reads("south") && !acme.reads("unlisted"));
        assert!(acme.require(KeyRole::Backoffice, "south").is_err());
        assert!(!acme.reads_every_depot());
        let shipper = Caller {
            id: "s".into(),
            name: "shop".into(),
            scopes: vec![Scope::parse("shipper:zeta").unwrap()],
            tenant: Tenant::Platform,
            carriers: carriers.clone(),
        };
        assert!(shipper.follows_parcel_in("south") && !shipper.follows_parcel_in("north"));
        assert!(!shipper.reads("south") && !shipper.reads_every_depot());
        let token = Caller::dispatcher(carriers, "north", "mp1.x");
        assert_eq!(token.tenant, Tenant::Carrier("acme".into()));
    }
}
