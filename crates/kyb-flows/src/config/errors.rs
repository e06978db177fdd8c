//! What is wrong with a config file, said as `file:line:column`, the key, and what to do.

use kyb_core::config::FieldError;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used. Every variant names the file; those about its content
/// give `file:line:column`, the key where known, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read, or is not a regular file of at most [`MAX_FILE_BYTES`].
    #[error("{path}: cannot read config file")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kyb_core::fs::ReadError,
    },
    /// The file is not UTF-8 TOML, or does not fit the schema.
    #[error("{path}:{line}:{column}: {message}{}; {hint}", key_note(key))]
    Parse {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The dotted key, when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// A value parses but cannot be used.
    #[error("{path}:{line}:{column}: {message}{}", key_note(&Some(key.clone())))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the key; of its table, or 1, when the key is not in the file.
        line: usize,
        /// 1-based column of the key.
        column: usize,
        /// The dotted key.
        key: String,
        /// What is wrong, and what is expected instead.
        message: String,
    },
}

impl ConfigError {
    /// `(line, column)` in the file, for errors about its content.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Parse { line, column, .. } | ConfigError::Invalid { line, column, .. } => {
                Some((*line, *column))
            }
        }
    }
}

/// The largest config file read: anything bigger is not one.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn key_note(key: &Option<String>) -> String {
    key.as_ref()
        .filter(|k| !k.is_empty() && k.as_str() != ".")
        .map(|k| format!(" (key `{k}`)"))
        .unwrap_or_default()
}

/// A section's [`FieldError`] (its key already prefixed with the section) as an error at the
/// key's place in the file.
pub(super) fn invalid(text: &str, path: &Path, err: FieldError) -> ConfigError {
    let (line, column) = key_position(text, &err.key);
    ConfigError::Invalid { path: path.to_owned(), line, column, key: err.key, message: err.message }
}

/// The bytes as UTF-8, or where the first bad byte is.
pub(super) fn utf8<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        // The part before the first bad byte is valid, so the position can be counted in it.
        let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
        let (line, column) = line_col(valid, valid.len());
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            key: key_at(valid, line),
            message: format!("the file is not UTF-8 (bad byte at offset {})", e.valid_up_to()),
            hint: "TOML files are UTF-8: re-save the file as UTF-8 (e.g. `iconv -t UTF-8`)".to_owned(),
        }
    })
}

/// `text` read as `T`, or the first TOML or schema error with its position, key and a hint.
pub(super) fn deserialize<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let serde_key = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = inner.span().map_or((1, 1), |s| line_col(text, s.start));
        // toml's own messages run over several lines: one line here.
        let raw = inner.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>();
        let raw = raw.join(": ");
        let (key, message) = if serde_key.is_empty() || serde_key == "." {
            // Syntax errors come before serde knows a key: read it off the line they are on.
            (key_at(text, line), raw)
        } else if let Some(field) = backticked(&raw, "missing field `") {
            (Some(format!("{serde_key}.{field}")), raw)
        } else if serde_key.rsplit('.').next().is_some_and(|k| k.starts_with("password"))
            && !raw.starts_with("unknown field")
        {
            // serde quotes the offending value ("invalid type: integer `123456`"): not for secrets.
            (
                Some(serde_key),
                "invalid value (not shown: this key holds a secret); expected a string".to_owned(),
            )
        } else if checked_by_its_type(&raw) {
            // A value its type refused ("must be between 1 and …"): the message says what to do.
            return ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                key: serde_key,
                message: raw,
            };
        } else {
            (Some(serde_key), raw)
        };
        let hint = parse_hint(&message, text, line);
        ConfigError::Parse { path: path.to_owned(), line, column, key, message, hint }
    })
}

/// Messages of the config's own value types (timeouts, modes, windows), which say what to do.
fn checked_by_its_type(message: &str) -> bool {
    message.starts_with("must ") || message.contains("` is not a window like")
}

