//! E-mail over SMTP with lettre: STARTTLS (required) or implicit TLS with the public roots and
//! an optional private CA, AUTH when a user is configured, a pooled connection. The message is
//! plain text with a stable `Message-ID` (`<milepost.ID@domain>`: a receiving system can
//! drop a duplicate after a crash) and one-click `List-Unsubscribe` headers (RFC 8058).
//! Names and addresses go through lettre's header encoding, and contacts are checked on the way
//! in ([`crate::notify::contact`]), so nothing can be injected into a header.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::notify::adapters::provider::{Adapter, Envelope, SendError};
use crate::notify::config::EmailConfig;

/// The SMTP adapter.
pub struct Smtp {
    transport: SmtpTransport,
    from: Mailbox,
}

impl Smtp {
    /// From its config (`EmailConfig::Smtp`); a bad sender or CA file is an error.
    pub fn new(cfg: &EmailConfig, timeout: Duration) -> Result<Smtp, String> {
        let EmailConfig::Smtp {
            host,
            port,
            tls,
            username,
            password,
            from,
            ca_file,
        } = cfg
        else {
            return Err("Smtp::new takes an SMTP config".into());
        };
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("notify.email.from {from:?}: {e}"))?;
        let mut params = TlsParameters::builder(host.clone());
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("notify.email.ca_file {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("notify.email.ca_file {}: {e}", ca.display()))?;
            params = params.add_root_certificate(cert);
        }
        let params = || {
            params
                .clone()
                .build_rustls()
                .map_err(|e| format!("notify.email TLS: {e}"))
        };
        let tls = match tls.as_str() {
            "starttls" => Tls::Required(params()?),
            "tls" => Tls::Wrapper(params()?),
            _ => Tls::None,
        };
        let mut b = SmtpTransport::builder_dangerous(host.as_str())
            .port(*port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(user) = username {
            b = b.credentials(Credentials::new(
                user.clone(),
                password.clone().unwrap_or_default(),
            ));
        }
        Ok(Smtp {
            transport: b.build(),
            from,
        })
    }

    /// The message for an envelope.
    pub fn message(&self, e: &Envelope<'_>) -> Result<Message, SendError> {
        let to =
            e.to.parse()
                .map(|a| Mailbox::new(e.name.map(str::to_owned), a))
                .map_err(|err| SendError::Permanent(format!("bad address: {err}")))?;
        let domain = self.from.email.domain().to_owned();
        let from = match e.sender {
            Some(name) => Mailbox::new(Some(name.to_owned()), self.from.email.clone()),
            None => self.from.clone(),
        };
        let mut m = Message::builder()
            .from(from)
            .to(to)
            .subject(e.rendered.subject.clone().unwrap_or_default())
            .message_id(Some(format!("<milepost.{}@{domain}>", e.id)))
            .header(ContentType::TEXT_PLAIN);
        if let Some(link) = e.unsubscribe {
            m = m
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{link}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        m.body(e.rendered.text.clone())
            .map_err(|err| SendError::Permanent(format!("message: {err}")))
    }
}

impl Adapter for Smtp {
    fn send(&self, e: &Envelope<'_>) -> Result<String, SendError> {
        let m = self.message(e)?;
        let id = format!("<milepost.{}>", e.id);
        match self.transport.send(&m) {
            Ok(_) => Ok(id),
            Err(err) if err.is_permanent() => Err(SendError::Permanent(format!("SMTP: {err}"))),
            Err(err) => Err(SendError::Retry {
                error: format!("SMTP: {err}"),
                after_ms: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::templates::Rendered;

    #[test]
    fn messages_carry_the_headers_and_no_injection() {
        let s = Smtp::new(
            &EmailConfig::Smtp {
                host: "127.0.0.1".into(),
                port: 25,
                tls: "none".into(),
                username: None,
                password: None,
                from: "Acme Deliveries <noreply@acme.example>".into(),
                ca_file: None,
            },
            Duration::from_secs(1),
        )
        .unwrap();
        let r = Rendered {
            subject: Some("Your parcel".into()),
            text: "Hello".into(),
            whatsapp: None,
        };
        let e = Envelope {
            id: 7,
            to: "ana@example.com",
            name: Some("Ana \"the boss\" Horvat"),
            rendered: &r,
            unsubscribe: Some("https://t.example/n/optout/abc"),
            sender: None,
        };
        let text = String::from_utf8(s.message(&e).unwrap().formatted()).unwrap();
        assert!(
            text.contains("Message-ID: <milepost.7@acme.example>"),
            "{text}"
        );
        assert!(text.contains("List-Unsubscribe: <https://t.example/n/optout/abc>"));
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(text.contains("Subject: Your parcel"));
        assert!(
            text.contains("From: \"Acme Deliveries\" <noreply@acme.example>"),
            "{text}"
        );
        // A carrier's sender name replaces the display name, never the address.
        let zeta = Envelope {
            sender: Some("Zeta Express"),
            ..e
        };
        let text = String::from_utf8(s.message(&zeta).unwrap().formatted()).unwrap();
        assert!(
            text.contains("From: \"Zeta Express\" <noreply@acme.example>"),
            "{text}"
        );
        let bad = Envelope {
            to: "ana@example.com\r\nBcc: x@evil.example",
            ..e
        };
        assert!(matches!(s.message(&bad), Err(SendError::Permanent(_))));
    }
}
