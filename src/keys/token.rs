//! Virtual key secrets: generation, hashing and the visible prefix.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Every virtual key starts with this, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "tg-";
/// 43 base62 characters carry 256 bits (43 × log2(62) ≈ 256.03): a key is as hard to guess as
/// 32 random bytes, the least a virtual key may carry.
const RANDOM_CHARS: usize = 43;
/// Characters after `tg-` kept in clear so people can tell keys apart.
const VISIBLE_CHARS: usize = 8;

/// The SHA-256 of a presented key: the only form in which keys are stored or cached.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn of(presented: &str) -> KeyHash {
        KeyHash(Sha256::digest(presented.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<KeyHash> {
        <[u8; 32]>::try_from(bytes).ok().map(KeyHash)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<KeyHash> {
        hex::decode(text).ok().and_then(|b| Self::from_slice(&b))
    }
}

// A hash is not the key, but it still identifies one; keep it out of logs too.
impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHash([redacted])")
    }
}

/// A newly generated key: the secret (shown once), its hash and its visible prefix.
pub struct NewKey {
    pub secret: String,
    pub hash: KeyHash,
    pub prefix: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl NewKey {
    pub fn generate() -> NewKey {
        let random: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(RANDOM_CHARS)
            .map(char::from)
            .collect();
        let secret = format!("{KEY_PREFIX}{random}");
        NewKey {
            hash: KeyHash::of(&secret),
            prefix: secret[..KEY_PREFIX.len() + VISIBLE_CHARS].to_string(),
            secret,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_base62_with_prefix_and_unique() {
        let a = NewKey::generate();
        let b = NewKey::generate();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("tg-"));
        assert_eq!(a.secret.len(), 3 + 43);
        assert!(a.secret[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.hash, KeyHash::of(&a.secret));
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn hex_round_trip() {
        let h = KeyHash::of("tg-x");
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(KeyHash::from_hex("zz"), None);
    }
}