/// One line on what to do about a TOML or schema error `message`, raised at `line`.
fn parse_hint(message: &str, text: &str, line: usize) -> String {
    let on_header = text.lines().nth(line.saturating_sub(1)).is_some_and(|l| l.trim_start().starts_with('['));
    if message.contains("unknown field") {
        "remove the key or fix its spelling; docs/configuration.md lists every key".to_owned()
    } else if message.contains("duplicate key") && on_header {
        "a table may be given once: merge the two sections into one".to_owned()
    } else if message.contains("duplicate key") {
        "a key may be given once per table: remove one of the two".to_owned()
    } else if message.contains("number too large") || message.contains("number too small") {
        "use a smaller number: integers must fit in 64 bits, and most keys allow far less".to_owned()
    } else if let Some(ty) = backticked(message, "expected ").filter(|_| message.starts_with("invalid value"))
    {
        match integer_range(ty) {
            Some(range) => format!("use a whole number from {range}"),
            None => "use a value of the kind the key expects".to_owned(),
        }
    } else if let Some((_, want)) =
        message.rsplit_once("expected ").filter(|_| message.starts_with("invalid type"))
    {
        type_hint(want).to_owned()
    } else if message.starts_with("missing field") {
        "add the key to this table".to_owned()
    } else if message.starts_with("unknown variant") {
        "use one of the values listed".to_owned()
    } else if message.contains("not UTF-8") {
        "re-save the file as UTF-8".to_owned()
    } else {
        "fix the TOML syntax here: `key = value` lines under `[table]` headers, strings in double quotes"
            .to_owned()
    }
}

/// What to write for a value serde describes as `want` ("u16", "a boolean", "path string").
fn type_hint(want: &str) -> &'static str {
    let integer = want.strip_prefix(['u', 'i']).is_some_and(|w| w == "size" || w.parse::<u8>().is_ok());
    if want.contains("string") {
        "put the value in double quotes"
    } else if integer {
        "use a whole number, without quotes or a decimal point"
    } else if want.starts_with('f') {
        "use a number, without quotes"
    } else if want.contains("boolean") {
        "use true or false, without quotes"
    } else if want.contains("sequence") {
        "use an array: `[first, second]`"
    } else if want.contains("struct") || want.contains("map") {
        "use a table: `{ key = value, ... }`, e.g. `{ warn = 80, crit = 90 }` for levels"
    } else {
        "use a value of the kind docs/configuration.md gives for this key"
    }
}

/// The word after `prefix` up to the next backtick, or for "expected u16" the type name.
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    let end = rest.find(|c: char| c == '`' || c == ',' || c.is_whitespace()).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|w| !w.is_empty())
}

fn integer_range(ty: &str) -> Option<String> {
    let (lo, hi): (i128, i128) = match ty {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    };
    Some(format!("{lo} to {hi}"))
}

/// The dotted key a line of `text` sets, or the table it opens: `redis.port`, `logs[1].mode`,
/// `redis`. Good enough to point at; None for a line that is neither.
fn key_at(text: &str, line: usize) -> Option<String> {
    let mut table = String::new();
    let mut arrays: Vec<(String, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate().take(line) {
        let l = raw.trim();
        let last = i + 1 == line;
        if l.starts_with('[') {
            let array = l.starts_with("[[");
            let name = l.trim_start_matches('[');
            let name = name[..name.find(']').unwrap_or(name.len())].trim().to_owned();
            table = if array {
                let n = match arrays.iter_mut().find(|(a, _)| *a == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        arrays.push((name.clone(), 0));
                        0
                    }
                };
                format!("{name}[{n}]")
            } else {
                name
            };
            if last {
                return Some(table).filter(|t| !t.is_empty());
            }
        } else if last {
            let (key, _) = l.split_once('=')?;
            let key = key.trim();
            if key.is_empty() || key.starts_with('#') {
                return None;
            }
            return Some(if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") });
        }
    }
    None
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Line and column of the dotted key (`app.timeout_ms`, `logs[1].mode`,
/// `backup.archive[0].name`) in `text`, found by walking table headers; good enough to point at.
/// A key that is not in the file points at its table's header, else at the start.
fn key_position(text: &str, dotted: &str) -> (usize, usize) {
    let (table, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let (table, nth) = match table.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((name, n)) => (name, n.parse().unwrap_or(0)),
        None => (table, 0),
    };
    find_key_pos_nth(text, table, nth, key).unwrap_or((1, 1))
}

/// Line and column of `key` in the `nth` table named `section` (`[section]` or `[[section]]`);
/// when that table lacks the key, of its header.
fn find_key_pos_nth(text: &str, section: &str, nth: usize, key: &str) -> Option<(usize, usize)> {
    let mut seen: Option<usize> = None;
    let mut header = None;
    let mut in_section = false;
    let at = |i: usize, raw: &str| (i + 1, raw.chars().take_while(|c| c.is_whitespace()).count() + 1);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            let name = line.trim_start_matches('[');
            let name = name[..name.find(']').unwrap_or(name.len())].trim();
            if in_section && seen == Some(nth) {
                return header;
            }
            in_section = name == section;
            if in_section {
                seen = Some(seen.map_or(0, |n| n + 1));
                header = Some(at(i, raw));
            }
        } else if in_section
            && seen == Some(nth)
            && line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(at(i, raw));
        }
    }
    if in_section && seen == Some(nth) { header } else { None }
}
