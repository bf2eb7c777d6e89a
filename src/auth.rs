//! Bearer tokens: `mp1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`, signed with the
//! server secret. A token names its role, subject, depot and expiry; the gateway checks the
//! signature in constant time and the expiry against the `now` it is given.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use milepost_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PREFIX: &str = "mp1.";

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A driver app: sends fixes for the driver named by the subject.
    Driver,
    /// A dispatcher console: reads the live fleet of its depot.
    Dispatcher,
    /// A parcel recipient: follows the parcel named by the subject.
    Recipient,
}

/// The signed content of a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The role.
    pub role: Role,
    /// Driver id, depot name or tracking number, by role.
    pub sub: String,
    /// The depot the holder belongs to (scopes queries and positions).
    pub depot: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issue time, Unix seconds.
    pub iat: i64,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a token of ours, or not decodable.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match.
    #[error("bad token signature")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
}

impl AuthError {
    /// The protocol error code for this refusal.
    pub fn code(self) -> ErrorCode {
        match self {
            AuthError::Malformed | AuthError::BadSignature => ErrorCode::TokenInvalid,
            AuthError::Expired => ErrorCode::TokenExpired,
        }
    }
}

/// The token signing key.
#[derive(Clone)]
pub struct TokenKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from secret bytes.
    pub fn new(secret: &[u8]) -> TokenKey {
        TokenKey {
            key: secret.to_vec(),
        }
    }

    /// Reads `path`, or creates it with 32 random bytes (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<TokenKey> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() >= 32 => Ok(TokenKey::new(&bytes)),
            Ok(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds fewer than 32 bytes", path.display()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; 32] = rand::random();
                write_private(path, &secret)?;
                Ok(TokenKey::new(&secret))
            }
            Err(e) => Err(e),
        }
    }

    /// The secret bytes (also the default webhook signing secret).
    pub fn secret(&self) -> &[u8] {
        &self.key
    }

    /// Signs claims into a token string.
    pub fn mint(&self, claims: &Claims) -> String {
        // Serialising a plain struct of strings and integers cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = format!("{PREFIX}{}", B64.encode(json));
        let sig = self.mac(token.as_bytes()).finalize().into_bytes();
        token.push('.');
        token.push_str(&B64.encode(sig));
        token
    }

    /// Checks a token's signature and expiry at `now_s` (Unix seconds).
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Claims, AuthError> {
        let rest = token.strip_prefix(PREFIX).ok_or(AuthError::Malformed)?;
        let (payload, sig) = rest.rsplit_once('.').ok_or(AuthError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| AuthError::Malformed)?;
        let signed = &token[..PREFIX.len() + payload.len()];
        self.mac(signed.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| AuthError::BadSignature)?;
        let json = B64.decode(payload).map_err(|_| AuthError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
        if claims.exp <= now_s {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        mac
    }
}

/// Writes a file readable only by its owner (on Unix).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            role: Role::Driver,
            sub: "D42".into(),
            depot: "north".into(),
            exp,
            iat: 0,
        }
    }

    #[test]
    fn mint_then_verify() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let t = key.mint(&claims(100));
        assert_eq!(key.verify(&t, 99).unwrap(), claims(100));
        assert_eq!(key.verify(&t, 100), Err(AuthError::Expired));
    }

    #[test]
    fn forged_and_malformed_are_refused() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let other = TokenKey::new(b"another secret another secret 00");
        let t = other.mint(&claims(100));
        assert_eq!(key.verify(&t, 0), Err(AuthError::BadSignature));
        assert_eq!(key.verify("hello", 0), Err(AuthError::Malformed));
        assert_eq!(key.verify("mp1.x.y", 0), Err(AuthError::Malformed));
        // Changing the payload (role escalation) breaks the signature.
        let good = key.mint(&claims(100));
        let (_, sig) = good.rsplit_once('.').unwrap();
        let mut evil = claims(100);
        evil.role = Role::Dispatcher;
        let evil_payload = B64.encode(serde_json::to_vec(&evil).unwrap());
        let forged = format!("{PREFIX}{evil_payload}.{sig}");
        assert_eq!(key.verify(&forged, 0), Err(AuthError::BadSignature));
    }
}
