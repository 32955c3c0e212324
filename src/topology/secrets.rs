//! Secrets in `kafka.properties`: referenced, resolved at load, never printed.
//!
//! A topology file is configuration that gets reviewed, copied and committed,
//! so it must not hold a password. A property value may instead reference
//! one: `"${KAFKA_PASSWORD}"` (an environment variable) or
//! `"file:/run/secrets/kafka"` (a file's contents, trailing newline
//! trimmed; a relative path is relative to the topology file). Keys that
//! carry secrets (`sasl.password`, `ssl.key.password`, `ssl.key.pem`,
//! `sasl.oauthbearer.client.secret`, ... see [`is_sensitive`]) must be
//! references; a literal is a topology problem.
//!
//! [`KafkaProperties`] keeps both forms: it dereferences to the *resolved*
//! map, which only goes to librdkafka, while `Debug` and `Serialize` (the
//! audit log's config snapshot, `check`) show the references with every
//! sensitive value replaced by `<redacted>`. Every resolved secret is also
//! registered with [`scrub`], which the log writer applies to each line, so
//! a secret echoed back inside a library's error text is redacted too.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// Whether a librdkafka property carries a secret (passwords, private keys,
/// OAuth client secrets and their configuration strings).
pub fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("passphrase")
        || k == "sasl.oauthbearer.config"
        || k == "sasl.jaas.config"
        || (k.contains("key") && (k.ends_with(".pem") || k.ends_with("_pem")))
        || k == "ssl_key"
}

/// How a value is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference<'a> {
    Literal(&'a str),
    /// `${NAME}`.
    Env(&'a str),
    /// `file:PATH`.
    File(&'a str),
}

/// Reads a property value's form.
pub fn reference(value: &str) -> Reference<'_> {
    if let Some(name) = value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        Reference::Env(name)
    } else if let Some(path) = value.strip_prefix("file:") {
        Reference::File(path)
    } else {
        Reference::Literal(value)
    }
}

/// Why a property could not be resolved. Never holds the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "kafka.properties.{key}: a secret must not be written in the topology file; reference it as \"${{ENV_VAR}}\" or \"file:/path\""
    )]
    Inline { key: String },
    #[error(
        "kafka.properties.{key}: environment variable {var} is not set (referenced as \"${{{var}}}\")"
    )]
    EnvMissing { key: String, var: String },
    #[error("kafka.properties.{key}: cannot read secret file {path}: {reason}")]
    File {
        key: String,
        path: String,
        reason: String,
    },
}

/// Resolves one value (`base`: directory for relative `file:` paths).
pub fn resolve(key: &str, value: &str, base: &Path) -> Result<String, SecretError> {
    match reference(value) {
        Reference::Literal(v) if is_sensitive(key) => {
            let _ = v;
            Err(SecretError::Inline { key: key.into() })
        }
        Reference::Literal(v) => Ok(v.to_string()),
        Reference::Env(var) => std::env::var(var).map_err(|_| SecretError::EnvMissing {
            key: key.into(),
            var: var.into(),
        }),
        Reference::File(path) => {
            let full = base.join(path);
            std::fs::read_to_string(&full)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| SecretError::File {
                    key: key.into(),
                    path: full.display().to_string(),
                    // The kind only: an io::Error's text never holds contents,
                    // but keep it short and stable.
                    reason: e.kind().to_string(),
                })
        }
    }
}

/// `kafka.properties`: references as written, values as resolved.
#[derive(Clone, Default, PartialEq)]
pub struct KafkaProperties {
    raw: BTreeMap<String, String>,
    resolved: BTreeMap<String, String>,
    errors: Vec<SecretError>,
}

impl KafkaProperties {
    /// Resolves every value of `raw` (relative `file:` paths against `base`).
    pub fn new(raw: BTreeMap<String, String>, base: &Path) -> KafkaProperties {
        let mut p = KafkaProperties {
            raw,
            ..Default::default()
        };
        p.rebase(base);
        p
    }

    /// Resolves again with relative `file:` paths against `base` (the
    /// topology file's directory once it is known).
    pub fn rebase(&mut self, base: &Path) {
        self.resolved.clear();
        self.errors.clear();
        for (k, v) in &self.raw {
            match resolve(k, v, base) {
                Ok(value) => {
                    if is_sensitive(k) || !matches!(reference(v), Reference::Literal(_)) {
                        register_secret(&value);
                    }
                    self.resolved.insert(k.clone(), value);
                }
                Err(e) => self.errors.push(e),
            }
        }
    }

