//! Notifications: recipients are told of their parcel's milestones ("out for delivery", "3
//! stops away", "arriving soon", "delivered", "attempt failed", "returned", "running late")
//! by e-mail, SMS or WhatsApp, and dispatchers of the alerts they ask for, from inside the
//! gateway.
//!
//! - [`contact`]: recipients' contacts (personal data: only in [`store`], masked to
//!   dispatchers, erased with the history or on request);
//! - [`plan`]: the rules without I/O (which events are milestones, once-keys, timely, quiet
//!   hours, backoff);
//! - [`templates`]: per milestone, channel and locale, checked at start-up;
//! - [`compose`]: a milestone becomes messages; [`outbox`]: the durable queue's thread;
//!   [`handle`]: what the gateway holds of it; [`run`]: its threads;
//! - [`journal`]: every write to the store as an operation, and the journal that carries
//!   them to every gateway of a cluster (where one gateway at a time sends);
//! - [`adapters`]: SMTP, Twilio, WhatsApp Cloud, log; [`optout`]: signed opt-out links;
//! - [`config`]: the `[notify]` section.
//!
//! Durability: the messages of a milestone, its once-key and the moved cursor are one
//! transaction of `notify.redb`, so a restart (even `kill -9`) neither loses a milestone's
//! messages nor queues them twice; a queued message is deleted in the transaction that
//! records the provider's answer. The one repeat left is a message whose request reached the
//! provider while the gateway died before recording the answer: sent again after the restart
//! (e-mails keep their `Message-ID`, so a mail system can drop the copy).

pub mod adapters;
pub mod compose;
pub mod config;
pub mod contact;
pub mod handle;
pub mod journal;
pub mod optout;
pub mod outbox;
pub mod plan;
pub mod run;
pub mod store;
pub mod templates;

pub use config::NotifyConfig;
pub use handle::Notify;
