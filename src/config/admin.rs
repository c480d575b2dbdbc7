//! The `[admin]` table: how admin-API tokens are verified. Key files are read and parsed here,
//! at start-up, so a bad path or a bad key stops the gateway with the field named, and the
//! verifier built from this can no longer fail.

use std::fmt;
use std::path::Path;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};

use super::raw::RawAdmin;
use super::{ConfigError, ENV_ADMIN_JWT_SECRET, MIN_JWT_SECRET_LEN, Secret, Validator};

/// The algorithms an admin token may be signed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
        }
    }

    fn parse(text: &str) -> Option<JwtAlgorithm> {
        match text.trim().to_ascii_uppercase().as_str() {
            "HS256" => Some(JwtAlgorithm::Hs256),
            "RS256" => Some(JwtAlgorithm::Rs256),
            "ES256" => Some(JwtAlgorithm::Es256),
            _ => None,
        }
    }

    pub fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            JwtAlgorithm::Hs256 => jsonwebtoken::Algorithm::HS256,
            JwtAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            JwtAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

/// One key admin tokens may be verified with. `Debug` shows the algorithm and `kid` only: for
/// HS256 the key is the secret.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The JWKS `kid`; `None` for the HS256 secret or a PEM key.
    pub kid: Option<String>,
    pub algorithm: JwtAlgorithm,
    pub key: DecodingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// The HS256 secret (what `tollctl token mint` signs with); `None` when tokens are verified
    /// with a public key or a JWKS.
    pub jwt_secret: Option<Secret<String>>,
    /// At least one key. With a JWKS a token picks its key by `kid`.
    pub jwt_keys: Vec<VerifyingKey>,
    /// Required `iss`, when set.
    pub jwt_issuer: Option<String>,
    /// Required `aud` (one of the token's audiences), when set.
    pub jwt_audience: Option<String>,
    /// Clock-skew allowance on `exp` and `nbf`.
    pub jwt_leeway_secs: u64,
}

const DEFAULT_LEEWAY_SECS: u64 = 30;
/// A leeway longer than this makes `exp` meaningless; it is refused.
const MAX_LEEWAY_SECS: u64 = 600;

