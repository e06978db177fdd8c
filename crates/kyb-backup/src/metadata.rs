//! `backup_metadata.json`: the runbook's keys plus what a restore needs to know.

use serde::{Deserialize, Serialize};
use std::io::Read;

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

impl Metadata {
    /// Parses `backup_metadata.json`. Any input gives a value or an error naming what is wrong
    /// (a missing key, a value of the wrong type, not JSON, not UTF-8), never a panic.
    pub fn parse(bytes: &[u8]) -> Result<Metadata, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The file's contents as `create` writes them: pretty JSON and a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).expect("metadata serializes");
        json.push(b'\n');
        json
    }
}

/// Metadata is small: a file past this is not ours, and is not read whole.
const MAX_METADATA_BYTES: u64 = 1 << 20;

/// Reads a metadata file, refusing one larger than [`MAX_METADATA_BYTES`].
pub(crate) fn read_capped(file: impl Read) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_METADATA_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB; not backup metadata",
            MAX_METADATA_BYTES / 1024
        )));
    }
    Ok(bytes)
}

fn no_compression() -> String {
    "none".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metadata() -> impl Strategy<Value = Metadata> {
        let text = || "\\PC{0,40}";
        let tables = proptest::collection::vec(
            ("\\PC{1,30}", any::<i64>()).prop_map(|(table, rows)| TableRows { table, rows }),
            0..12,
        );
        (
            (
                text(),
                "[0-9a-f]{64}",
                prop_oneof![Just("custom"), Just("plain")],
                prop_oneof![Just("gzip"), Just("none")],
            ),
            (any::<u64>(), any::<u64>(), text(), text(), text()),
            (text(), text(), any::<u64>(), proptest::option::of(any::<i64>()), tables),
        )
            .prop_map(
                |(
                    (backup_file, checksum, format, compression),
                    (size_bytes, dump_bytes, database, server_version, pg_dump_version),
                    (started_at, finished_at, duration_ms, table_count, tables),
                )| Metadata {
                    backup_file,
                    checksum,
                    format: format.to_owned(),
                    compression: compression.to_owned(),
                    size_bytes,
                    dump_bytes,
                    database,
                    server_version,
                    pg_dump_version,
                    started_at,
                    finished_at,
                    duration_ms,
                    table_count,
                    tables,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_bytes_give_a_value_or_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Metadata::parse(&bytes);
        }

        #[test]
        fn json_near_the_real_shape_gives_a_value_or_an_error(
            keys in proptest::collection::vec(
                prop_oneof![
                    Just("backup_file"), Just("checksum"), Just("format"), Just("size_bytes"),
                    Just("database"), Just("tables"), Just("table_count"), Just("duration_ms"),
                ],
                0..10,
            ),
            values in proptest::collection::vec(
                prop_oneof![
                    Just("null".to_owned()), Just("-1".to_owned()), Just("1e400".to_owned()),
                    Just("18446744073709551616".to_owned()), Just("[]".to_owned()), Just("{}".to_owned()),
                    "\"[a-z0-9 ./]{0,12}\"",
                ],
                10,
            ),
        ) {
            let body: Vec<String> = keys.iter().zip(&values).map(|(k, v)| format!("\"{k}\": {v}")).collect();
            let _ = Metadata::parse(format!("{{{}}}", body.join(", ")).as_bytes());
        }

        #[test]
        fn written_metadata_reads_back_the_same(m in metadata()) {
            let json = m.to_json();
            prop_assert!(json.ends_with(b"\n"));
            prop_assert_eq!(Metadata::parse(&json).unwrap(), m);
        }
    }

    #[test]
    fn metadata_before_compression_was_recorded_reads_as_none() {
        let old = br#"{"backup_file":"database.dump","checksum":"00","format":"custom","size_bytes":1,
            "database":"kyb","server_version":"15","pg_dump_version":"15","started_at":"",
            "finished_at":"","duration_ms":0,"tables":[]}"#;
        let m = Metadata::parse(old).unwrap();
        assert_eq!((m.compression.as_str(), m.dump_bytes, m.table_count), ("none", 0, None));
        let err = Metadata::parse(b"{\"backup_file\": 1}").unwrap_err().to_string();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn a_huge_file_is_refused_not_read_whole() {
        let big = vec![b' '; (MAX_METADATA_BYTES + 10) as usize];
        let err = read_capped(&big[..]).unwrap_err().to_string();
        assert!(err.contains("not backup metadata"), "{err}");
        assert_eq!(read_capped(&b"{}"[..]).unwrap(), b"{}");
    }
}
