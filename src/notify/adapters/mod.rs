//! Adapters: how a rendered message reaches a provider. E-mail over SMTP ([`smtp`]), SMS
//! through a Twilio-compatible API ([`twilio`]), WhatsApp through a Cloud-API-compatible API
//! ([`whatsapp`]), and a `log` adapter for development that writes the message to the
//! gateway's log (its text, never the address). Each answers the provider's id of the message,
//! or says whether a failure is worth retrying.

pub mod http;
pub mod provider;
pub mod set;
pub mod smtp;
pub mod twilio;
pub mod whatsapp;
