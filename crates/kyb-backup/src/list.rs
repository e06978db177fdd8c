//! `list`: the backups on disk, newest first, from their metadata alone (nothing is hashed).

use crate::metadata::Metadata;
use crate::verify::stamp_of;
use kyb_core::dir::DirHandle;
use rustix::fs::{FileType, OFlags};
use serde::Serialize;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One backup directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    /// The directory.
    pub dir: PathBuf,
    /// `complete` (metadata present and parsed), `in progress or failed` (a `.partial` file and
    /// no metadata), `no metadata` or `bad metadata: …`.
    pub state: String,
    /// The metadata, when it parses.
    pub metadata: Option<Metadata>,
}

/// The backups under `<backup_dir>/full`, newest first. A missing directory is an empty list.
pub fn list(backup_dir: &Path) -> std::io::Result<Vec<Listed>> {
    let full = backup_dir.join("full");
    let root = match DirHandle::open(&full) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found: Vec<_> = root
        .entries()?
        .into_iter()
        .flatten()
        .filter(|(_, kind)| *kind == FileType::Directory)
        .filter_map(|(name, _)| Some((stamp_of(name.as_encoded_bytes())?, name)))
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    Ok(found
        .into_iter()
        .map(|(_, name)| {
            let dir = full.join(&name);
            let (state, metadata) = match root.open_child(&name) {
                Ok(d) => describe(&d),
                Err(e) => (format!("cannot open: {e}"), None),
            };
            Listed { dir, state, metadata }
        })
        .collect())
}

fn describe(dir: &DirHandle) -> (String, Option<Metadata>) {
    let mut text = String::new();
    match dir.open_file(OsStr::new("backup_metadata.json"), OFlags::RDONLY) {
        Ok(f) => {
            if let Err(e) = f.take(1 << 20).read_to_string(&mut text) {
                return (format!("bad metadata: {e}"), None);
            }
            match serde_json::from_str::<Metadata>(&text) {
                Ok(m) => ("complete".to_owned(), Some(m)),
                Err(e) => (format!("bad metadata: {e}"), None),
            }
        }
        Err(_) => {
            let partial = dir
                .entries()
                .into_iter()
                .flatten()
                .flatten()
                .any(|(n, _)| n.as_encoded_bytes().ends_with(b".partial"));
            let state = if partial { "in progress or failed" } else { "no metadata" };
            (state.to_owned(), None)
        }
    }
}
