//! Building blocks of the crates' config sections: the error that names a key, a timeout and an
//! octal mode that check themselves, where a password comes from, and relative paths.
//!
//! Each task crate owns the TOML section it reads (`kyb_backup::BackupSection`, …): a
//! `serde::Deserialize` type with `Default` and a `validate()` that returns a [`FieldError`]
//! naming the key relative to the section. Whoever embeds the section (kyb-flows, a service)
//! prefixes the key with the section's own name with [`FieldError::under`].
//!
//! ```
//! use kyb_core::config::{FieldError, TimeoutMs};
//!
//! #[derive(serde::Deserialize)]
//! struct Probe {
//!     timeout_ms: TimeoutMs,
//! }
//! let probe: Probe = toml::from_str("timeout_ms = 2500").unwrap();
//! assert_eq!(probe.timeout_ms.get(), 2500);
//! assert!(toml::from_str::<Probe>("timeout_ms = 0").is_err());
//!
//! let err = FieldError::new("timeout_ms", "too short").under("app");
//! assert_eq!(err.key, "app.timeout_ms");
//! ```

use crate::Secret;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest deadline a config may give: a day. Anything longer is almost surely a unit mistake.
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// The largest password file read: anything bigger is not one.
pub const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

/// A value that parses but cannot be used, with the dotted key it was given under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (key `{key}`)")]
pub struct FieldError {
    /// The key, relative to the section that checked it: `timeout_ms`, `archive[1].name`.
    pub key: String,
    /// What is wrong, and what is expected instead.
    pub message: String,
}

impl FieldError {
    /// `message` about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { key: key.into(), message: message.into() }
    }

    /// The same error seen from the table holding the section: `table.key`.
    pub fn under(mut self, table: &str) -> FieldError {
        self.key = if self.key.is_empty() { table.to_owned() } else { format!("{table}.{}", self.key) };
        self
    }
}

/// `Err` unless `ms` is a usable deadline: 1 ms to [`MAX_TIMEOUT_MS`].
pub fn check_timeout_ms(key: &str, ms: u64) -> Result<(), FieldError> {
    if ms == 0 || ms > MAX_TIMEOUT_MS {
        return Err(FieldError::new(key, timeout_message(ms)));
    }
    Ok(())
}

fn timeout_message(ms: u64) -> String {
    format!("must be between 1 and {MAX_TIMEOUT_MS} milliseconds, got {ms}")
}

/// `p` made absolute against `base` (the config file's directory); an absolute `p` is kept.
pub fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_owned() } else { base.join(p) }
}

/// A deadline in milliseconds, 1 ms to [`MAX_TIMEOUT_MS`]: out-of-range values fail to
/// deserialize, so a section holding one never needs to check it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeoutMs(u64);

impl TimeoutMs {
    /// `ms` milliseconds; for defaults, checked when compiled.
    pub const fn ms(ms: u64) -> TimeoutMs {
        assert!(ms > 0 && ms <= MAX_TIMEOUT_MS, "timeout out of range");
        TimeoutMs(ms)
    }

    /// `ms`, or why it is not a usable deadline.
    pub fn new(ms: u64) -> Result<TimeoutMs, String> {
        if ms == 0 || ms > MAX_TIMEOUT_MS { Err(timeout_message(ms)) } else { Ok(TimeoutMs(ms)) }
    }

    /// The milliseconds.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// As a [`Duration`].
    pub const fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl<'de> Deserialize<'de> for TimeoutMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TimeoutMs::new(u64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for TimeoutMs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl JsonSchema for TimeoutMs {
    fn schema_name() -> Cow<'static, str> {
        "TimeoutMs".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS })
    }
}

/// A file mode written in octal, `"0640"` (or `"0o640"`), at most `07777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OctalMode(u32);

impl OctalMode {
    /// `mode`; for defaults, checked when compiled.
    pub const fn new(mode: u32) -> OctalMode {
        assert!(mode <= 0o7777, "mode out of range");
        OctalMode(mode)
    }

    /// The mode bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl std::str::FromStr for OctalMode {
    type Err = String;

    fn from_str(text: &str) -> Result<OctalMode, String> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        u32::from_str_radix(digits, 8)
            .ok()
            .filter(|m| !digits.is_empty() && *m <= 0o7777)
            .map(OctalMode)
            .ok_or_else(|| format!("must be an octal mode like \"0640\", got {text:?}"))
    }
}

impl<'de> Deserialize<'de> for OctalMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for OctalMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}

impl JsonSchema for OctalMode {
    fn schema_name() -> Cow<'static, str> {
        "OctalMode".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^(0o)?[0-7]{1,4}$" })
    }
}

/// Where a section's password comes from: at most one of its `password`, `password_env` and
/// `password_file` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `password`: the value itself.
    Inline(Secret),
    /// `password_env`: the name of an environment variable holding it.
    Env(String),
    /// `password_file`: a file whose content, one trailing newline dropped, is the password.
    File {
        /// The file (already resolved against the config file's directory).
        path: PathBuf,
        /// `allow_insecure_password_file`: accept a file group or others may read.
        allow_insecure: bool,
    },
}

