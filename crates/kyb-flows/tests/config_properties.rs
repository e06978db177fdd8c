//! Config loading from any bytes: a config, or an error that points into the file. Never a panic.

use kyb_flows::config::parse_bytes;
use proptest::prelude::*;
use std::path::Path;

const PATH: &str = "/etc/kyb/kyb-maint.toml";

/// Tables of the schema with some of their keys, a table that is not in it, and a broken header.
const TABLES: &[(&str, &[&str])] = &[
    ("[paths]", &["maintenance_dir", "temp_dir", "log_dir", "backup_dir"]),
    ("[app]", &["base_url", "timeout_ms", "health_path", "max_body_bytes"]),
    ("[postgres]", &["user", "dbname", "port", "host", "password", "password_env", "password_file"]),
    ("[redis]", &["port", "host", "password_file", "allow_insecure_password_file", "timeout_ms"]),
    ("[system]", &["disk_pct", "cpu_sample_ms", "mount_timeout_ms"]),
    ("[[logs]]", &["path", "keep_days", "keep_count", "mode", "owner", "group", "compress_level", "every"]),
    ("[cleanup]", &["temp_max_age_days", "reports_max_age_days", "temp_prefix", "timeout_ms"]),
    ("[backup]", &["keep_min", "keep_last", "compression_level", "format"]),
    ("[[backup.archive]]", &["name", "paths"]),
    ("[dbmaint]", &["fit_days", "table_limit", "bloat_min_pct", "cache_hit_pct"]),
    ("[window]", &["allowed", "enforce"]),
    ("[[ml.models]]", &["name", "warn_below", "crit_below"]),
    ("[security]", &["os_updates", "endpoints", "cert_days", "burst_count", "cargo_lock"]),
    ("[update]", &["binary", "state_dir", "keep_releases"]),
    ("[update.service]", &["kind", "unit"]),
    ("[nope]", &["timout_ms"]),
    ("[paths", &["maintenance_dir"]),
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-3..100_i64).prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("99999999999999999999999".to_owned()),
        1 => any::<f64>().prop_map(|f| format!("{f:?}")),
        1 => Just("nan".to_owned()),
        1 => "\"[a-z0-9 ./:_-]{0,12}\"",
        1 => Just("true".to_owned()),
        1 => Just("[]".to_owned()),
        1 => (0..100_i64, 0..100_i64).prop_map(|(w, c)| format!("{{ warn = {w}, crit = {c} }}")),
        1 => "\"(Sun|Wed|Funday) [0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}\"".prop_map(|w| format!("[{w}]")),
        1 => "[\"'\\[{=]{1,3}",
    ]
}

/// A table header and some of its keys, each once; now and then a misspelt key or a garbage
/// line.
fn table() -> impl Strategy<Value = String> {
    prop::sample::select(TABLES).prop_flat_map(|(header, keys)| {
        let set = prop::sample::subsequence(keys, 0..=keys.len().min(4)).prop_flat_map(|keys| {
            keys.into_iter().map(|k| value().prop_map(move |v| format!("{k} = {v}"))).collect::<Vec<_>>()
        });
        let extra = prop_oneof![
            8 => Just(String::new()),
            1 => value().prop_map(|v| format!("timout_ms = {v}")),
            1 => any::<String>(),
        ];
        (set, extra).prop_map(move |(lines, extra)| format!("{header}\n{}\n{extra}", lines.join("\n")))
    })
}

/// Text shaped like a config, so that most cases get past the TOML parser into validation;
/// sometimes with one byte changed (which may make it non-UTF-8).
fn configish() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(table(), 0..6),
        any::<prop::sample::Index>(),
        prop::option::weighted(0.1, any::<u8>()),
    )
        .prop_map(|(tables, at, byte)| {
            let mut bytes = tables.join("\n").into_bytes();
            if let (Some(b), false) = (byte, bytes.is_empty()) {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Ok, or an error whose `file:line:column` lies inside the file, on one line.
    #[test]
    fn any_bytes_load_or_point_into_the_file(bytes in prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256),
        5 => configish(),
    ]) {
        if let Err(e) = parse_bytes(&bytes, Path::new(PATH)) {
            let shown = e.to_string();
            let (line, column) = e.position().ok_or_else(|| TestCaseError::fail(format!("no position: {shown}")))?;
            let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            prop_assert!(line >= 1 && line <= lines.len(), "line {} of {}: {}", line, lines.len(), shown);
            // Columns count characters, of which a line has at most as many as bytes.
            prop_assert!(column >= 1 && column <= lines[line - 1].len() + 1, "column {}: {}", column, shown);
            let at = format!("{PATH}:{line}:{column}: ");
            prop_assert!(shown.starts_with(&at), "{}", shown);
            prop_assert!(!shown.contains('\n'), "{}", shown);
        }
    }
}
