//! Opt-out links: `/n/optout/{token}`, where the token names a channel and a parcel and is
//! signed with the gateway's secret, so nobody can stop someone else's messages. Opting out
//! stops that channel for the parcel's address (kept as a keyed hash,
//! [`crate::notify::contact::address_key`]) on every later parcel too. The link never expires:
//! an old e-mail's link still works.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::notify::contact::Channel;

fn mac(secret: &[u8], payload: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(b"milepost-optout\0");
    m.update(payload.as_bytes());
    URL_SAFE_NO_PAD.encode(&m.finalize().into_bytes()[..16])
}

/// The token of a parcel's opt-out link for a channel.
pub fn token(secret: &[u8], channel: Channel, tracking: &str) -> String {
    let payload = format!("{}:{tracking}", channel.name());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        mac(secret, &payload)
    )
}

/// The channel and parcel a token names, if its signature holds.
pub fn verify(secret: &[u8], token: &str) -> Option<(Channel, String)> {
    let (p, sig) = token.split_once('.')?;
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    let expected = mac(secret, &payload);
    // Constant-time comparison of the two MACs.
    if expected.len() != sig.len()
        || expected
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return None;
    }
    let (c, tracking) = payload.split_once(':')?;
    let channel = Channel::ALL.into_iter().find(|x| x.name() == c)?;
    Some((channel, tracking.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_refuse_tampering() {
        let t = token(b"s", Channel::Email, "MP100");
        assert_eq!(verify(b"s", &t), Some((Channel::Email, "MP100".into())));
        assert_eq!(verify(b"other", &t), None);
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("email:MP101"),
            t.split_once('.').unwrap().1
        );
        assert_eq!(verify(b"s", &forged), None);
        assert_eq!(verify(b"s", "garbage"), None);
        assert_eq!(verify(b"s", ""), None);
    }
}