impl SecretSource {
    /// The source the three keys name, None when none is given, `Err` (key `password`) when more
    /// than one is.
    pub fn from_keys(
        password: Option<&Secret>,
        password_env: Option<&str>,
        password_file: Option<&Path>,
        allow_insecure: bool,
    ) -> Result<Option<SecretSource>, FieldError> {
        match (password, password_env, password_file) {
            (None, None, None) => Ok(None),
            (Some(p), None, None) => Ok(Some(SecretSource::Inline(p.clone()))),
            (None, Some(var), None) => Ok(Some(SecretSource::Env(var.to_owned()))),
            (None, None, Some(path)) => {
                Ok(Some(SecretSource::File { path: path.to_owned(), allow_insecure }))
            }
            _ => {
                Err(FieldError::new("password", "give only one of password, password_env and password_file"))
            }
        }
    }

    /// The password: the inline value, the variable's value, or the file's content. A file must
    /// be regular, at most [`MAX_SECRET_FILE_BYTES`], UTF-8, and (as libpq requires of `.pgpass`)
    /// closed to group and others unless `allow_insecure`.
    pub fn read(&self) -> Result<Secret, FieldError> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::Env(var) => std::env::var(var).map(Secret::new).map_err(|_| {
                FieldError::new(
                    "password_env",
                    format!("environment variable {var} is not set (or not UTF-8)"),
                )
            }),
            SecretSource::File { path, allow_insecure } => read_secret_file(path, *allow_insecure),
        }
    }
}

fn read_secret_file(path: &Path, allow_insecure: bool) -> Result<Secret, FieldError> {
    let bad = |message: String| FieldError::new("password_file", message);
    let (bytes, meta) = crate::fs::read_regular(path, MAX_SECRET_FILE_BYTES)
        .map_err(|e| bad(format!("cannot read {}: {}", path.display(), crate::error_chain(&e))))?;
    let mode = std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777;
    if mode & 0o077 != 0 && !allow_insecure {
        return Err(bad(format!(
            "{} is open to group or others (mode {mode:04o}): run `chmod 600 {}`, or set \
             allow_insecure_password_file = true in this section",
            path.display(),
            path.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| bad(format!("{} is not UTF-8 text", path.display())))?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Debug, Deserialize)]
    struct Probe {
        timeout_ms: Option<TimeoutMs>,
        mode: Option<OctalMode>,
    }

    fn probe(text: &str) -> Result<Probe, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn timeouts_check_their_range_when_read() {
        assert_eq!(probe("timeout_ms = 1").unwrap().timeout_ms, Some(TimeoutMs::ms(1)));
        assert_eq!(probe("timeout_ms = 86400000").unwrap().timeout_ms.unwrap().get(), MAX_TIMEOUT_MS);
        for bad in ["0", "86400001"] {
            let err = probe(&format!("timeout_ms = {bad}")).unwrap_err();
            assert_eq!(err, format!("must be between 1 and 86400000 milliseconds, got {bad}"));
        }
        assert!(probe("timeout_ms = -1").is_err());
        assert_eq!(check_timeout_ms("a.timeout_ms", 0).unwrap_err().key, "a.timeout_ms");
    }

    #[test]
    fn modes_are_octal_strings() {
        assert_eq!(probe("mode = \"0640\"").unwrap().mode.unwrap().bits(), 0o640);
        assert_eq!(probe("mode = \"0o600\"").unwrap().mode.unwrap().bits(), 0o600);
        for bad in ["\"0999\"", "\"17777\"", "\"\"", "\"rw-r-----\""] {
            let err = probe(&format!("mode = {bad}")).unwrap_err();
            assert!(err.starts_with("must be an octal mode like \"0640\""), "{err}");
        }
        assert_eq!(
            toml::to_string(&std::collections::BTreeMap::from([("m", OctalMode::new(0o640))])).unwrap(),
            "m = \"0640\"\n"
        );
    }

    #[test]
    fn a_password_has_at_most_one_source() {
        let s = Secret::new("x");
        assert_eq!(SecretSource::from_keys(None, None, None, false).unwrap(), None);
        let err = SecretSource::from_keys(Some(&s), Some("VAR"), None, false).unwrap_err();
        assert_eq!(err.key, "password");
        assert!(err.message.contains("only one of"), "{err}");
        let src = SecretSource::from_keys(Some(&s), None, None, false).unwrap().unwrap();
        assert_eq!(src.read().unwrap().expose(), "x");
        let err = SecretSource::Env("KYB_SURELY_UNSET_VAR".into()).read().unwrap_err();
        assert_eq!(err.key, "password_env");
        assert!(err.message.contains("KYB_SURELY_UNSET_VAR is not set"), "{err}");
    }

    #[test]
    fn a_password_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "from-file\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = SecretSource::File { path: path.clone(), allow_insecure: false };
        assert_eq!(file.read().unwrap().expose(), "from-file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = file.read().unwrap_err();
        assert!(err.key == "password_file" && err.message.contains("chmod 600"), "{err}");
        let lax = SecretSource::File { path, allow_insecure: true };
        assert_eq!(lax.read().unwrap().expose(), "from-file");
    }
}
