//! This gateway as a member of the cluster: its default node name, and the keys every gateway
//! derives alike from the shared secret (TLS tickets, stateless resets, address tokens).

/// This gateway's default name: the host name and the UDP port.
pub fn default_node(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_else(|_| "gw".into())
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(24)
        .collect::<String>();
    format!("{host}-{port}")
}

/// A key derived from the shared secret for `purpose` (TLS tickets, stateless resets): every
/// gateway of a cluster derives the same one.
pub fn derive_key(secret: &[u8], purpose: &str) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, format!("milepost cluster key: {purpose}").as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_purpose_and_agree_across_gateways() {
        let a = derive_key(b"s3cret", "reset");
        assert_eq!(a, derive_key(b"s3cret", "reset"));
        assert_ne!(a, derive_key(b"s3cret", "ticket"));
        assert_ne!(a, derive_key(b"other", "reset"));
    }
}
