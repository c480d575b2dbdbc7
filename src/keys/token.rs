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

    /// The first 64 bits: what the in-memory set of existing keys holds. SHA-256 output is
    /// uniform, so two different keys share a prefix with odds of 2^-64 per pair, and a
    /// shared prefix only costs one PostgreSQL read, never a wrong answer.
    pub fn prefix64(&self) -> u64 {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        u64::from_be_bytes([a, b, c, d, e, f, g, h])
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

/// Why a presented key cannot be a virtual key, found from its shape alone (no lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// It does not start with `tg-` (e.g. a provider's key sent to the gateway).
    WrongPrefix,
    /// It has this many characters after `tg-` instead of 43 (a truncated copy).
    WrongLength(usize),
    /// Something other than a letter or digit follows `tg-`.
    NotBase62,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::WrongPrefix => write!(f, "it does not start with `{KEY_PREFIX}`"),
            Malformed::WrongLength(n) => {
                write!(
                    f,
                    "it has {n} characters after `{KEY_PREFIX}` instead of {RANDOM_CHARS}"
                )
            }
            Malformed::NotBase62 => write!(
                f,
                "it has a character other than a letter or digit after `{KEY_PREFIX}`"
            ),
        }
    }
}

/// What every virtual key looks like, for messages.
pub const KEY_SHAPE: &str = "`tg-` followed by 43 letters and digits";

/// Checks that `presented` has the shape of a virtual key (`tg-` + 43 base62 characters), so
/// anything else is refused before it is hashed or looked up.
pub fn check_shape(presented: &str) -> Result<(), Malformed> {
    let random = presented
        .strip_prefix(KEY_PREFIX)
        .ok_or(Malformed::WrongPrefix)?;
    // Counted in characters, not bytes, so the number in the message is the one people see.
    let chars = random.chars().count();
    if chars != RANDOM_CHARS {
        return Err(Malformed::WrongLength(chars));
    }
    if !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Malformed::NotBase62);
    }
    Ok(())
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
    fn generated_keys_have_the_checked_shape() {
        for _ in 0..100 {
            assert_eq!(check_shape(&NewKey::generate().secret), Ok(()));
        }
    }

    #[test]
    fn misshapen_keys_say_what_is_wrong() {
        let good = NewKey::generate().secret;
        assert_eq!(
            check_shape(&good.replacen("tg-", "sk-", 1)),
            Err(Malformed::WrongPrefix)
        );
        assert_eq!(check_shape("tg-abc"), Err(Malformed::WrongLength(3)));
        assert_eq!(
            check_shape(&good[..good.len() - 1]),
            Err(Malformed::WrongLength(42))
        );
        assert_eq!(
            check_shape(&format!("{good}x")),
            Err(Malformed::WrongLength(44))
        );
        let dashed = format!("tg-{}-", &good[3..45]);
        assert_eq!(check_shape(&dashed), Err(Malformed::NotBase62));
        // 43 characters, but not all ASCII: counted as characters, refused as not base62.
        let accented = format!("tg-{}é", &good[3..45]);
        assert_eq!(check_shape(&accented), Err(Malformed::NotBase62));
        assert!(
            Malformed::WrongLength(3)
                .to_string()
                .contains("3 characters after `tg-` instead of 43")
        );
    }

    #[test]
    fn prefix64_is_the_first_eight_bytes() {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(KeyHash(bytes).prefix64(), 0x0102_0304_0506_0708);
    }

    #[test]
    fn hex_round_trip() {
        let h = KeyHash::of("tg-x");
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(KeyHash::from_hex("zz"), None);
    }
}
