//! Webhook signatures, as Stripe signs its webhooks: `x-tollgate-signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the rule's signing secret>`. The
//! timestamp is signed too, so a receiver that refuses old timestamps refuses replays.

use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::Sha256;

use crate::config::Secret;

pub const SIGNATURE_HEADER: &str = "x-tollgate-signature";
pub const EVENT_ID_HEADER: &str = "x-tollgate-event-id";

/// A new signing secret: `whsec_` and 40 random letters and digits (238 bits).
pub fn new_secret() -> Secret<String> {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    Secret::new(format!("whsec_{random}"))
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &Secret<String>, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &Secret<String>, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return Vec::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Checks a signature header as a receiver would (in constant time): used by the tests, and
/// a reference for receivers (docs/alerts.md has the same in Python).
pub fn verify(secret: &Secret<String>, header: &str, body: &[u8]) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signature = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return false;
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_or_time_does_not() {
        let secret = Secret::new("whsec_test".to_string());
        let header = signature(&secret, 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(&secret, &header, b"{\"a\":1}"));
        assert!(!verify(&secret, &header, b"{\"a\":2}"));
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify(&secret, &moved, b"{\"a\":1}"));
        assert!(!verify(&Secret::new("other".into()), &header, b"{\"a\":1}"));
        assert!(!verify(&secret, "garbage", b"{\"a\":1}"));
    }

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // HMAC-SHA256("key", "1.body"), computed independently with openssl:
        // printf '1.body' | openssl dgst -sha256 -hmac key
        let header = signature(&Secret::new("key".into()), 1, b"body");
        assert_eq!(
            header,
            "t=1,v1=91b5374b153842ad05b2c4eab9349b8321b14703165bd3fb8b034dfb8be98ae5"
        );
    }

    #[test]
    fn new_secrets_differ() {
        assert_ne!(new_secret().expose(), new_secret().expose());
        assert!(new_secret().expose().starts_with("whsec_"));
    }
}
