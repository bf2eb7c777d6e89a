//! A recipient's contact details and channel preferences: personal data. They come with a
//! route (`recipients` in the API's route body) or on their own
//! (`PUT /api/v1/parcels/{tracking}/recipient`), are checked here, kept only in the
//! notification store (never in the log, a snapshot, a metric or a log line), shown masked to
//! dispatchers, and erased with the parcel's history or on request.

use serde::{Deserialize, Serialize};
use sha2::Digest;

pub use crate::notify::config::{valid_email, valid_phone, Channel};

/// How to reach a parcel's recipient.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// The recipient's name as messages may greet them (1-100 bytes, no control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Mobile number in E.164 form (`+` and 8-15 digits), for SMS and WhatsApp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The channels the recipient wants, each needing its detail (`email` an e-mail address,
    /// `sms` and `whatsapp` a phone). Empty: e-mail if there is an address, else SMS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<Channel>,
    /// Language of the messages (`en`, `de`...: a locale of `notify.templates`); absent: the
    /// gateway's `notify.default_locale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// Longest name, bytes.
const MAX_NAME: usize = 100;

impl Contact {
    /// Checks every field; the error names the field and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(n) = &self.name {
            let t = n.trim();
            if t.is_empty() || t.len() > MAX_NAME || t.chars().any(char::is_control) {
                return Err((
                    "name",
                    format!("a name is 1 to {MAX_NAME} bytes without control characters"),
                ));
            }
        }
        if let Some(e) = &self.email {
            if !valid_email(e) {
                return Err(("email", "not an e-mail address".into()));
            }
        }
        if let Some(p) = &self.phone {
            if !valid_phone(p) {
                return Err((
                    "phone",
                    "a phone number is E.164: + and 8 to 15 digits".into(),
                ));
            }
        }
        for c in &self.channels {
            let has = match c {
                Channel::Email => self.email.is_some(),
                Channel::Sms | Channel::Whatsapp => self.phone.is_some(),
            };
            if !has {
                return Err((
                    "channels",
                    format!("channel {} needs its contact detail", c.name()),
                ));
            }
        }
        if self.email.is_none() && self.phone.is_none() {
            return Err((
                "email",
                "an e-mail address or a phone number is needed".into(),
            ));
        }
        if let Some(l) = &self.locale {
            if l.is_empty()
                || l.len() > 16
                || !l
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(("locale", "a locale is a tag like en or pt-BR".into()));
            }
        }
        Ok(())
    }

    /// The channels messages go out on, in preference order.
    pub fn channels(&self) -> Vec<Channel> {
        if !self.channels.is_empty() {
            let mut v: Vec<Channel> = Vec::new();
            for c in &self.channels {
                if !v.contains(c) {
                    v.push(*c);
                }
            }
            return v;
        }
        if self.email.is_some() {
            vec![Channel::Email]
        } else if self.phone.is_some() {
            vec![Channel::Sms]
        } else {
            Vec::new()
        }
    }

    /// The address for a channel, if the contact has one.
    pub fn address(&self, c: Channel) -> Option<&str> {
        match c {
            Channel::Email => self.email.as_deref(),
            Channel::Sms | Channel::Whatsapp => self.phone.as_deref(),
        }
    }
}

/// An address shown to a dispatcher: enough to tell two apart, not enough to use.
/// `ana.horvat@example.com` reads `a***@example.com`, `+385911234567` reads `+385*****4567`.
pub fn mask(address: &str) -> String {
    if let Some((local, domain)) = address.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let n = address.chars().count();
    address
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 4 || i + 4 >= n { c } else { '*' })
        .collect()
}

/// The key of an opt-out from one carrier's messages only (`carrier`'s, other than the
/// default carrier, whose opt-outs keep the plain [`address_key`]: a gateway of one carrier
/// keeps working as before). An opt-out under the plain key stops every carrier's.
pub fn carrier_key(key: &str, carrier: &str) -> String {
    if carrier == crate::tenancy::DEFAULT_CARRIER {
        key.to_owned()
    } else {
        format!("{key}.{carrier}")
    }
}

/// The key an opt-out is kept under: a keyed hash of the channel and the normalised address,
/// so the opt-out list holds no address.
pub fn address_key(secret: &[u8], channel: Channel, address: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(secret);
    h.update([0]);
    h.update(channel.name().as_bytes());
    h.update([0]);
    h.update(address.trim().to_lowercase().as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> Contact {
        Contact {
            name: Some("Ana".into()),
            email: Some("ana@example.com".into()),
            phone: Some("+385911234567".into()),
            channels: vec![Channel::Sms, Channel::Email],
            locale: Some("hr".into()),
        }
    }

    #[test]
    fn a_good_contact_passes_and_keeps_its_order() {
        assert_eq!(ana().check(), Ok(()));
        assert_eq!(ana().channels(), vec![Channel::Sms, Channel::Email]);
        let only_mail = Contact {
            email: Some("a@b.example".into()),
            ..Default::default()
        };
        assert_eq!(only_mail.channels(), vec![Channel::Email]);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: Vec<(Contact, &str)> = vec![
            (
                Contact {
                    email: Some("ana@example.com\r\nBcc: x@evil.example".into()),
                    ..ana()
                },
                "email",
            ),
            (
                Contact {
                    email: Some("not-an-address".into()),
                    ..ana()
                },
                "email",
            ),
            (
                Contact {
                    phone: Some("0911234567".into()),
                    ..ana()
                },
                "phone",
            ),
            (
                Contact {
                    phone: Some("+38591 123".into()),
                    ..ana()
                },
                "phone",
            ),
            (
                Contact {
                    name: Some("Ana\nBcc: x".into()),
                    ..ana()
                },
                "name",
            ),
            (
                Contact {
                    name: Some("x".repeat(101)),
                    ..ana()
                },
                "name",
            ),
            (
                Contact {
                    phone: None,
                    ..ana()
                },
                "channels",
            ),
            (
                Contact {
                    locale: Some("en;drop".into()),
                    ..ana()
                },
                "locale",
            ),
            (Contact::default(), "email"),
        ];
        for (c, field) in cases {
            assert_eq!(c.check().map_err(|e| e.0), Err(field), "{c:?}");
        }
    }

    #[test]
    fn masks_hide_the_middle() {
        assert_eq!(mask("ana.horvat@example.com"), "a***@example.com");
        assert_eq!(mask("+385911234567"), "+385*****4567");
    }

    #[test]
    fn address_keys_ignore_case_and_differ_by_channel() {
        let s = b"secret";
        assert_eq!(
            address_key(s, Channel::Email, "Ana@Example.com"),
            address_key(s, Channel::Email, "ana@example.com ")
        );
        assert_ne!(
            address_key(s, Channel::Sms, "+385911234567"),
            address_key(s, Channel::Whatsapp, "+385911234567")
        );
        assert_ne!(
            address_key(b"other", Channel::Email, "ana@example.com"),
            address_key(s, Channel::Email, "ana@example.com")
        );
    }
}
