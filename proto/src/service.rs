//! What protocol version 2 adds for recipients and drivers: a recipient's change to a parcel's
//! delivery (another slot, a neighbour, a pickup point, a safe place) and the short message
//! thread between a parcel's recipient and its driver. Version-1 peers never meet these values
//! (PROTOCOL.md, "Version 2").

use serde::{Deserialize, Serialize};

use crate::route::TimeWindow;

/// Longest message between a recipient and a driver, bytes.
pub const MAX_MESSAGE: usize = 500;

/// Longest text field of a [`DeliveryChange`], bytes.
pub const MAX_CHANGE_FIELD: usize = 200;

/// A change a parcel's recipient made to its delivery.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryChange {
    /// Deliver in another slot (another day, or later today): the parcel leaves today's route.
    Reschedule {
        /// The slot chosen, UTC ms.
        window: TimeWindow,
    },
    /// Leave it with a neighbour.
    Neighbour {
        /// The neighbour's name.
        name: String,
        /// Where the neighbour lives, in words ("no. 14, second floor").
        address: String,
    },
    /// Take it to a pickup point instead: the parcel leaves today's door delivery.
    PickupPoint {
        /// The carrier's id of the point.
        id: String,
        /// Its name, as the recipient saw it.
        name: String,
    },
    /// Leave it unattended at a safe place, on the recipient's authority.
    SafePlace {
        /// Where ("behind the blue gate").
        place: String,
    },
}

impl DeliveryChange {
    /// Whether the change takes the parcel off the route it is on (the driver does not deliver
    /// it at the door today).
    pub fn withdraws(&self) -> bool {
        matches!(
            self,
            DeliveryChange::Reschedule { .. } | DeliveryChange::PickupPoint { .. }
        )
    }

    /// Checks the change's own fields: text 1 to [`MAX_CHANGE_FIELD`] bytes without control
    /// characters, a window that ends after it starts. Whether a slot or a pickup point is
    /// offered is the server's policy, checked beside.
    ///
    /// # Errors
    /// The name of the field at fault and why.
    pub fn check(&self) -> Result<(), String> {
        let text = |name: &str, v: &str| match valid_text(v, MAX_CHANGE_FIELD) {
            true => Ok(()),
            false => Err(format!(
                "{name} must be 1 to {MAX_CHANGE_FIELD} bytes of text without control characters"
            )),
        };
        match self {
            DeliveryChange::Reschedule { window } if window.end_ms <= window.start_ms => {
                Err("window must end after it starts".into())
            }
            DeliveryChange::Reschedule { .. } => Ok(()),
            DeliveryChange::Neighbour { name, address } => {
                text("name", name)?;
                text("address", address)
            }
            DeliveryChange::PickupPoint { id, name } => {
                text("id", id)?;
                text("name", name)
            }
            DeliveryChange::SafePlace { place } => text("place", place),
        }
    }
}

/// Who wrote a message of a parcel's thread.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageFrom {
    /// The parcel's recipient.
    Recipient,
    /// The driver of the parcel's route.
    Driver,
}

/// Text of 1 to `max` bytes, not blank, without control characters other than line breaks.
pub fn valid_text(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.len() <= max && s.chars().all(|c| !c.is_control() || c == '\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_fields() {
        let ok = DeliveryChange::SafePlace {
            place: "behind the gate".into(),
        };
        assert!(ok.check().is_ok());
        assert!(!ok.withdraws());
        let bad = DeliveryChange::Neighbour {
            name: "Ana\r\nBcc: x@y".into(),
            address: "14".into(),
        };
        assert!(bad.check().unwrap_err().starts_with("name"));
        let long = DeliveryChange::SafePlace {
            place: "x".repeat(MAX_CHANGE_FIELD + 1),
        };
        assert!(long.check().is_err());
        let back = DeliveryChange::Reschedule {
            window: TimeWindow {
                start_ms: 10,
                end_ms: 10,
            },
        };
        assert!(back.check().is_err());
        assert!(back.withdraws());
    }

    #[test]
    fn message_text() {
        assert!(valid_text("gate code 1234\nthanks", MAX_MESSAGE));
        assert!(!valid_text("  ", MAX_MESSAGE));
        assert!(!valid_text("a\u{7}b", MAX_MESSAGE));
        assert!(!valid_text(&"x".repeat(MAX_MESSAGE + 1), MAX_MESSAGE));
    }
}