impl Validator<'_> {
    pub(super) fn admin(&self, raw: RawAdmin) -> Result<AdminConfig, ConfigError> {
        let explicit = match raw.jwt_algorithm.as_deref() {
            None => None,
            Some(text) => Some(JwtAlgorithm::parse(text).ok_or_else(|| {
                self.invalid(
                    "admin.jwt_algorithm",
                    format!("{text:?} is not supported"),
                    "use \"HS256\" (with jwt_secret), \"RS256\" or \"ES256\" (with jwt_public_key_file or jwks_file)",
                )
            })?),
        };
        if raw.jwt_public_key_file.is_some() && raw.jwks_file.is_some() {
            return Err(self.invalid(
                "admin.jwks_file",
                "set together with admin.jwt_public_key_file",
                "keep one of them: a single PEM key, or a JWKS whose keys tokens pick by `kid`",
            ));
        }
        let mut jwt_secret = None;
        let jwt_keys = match (&raw.jwt_public_key_file, &raw.jwks_file) {
            (Some(file), None) => {
                let algorithm = match explicit {
                    Some(a @ (JwtAlgorithm::Rs256 | JwtAlgorithm::Es256)) => a,
                    _ => {
                        return Err(self.invalid(
                            "admin.jwt_algorithm",
                            format!(
                                "{} does not use admin.jwt_public_key_file",
                                explicit.map_or("HS256 (the default)", JwtAlgorithm::as_str)
                            ),
                            "set jwt_algorithm = \"RS256\" or \"ES256\" to match the key, or remove jwt_public_key_file to use jwt_secret",
                        ));
                    }
                };
                vec![self.pem_key(file, algorithm)?]
            }
            (None, Some(file)) => {
                if explicit == Some(JwtAlgorithm::Hs256) {
                    return Err(self.invalid(
                        "admin.jwt_algorithm",
                        "HS256 does not use admin.jwks_file",
                        "set jwt_algorithm = \"RS256\" or \"ES256\", or remove it to accept every key of the JWKS",
                    ));
                }
                self.jwks(file, explicit)?
            }
            _ => {
                if let Some(a @ (JwtAlgorithm::Rs256 | JwtAlgorithm::Es256)) = explicit {
                    return Err(self.invalid(
                        "admin.jwt_public_key_file",
                        format!("not set, and jwt_algorithm is {}", a.as_str()),
                        "point it at the PEM public key that verifies the tokens, or set admin.jwks_file",
                    ));
                }
                let secret = self.jwt_secret(raw.jwt_secret)?;
                let key = DecodingKey::from_secret(secret.expose().as_bytes());
                jwt_secret = Some(secret);
                vec![VerifyingKey {
                    kid: None,
                    algorithm: JwtAlgorithm::Hs256,
                    key,
                }]
            }
        };
        let non_empty = |field: &str, value: Option<String>| match value {
            Some(v) if v.trim().is_empty() => Err(self.invalid(
                field,
                "is empty",
                "remove it to skip the check, or give the expected value",
            )),
            other => Ok(other),
        };
        let jwt_issuer = non_empty("admin.jwt_issuer", raw.jwt_issuer)?;
        let jwt_audience = non_empty("admin.jwt_audience", raw.jwt_audience)?;
        let jwt_leeway_secs = raw.jwt_leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS);
        if jwt_leeway_secs > MAX_LEEWAY_SECS {
            return Err(self.invalid(
                "admin.jwt_leeway_secs",
                format!("{jwt_leeway_secs} is more than {MAX_LEEWAY_SECS}"),
                format!("allow for clock skew only (default {DEFAULT_LEEWAY_SECS}); issue longer-lived tokens instead"),
            ));
        }
        Ok(AdminConfig {
            jwt_secret,
            jwt_keys,
            jwt_issuer,
            jwt_audience,
            jwt_leeway_secs,
        })
    }

    fn jwt_secret(
        &self,
        file_value: Option<Secret<String>>,
    ) -> Result<Secret<String>, ConfigError> {
        let secret = self
            .env_or(ENV_ADMIN_JWT_SECRET, file_value.map(|s| s.expose().clone()))
            .ok_or_else(|| {
                self.invalid(
                    "admin.jwt_secret",
                    "not set",
                    format!("set {ENV_ADMIN_JWT_SECRET} to a random string of at least {MIN_JWT_SECRET_LEN} characters (or configure jwt_public_key_file / jwks_file)"),
                )
            })?;
        if secret.len() < MIN_JWT_SECRET_LEN {
            return Err(self.invalid(
                "admin.jwt_secret",
                format!("shorter than {MIN_JWT_SECRET_LEN} characters"),
                "use a longer random secret, e.g. `openssl rand -hex 32`",
            ));
        }
        Ok(Secret::new(secret))
    }

    fn read(&self, field: &str, file: &Path) -> Result<Vec<u8>, ConfigError> {
        std::fs::read(file).map_err(|e| {
            self.invalid(
                field,
                format!("cannot read {}: {e}", file.display()),
                "check the path (a relative path is taken from the working directory) and that the gateway may read it",
            )
        })
    }

    fn pem_key(&self, file: &Path, algorithm: JwtAlgorithm) -> Result<VerifyingKey, ConfigError> {
        const FIELD: &str = "admin.jwt_public_key_file";
        let pem = self.read(FIELD, file)?;
        if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
            return Err(self.invalid(
                FIELD,
                format!("{} holds a private key", file.display()),
                "configure the public key only: `openssl pkey -in private.pem -pubout -out public.pem`",
            ));
        }
        let (key, kind) = match algorithm {
            JwtAlgorithm::Es256 => (DecodingKey::from_ec_pem(&pem), "an EC (P-256)"),
            _ => (DecodingKey::from_rsa_pem(&pem), "an RSA"),
        };
        let key = key.map_err(|_| {
            self.invalid(
                FIELD,
                format!(
                    "{} is not {kind} public key in PEM form (jwt_algorithm is {})",
                    file.display(),
                    algorithm.as_str()
                ),
                "give a `-----BEGIN PUBLIC KEY-----` file matching jwt_algorithm (`openssl pkey -pubout` writes one)",
            )
        })?;
        Ok(VerifyingKey {
            kid: None,
            algorithm,
            key,
        })
    }

    /// The signing keys of a JWKS. Keys this gateway cannot use (encryption keys, other
    /// algorithms or curves) are skipped, as an identity provider's set often holds some;
    /// a set with no usable key is refused.
    fn jwks(
        &self,
        file: &Path,
        only: Option<JwtAlgorithm>,
    ) -> Result<Vec<VerifyingKey>, ConfigError> {
        const FIELD: &str = "admin.jwks_file";
        let text = self.read(FIELD, file)?;
        let not_jwks = |problem: String| {
            self.invalid(
                FIELD,
                format!("{}: {problem}", file.display()),
                "give a JWKS: {\"keys\": [{\"kty\": \"RSA\", \"kid\": \"...\", \"n\": \"...\", \"e\": \"AQAB\"}, ...]}",
            )
        };
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| not_jwks(format!("not JSON ({e})")))?;
        let entries = value
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| not_jwks("no `keys` array".into()))?;
        let mut keys: Vec<VerifyingKey> = Vec::new();
        for entry in entries {
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                continue;
            };
            let Some(key) = usable(&jwk, only) else {
                continue;
            };
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(not_jwks(match &key.kid {
                    Some(kid) => format!("two keys with kid {kid:?}"),
                    None => "two keys without a kid".into(),
                }));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(not_jwks(format!(
                "no usable signing key ({} accepted: RSA keys for RS256, P-256 EC keys for ES256)",
                only.map_or("RS256 or ES256", JwtAlgorithm::as_str)
            )));
        }
        if keys.len() > 1 && keys.iter().any(|k| k.kid.is_none()) {
            return Err(not_jwks(
                "a key without a `kid` in a set of several: tokens could not name it".into(),
            ));
        }
        Ok(keys)
    }
}