    /// Sets one property (as a topology file would write it) and resolves it.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.raw.insert(key.into(), value.into());
        self.rebase(Path::new("."));
    }

    /// The properties as written, sensitive values replaced by `<redacted>`
    /// (references are shown as they are written: they name, not hold, a secret).
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.raw
            .iter()
            .map(|(k, v)| {
                let shown = match reference(v) {
                    Reference::Literal(_) if is_sensitive(k) => REDACTED.to_string(),
                    _ => v.clone(),
                };
                (k.clone(), shown)
            })
            .collect()
    }

    /// One line per unusable value, for the topology's problem list.
    pub fn problems(&self) -> Vec<String> {
        self.errors.iter().map(ToString::to_string).collect()
    }

    /// The keys as written.
    pub fn raw_keys(&self) -> impl Iterator<Item = &String> {
        self.raw.keys()
    }
}

impl std::ops::Deref for KafkaProperties {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.resolved
    }
}

impl std::fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

impl Serialize for KafkaProperties {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(s)
    }
}

impl<'de> Deserialize<'de> for KafkaProperties {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        Ok(KafkaProperties::new(raw, Path::new(".")))
    }
}

impl From<BTreeMap<String, String>> for KafkaProperties {
    fn from(raw: BTreeMap<String, String>) -> Self {
        KafkaProperties::new(raw, Path::new("."))
    }
}

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers a resolved secret so [`scrub`] removes it from log lines.
/// Values shorter than 4 characters are not registered (they would redact
/// ordinary words; no real secret is that short).
pub fn register_secret(value: &str) {
    if value.chars().count() < 4 {
        return;
    }
    let mut s = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|v| v == value) {
        s.push(value.to_string());
        // Longest first, so a secret containing another is redacted whole.
        s.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }
}

/// `text` with every registered secret replaced by `<redacted>`.
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    let s = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|v| text.contains(v.as_str())) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for v in s.iter() {
        out = out.replace(v.as_str(), REDACTED);
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)], base: &Path) -> KafkaProperties {
        KafkaProperties::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            base,
        )
    }

    #[test]
    fn sensitive_keys_are_recognised() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
        ] {
            assert!(is_sensitive(k), "{k}");
        }
        for k in [
            "sasl.username",
            "security.protocol",
            "ssl.ca.location",
            "ssl.certificate.pem",
            "sasl.mechanism",
        ] {
            assert!(!is_sensitive(k), "{k}");
        }
    }

    #[test]
    fn env_and_file_references_resolve_and_print_redacted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret-from-file\n").unwrap();
        // SAFETY: the variable name is unique to this test.
        unsafe { std::env::set_var("RESYNTH_TEST_SECRET_ENV_1", "s3cret-from-env") };
        let p = props(
            &[
                ("sasl.password", "file:pw"),
                ("ssl.key.password", "${RESYNTH_TEST_SECRET_ENV_1}"),
                ("sasl.username", "resynth"),
            ],
            dir.path(),
        );
        assert!(p.problems().is_empty(), "{:?}", p.problems());
        assert_eq!(p["sasl.password"], "s3cret-from-file");
        assert_eq!(p["ssl.key.password"], "s3cret-from-env");
        assert_eq!(p["sasl.username"], "resynth");
        let shown = format!(
            "{p:?} {} {}",
            serde_json::to_string(&p).unwrap(),
            toml::to_string(&p).unwrap()
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("${RESYNTH_TEST_SECRET_ENV_1}"), "{shown}");
        assert_eq!(
            scrub("auth failed with password s3cret-from-file (s3cret-from-env)"),
            "auth failed with password <redacted> (<redacted>)"
        );
    }

    #[test]
    fn inline_secrets_and_unresolvable_references_are_problems() {
        let p = props(
            &[
                ("sasl.password", "hunter22-inline"),
                ("ssl.key.password", "${RESYNTH_TEST_SECRET_UNSET_VAR}"),
                ("ssl.keystore.password", "file:/nonexistent/resynth/pw"),
            ],
            Path::new("."),
        );
        let problems = p.problems().join("\n");
        assert_eq!(p.problems().len(), 3, "{problems}");
        assert!(problems.contains("kafka.properties.sasl.password: a secret must not be written"));
        assert!(problems.contains("RESYNTH_TEST_SECRET_UNSET_VAR is not set"));
        assert!(problems.contains("/nonexistent/resynth/pw"));
        assert!(!problems.contains("hunter22"), "{problems}");
        assert!(!format!("{p:?}").contains("hunter22"));
        assert!(p.get("sasl.password").is_none());
    }
}
