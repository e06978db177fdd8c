//! `backup_metadata.json`: the runbook's keys plus what a restore needs to know.

use serde::{Deserialize, Serialize};

/// What `create` records beside each dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The dump's file name, relative to the backup's own directory.
    pub backup_file: String,
    /// SHA-256 of the dump, lower-case hex.
    pub checksum: String,
    /// `custom` (pg_dump -Fc) or `plain` (SQL).
    pub format: String,
    /// `gzip`, or `none` for a bare custom-format archive.
    #[serde(default = "no_compression")]
    pub compression: String,
    /// Size of the stored file.
    pub size_bytes: u64,
    /// Size of pg_dump's output before compression.
    #[serde(default)]
    pub dump_bytes: u64,
    /// The database dumped.
    pub database: String,
    /// The server's version.
    pub server_version: String,
    /// pg_dump's `--version` line.
    pub pg_dump_version: String,
    /// When the dump started (RFC 3339, UTC).
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// Wall time of the dump.
    pub duration_ms: u64,
    /// Tables and partitioned tables outside the system schemas, for the restore drill to compare.
    #[serde(default)]
    pub table_count: Option<i64>,
    /// Exact row counts of the largest tables, for the restore drill to compare.
    pub tables: Vec<TableRows>,
}

/// One table's row count at dump time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// `schema.table`.
    pub table: String,
    /// `count(*)` when the dump started.
    pub rows: i64,
}

fn no_compression() -> String {
    "none".to_owned()
}