/// The key a JWK describes, if it is a signing key of an algorithm this gateway verifies.
fn usable(jwk: &Jwk, only: Option<JwtAlgorithm>) -> Option<VerifyingKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => JwtAlgorithm::Rs256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            JwtAlgorithm::Es256
        }
        _ => return None,
    };
    if only.is_some_and(|a| a != algorithm) {
        return None;
    }
    Some(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::{Config, ConfigError};
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn parse(admin: &str) -> Result<Config, ConfigError> {
        let text = format!("database_url = \"postgres://localhost/db\"\n[admin]\n{admin}\n");
        Config::from_toml_str("tollgate.toml", &text, &|_| None)
    }

    fn error(admin: &str) -> String {
        parse(admin).unwrap_err().to_string()
    }

    #[test]
    fn hs256_is_the_default_and_keeps_the_secret() {
        let config = parse(&format!("jwt_secret = \"{SECRET}\"")).unwrap();
        let admin = config.admin;
        assert_eq!(admin.jwt_keys.len(), 1);
        assert_eq!(admin.jwt_keys[0].algorithm, JwtAlgorithm::Hs256);
        assert_eq!(admin.jwt_leeway_secs, 30);
        assert_eq!(
            admin.jwt_secret.as_ref().map(|s| s.expose().as_str()),
            Some(SECRET)
        );
        assert!(!format!("{admin:?}").contains(SECRET));
    }

    #[test]
    fn public_keys_and_jwks_load() {
        let rs = parse(&format!(
            "jwt_algorithm = \"RS256\"\njwt_public_key_file = \"{}\"\njwt_issuer = \"idp\"\njwt_audience = \"gw\"\njwt_leeway_secs = 5",
            fixture("test-only-rs256-public.pem")
        ))
        .unwrap()
        .admin;
        assert_eq!(rs.jwt_keys[0].algorithm, JwtAlgorithm::Rs256);
        assert_eq!(rs.jwt_secret, None);
        assert_eq!(
            (rs.jwt_issuer.as_deref(), rs.jwt_audience.as_deref()),
            (Some("idp"), Some("gw"))
        );
        let es = parse(&format!(
            "jwt_algorithm = \"es256\"\njwt_public_key_file = \"{}\"",
            fixture("test-only-es256-public.pem")
        ))
        .unwrap()
        .admin;
        assert_eq!(es.jwt_keys[0].algorithm, JwtAlgorithm::Es256);
        let jwks = parse(&format!(
            "jwks_file = \"{}\"",
            fixture("test-only-jwks.json")
        ))
        .unwrap()
        .admin;
        let kids: Vec<_> = jwks.jwt_keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("test-rsa"), Some("test-ec")]);
        let only_ec = parse(&format!(
            "jwt_algorithm = \"ES256\"\njwks_file = \"{}\"",
            fixture("test-only-jwks.json")
        ))
        .unwrap()
        .admin;
        assert_eq!(only_ec.jwt_keys.len(), 1);
    }

    #[test]
    fn mistakes_name_the_field_the_file_and_the_fix() {
        let missing =
            error("jwt_algorithm = \"RS256\"\njwt_public_key_file = \"/nonexistent/key.pem\"");
        assert!(
            missing.contains("field `admin.jwt_public_key_file`")
                && missing.contains("/nonexistent/key.pem")
                && missing.contains("check the path"),
            "{missing}"
        );
        let private = error(&format!(
            "jwt_algorithm = \"RS256\"\njwt_public_key_file = \"{}\"",
            fixture("test-only-rs256-private.pem")
        ));
        assert!(
            private.contains("private key") && private.contains("-pubout"),
            "{private}"
        );
        let mismatch = error(&format!(
            "jwt_algorithm = \"ES256\"\njwt_public_key_file = \"{}\"",
            fixture("test-only-rs256-public.pem")
        ));
        assert!(
            mismatch.contains("not an EC (P-256) public key"),
            "{mismatch}"
        );
        let hs_with_key = error(&format!(
            "jwt_secret = \"{SECRET}\"\njwt_public_key_file = \"{}\"",
            fixture("test-only-rs256-public.pem")
        ));
        assert!(
            hs_with_key.contains("field `admin.jwt_algorithm`"),
            "{hs_with_key}"
        );
        assert!(error("jwt_algorithm = \"RS256\"").contains("field `admin.jwt_public_key_file`"));
        assert!(error("jwt_algorithm = \"none\"").contains("is not supported"));
        assert!(
            error(&format!(
                "jwt_public_key_file = \"a.pem\"\njwks_file = \"{}\"",
                fixture("test-only-jwks.json")
            ))
            .contains("field `admin.jwks_file`")
        );
        let not_jwks = error(&format!("jwks_file = \"{}\"", fixture("README.md")));
        assert!(not_jwks.contains("not JSON"), "{not_jwks}");
        assert!(
            error(&format!(
                "jwt_secret = \"{SECRET}\"\njwt_leeway_secs = 86400"
            ))
            .contains("field `admin.jwt_leeway_secs`")
        );
        assert!(
            error(&format!("jwt_secret = \"{SECRET}\"\njwt_audience = \" \""))
                .contains("field `admin.jwt_audience`")
        );
        assert!(error("").contains("field `admin.jwt_secret`: not set"));
    }

    #[test]
    fn a_jwks_without_usable_keys_is_refused() {
        let dir = std::env::temp_dir().join(format!("tg-jwks-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jwks.json");
        std::fs::write(
            &file,
            r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}, {"kty": "RSA", "use": "enc", "kid": "e", "n": "AQAB", "e": "AQAB"}]}"#,
        )
        .unwrap();
        let message = error(&format!("jwks_file = \"{}\"", file.display()));
        assert!(message.contains("no usable signing key"), "{message}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
