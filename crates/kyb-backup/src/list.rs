//! `list`: the backups on disk, newest first, from their metadata alone (nothing is hashed).

use crate::metadata::{Metadata, read_capped};
use crate::partial::{METADATA, is_live};
use crate::verify::stamp_of;
use kyb_core::dir::DirHandle;
use rustix::fs::{FileType, OFlags};
use serde::Serialize;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// One backup directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    /// The directory.
    pub dir: PathBuf,
    /// `complete` (metadata present and parsed), `in progress` (a run holds it and is writing),
    /// `killed: partial file left` (a `.partial` file no run is writing; create and prune
    /// remove it), `no metadata` or `bad metadata: …`.
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
                Ok(_) if is_live(&root, &name) => ("in progress".to_owned(), None),
                Ok(d) => describe(&d),
                Err(e) => (format!("cannot open: {e}"), None),
            };
            Listed { dir, state, metadata }
        })
        .collect())
}

fn describe(dir: &DirHandle) -> (String, Option<Metadata>) {
    match dir.open_file(OsStr::new(METADATA), OFlags::RDONLY) {
        Ok(f) => match read_capped(f)
            .map_err(|e| e.to_string())
            .and_then(|b| Metadata::parse(&b).map_err(|e| e.to_string()))
        {
            Ok(m) => ("complete".to_owned(), Some(m)),
            Err(e) => (format!("bad metadata: {e}"), None),
        },
        Err(_) => {
            let partial = dir
                .entries()
                .into_iter()
                .flatten()
                .flatten()
                .any(|(n, _)| n.as_encoded_bytes().ends_with(b".partial"));
            let state = if partial { "killed: partial file left" } else { "no metadata" };
            (state.to_owned(), None)
        }
    }
}
