//! Amazon Bedrock deployments: the region their requests are signed for, and the AWS
//! credentials they are signed with, from the standard environment variables or a profile of
//! the shared credentials file.

use super::{ConfigError, Secret, Validator};

/// AWS credentials for SigV4. The secrets never reach `Debug`.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Option<Secret<String>>,
    /// Where they came from, for messages (`AWS_ACCESS_KEY_ID`, `profile "eval"`).
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct BedrockOptions {
    pub region: String,
    pub credentials: AwsCredentials,
}

impl Validator<'_> {
    /// The Bedrock options of deployment `index`: `region` is required; the credentials come
    /// from `aws_profile` when it is set, else from `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), else from `AWS_PROFILE` or the
    /// `default` profile.
    pub(super) fn bedrock_options(
        &self,
        index: usize,
        region: Option<String>,
        profile: Option<String>,
    ) -> Result<BedrockOptions, ConfigError> {
        let field = |name: &str| format!("deployments[{index}].{name}");
        let region = region
            .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        let Some(region) = region else {
            return Err(self.invalid(
                &field("region"),
                "is missing or not an AWS region",
                "set the region the Bedrock endpoint is in, e.g. region = \"us-east-1\"",
            ));
        };
        let from_env = || {
            let id = self.env_var("AWS_ACCESS_KEY_ID")?;
            let secret = self.env_var("AWS_SECRET_ACCESS_KEY")?;
            Some(AwsCredentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: self.env_var("AWS_SESSION_TOKEN").map(Secret::new),
                source: "AWS_ACCESS_KEY_ID".into(),
            })
        };
        let credentials = match profile {
            Some(name) => self.profile(&field("aws_profile"), &name)?,
            None => match from_env() {
                Some(credentials) => credentials,
                None => {
                    let name = self
                        .env_var("AWS_PROFILE")
                        .unwrap_or_else(|| "default".into());
                    self.profile(&field("aws_profile"), &name)?
                }
            },
        };
        Ok(BedrockOptions {
            region,
            credentials,
        })
    }

    fn env_var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }

    /// Reads profile `name` of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
    /// else `~/.aws/credentials`).
    fn profile(&self, field: &str, name: &str) -> Result<AwsCredentials, ConfigError> {
        let path = self.env_var("AWS_SHARED_CREDENTIALS_FILE").or_else(|| {
            self.env_var("HOME")
                .map(|home| format!("{home}/.aws/credentials"))
        });
        let missing = || {
            self.invalid(
                field,
                format!("no AWS credentials: AWS_ACCESS_KEY_ID is not set and profile {name:?} is not in the shared credentials file"),
                "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set aws_profile to a profile of ~/.aws/credentials (or AWS_SHARED_CREDENTIALS_FILE)",
            )
        };
        let text = path
            .and_then(|p| std::fs::read_to_string(p).ok())
            .ok_or_else(missing)?;
        let values = profile_values(&text, name).ok_or_else(missing)?;
        let get = |key: &str| {
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        };
        let (Some(id), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key"))
        else {
            return Err(missing());
        };
        Ok(AwsCredentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: get("aws_session_token").map(Secret::new),
            source: format!("profile {name:?}"),
        })
    }
}

/// The `key = value` lines of section `[name]` of an INI-style credentials file.
fn profile_values<'a>(text: &'a str, name: &str) -> Option<Vec<(&'a str, &'a str)>> {
    let mut in_section = false;
    let mut found = false;
    let mut values = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = section.trim() == name;
            found |= in_section;
            continue;
        }
        if in_section && let Some((key, value)) = line.split_once('=') {
            values.push((key.trim(), value.trim()));
        }
    }
    found.then_some(values)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::profile_values;

    #[test]
    fn a_profile_is_read_from_its_section_only() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n# note\n[eval]\naws_access_key_id=C\naws_secret_access_key = D\naws_session_token = E\n";
        assert_eq!(
            profile_values(text, "eval").unwrap(),
            [
                ("aws_access_key_id", "C"),
                ("aws_secret_access_key", "D"),
                ("aws_session_token", "E")
            ]
        );
        assert_eq!(profile_values(text, "default").unwrap().len(), 2);
        assert!(profile_values(text, "other").is_none());
    }
}
