//! The accuracy history: one JSON object per line, appended each run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use time::OffsetDateTime;

/// One model's accuracy at one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the run saw it.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The model.
    pub model: String,
    /// The series' other labels (a `version`, say); empty for a model with one plain series, and
    /// in records written before series were told apart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Its accuracy then.
    pub accuracy: f64,
}

/// The records in `path`; none when it does not exist yet. A line that does not parse (a run
/// cut off mid-write, a hand edit) is skipped rather than losing the rest.
pub(crate) fn read(path: &Path) -> std::io::Result<Vec<Record>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        if let Ok(r) = serde_json::from_slice::<Record>(&line?) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Appends `records` in one write, so concurrent runs do not interleave within a line.
pub(crate) fn append(path: &Path, records: &[Record]) -> std::io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut text = Vec::new();
    for r in records {
        serde_json::to_writer(&mut text, r).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    let mut f = kyb_core::fs::open_append(path, 0o640)?;
    f.write_all(&text)
}
