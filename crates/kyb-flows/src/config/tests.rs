//! The config file: what it accepts, what it refuses, and how it says so.

use super::*;
use kyb_core::Thresholds;
use kyb_dbmaint::ReportConfig;

const MINIMAL: &str = "[paths]\nmaintenance_dir = \"m\"\n";

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("/etc/kyb/kyb-maint.toml"))
}

#[test]
fn minimal_config_gets_defaults_and_resolves_paths() {
    let cfg = parse_str(MINIMAL).unwrap();
    assert_eq!(cfg.paths.maintenance_dir, Path::new("/etc/kyb/m"));
    assert_eq!(cfg.paths.reports_dir, Path::new("/etc/kyb/m/reports"));
    assert_eq!(cfg.system.disk_pct, Thresholds::new(80.0, 90.0));
    assert!(cfg.health.is_none(), "no [app], [postgres] or [redis]: nothing to probe");
    assert!(cfg.snapshot.is_none() && cfg.performance.is_none() && cfg.ml.is_none());
}

#[test]
fn a_checks_only_config_needs_no_paths() {
    let cfg = parse_str("[redis]\nport = 6390\n").unwrap();
    assert_eq!(cfg.paths.maintenance_dir, Path::new("/var/lib/kyb-maint"));
    assert_eq!(cfg.health.unwrap().redis.unwrap().port, 6390);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = format!("{MINIMAL}\n[app]\nbase_url = \"http://127.0.0.1:1\"\ntimeout = 5\n");
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(err.starts_with("/etc/kyb/kyb-maint.toml:6:"), "{err}");
    assert!(err.contains("unknown field `timeout`"), "{err}");
}

#[test]
fn wrong_type_names_the_key() {
    let text = format!("{MINIMAL}[postgres]\nuser = \"kyb\"\ndbname = \"kyb\"\nport = \"five\"\n");
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(err.starts_with("/etc/kyb/kyb-maint.toml:6:"), "{err}");
    assert!(err.contains("postgres.port"), "{err}");
}

#[test]
fn unsupported_scheme_is_a_config_error() {
    let text = format!("{MINIMAL}[app]\nbase_url = \"ftp://127.0.0.1\"\n");
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(err.contains(":4:") && err.contains("unsupported URL scheme `ftp`"), "{err}");
    assert!(err.contains("app.base_url"), "{err}");
}

#[test]
fn snapshots_are_capped_at_8_mib_unless_configured() {
    let text = format!("{MINIMAL}[app]\nbase_url = \"http://127.0.0.1:1\"\n");
    let cfg = parse_str(&text).unwrap();
    let snap = cfg.snapshot.unwrap();
    assert_eq!(snap.max_snapshot_bytes, 8 * 1024 * 1024);
    // The weekly analysis reads the snapshots the daily flow saves, under the same cap.
    let perf = cfg.performance.unwrap();
    assert_eq!((perf.reports_dir, perf.max_snapshot_bytes), (snap.reports_dir, snap.max_snapshot_bytes));
    assert_eq!(perf.scrape.url, snap.metrics_url);
    let ml = cfg.ml.unwrap();
    assert_eq!(ml.scrape, perf.scrape);
    assert_eq!(ml.ml.history.as_deref(), Some(Path::new("/etc/kyb/m/ml-accuracy-history.jsonl")));
    let text = format!("{MINIMAL}[app]\nbase_url = \"http://127.0.0.1:1\"\nmax_snapshot_bytes = 100\n");
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(err.contains("app.max_snapshot_bytes") && err.contains("at least 4096"), "{err}");
}

#[test]
fn secret_sources() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "from-file\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = format!(
        "{MINIMAL}[postgres]\nuser = \"u\"\ndbname = \"d\"\npassword_file = \"{}\"\n[redis]\npassword = \"inline\"\n",
        pw.display()
    );
    let cfg = parse_str(&text).unwrap();
    let health = cfg.health.unwrap();
    assert_eq!(health.postgres.unwrap().password.unwrap().expose(), "from-file");
    assert_eq!(health.redis.as_ref().unwrap().password.as_ref().unwrap().expose(), "inline");
    assert!(!format!("{:?}", health.redis).contains("inline"));

    let both = format!("{MINIMAL}[redis]\npassword = \"a\"\npassword_env = \"B\"\n");
    assert!(parse_str(&both).unwrap_err().to_string().contains("only one of"));
    let unset = format!("{MINIMAL}[redis]\npassword_env = \"KYB_SURELY_UNSET_VAR\"\n");
    let err = parse_str(&unset).unwrap_err().to_string();
    assert!(err.contains("KYB_SURELY_UNSET_VAR is not set") && err.contains(":4:"), "{err}");
}

#[test]
fn a_mistyped_password_is_not_echoed() {
    let text = format!("{MINIMAL}[postgres]\nuser = \"u\"\ndbname = \"d\"\npassword = 918273645\n");
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(err.contains("postgres.password") && err.contains(":6:"), "{err}");
    assert!(!err.contains("918273645"), "{err}");
}

#[test]
fn a_log_without_owner_keeps_the_files_owner() {
    // No `kyb` user needed: unset owner and group keep those of the log being rotated.
    let logs = |text: &str| parse_str(text).unwrap().rotation.expect("[[logs]] given").logs;
    let l = logs(&format!("{MINIMAL}[[logs]]\npath = \"/var/log/a.log\"\n"));
    assert_eq!((l[0].uid, l[0].gid), (None, None));
    let l = logs(&format!("{MINIMAL}[[logs]]\npath = \"/var/log/a.log\"\nowner = \"0\"\n"));
    assert_eq!((l[0].uid, l[0].gid), (Some(0), None));
    assert_eq!(parse_str(MINIMAL).unwrap().rotation, None, "nothing to rotate without [[logs]]");
}

#[test]
fn log_policy_values_are_checked() {
    for (line, key, want) in [
        ("keep_days = 0", "logs[0].keep_days", "at least 1"),
        ("keep_count = 0", "logs[0].keep_count", "at least 1"),
        ("mode = \"0999\"", "logs[0].mode", "octal mode"),
        ("group = \"no-such-group-kyb\"", "logs[0].group", "no such group `no-such-group-kyb`"),
        ("compress_level = 12", "logs[0].compress_level", "1 to 9"),
        ("pid_file = \"/run/a.pid\"\ncopytruncate = true", "logs[0].copytruncate", "at most one of"),
    ] {
        let group = if line.starts_with("group") { "" } else { "group = \"0\"\n" };
        let text = format!("{MINIMAL}[[logs]]\npath = \"/var/log/a.log\"\nowner = \"0\"\n{group}{line}\n");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(want), "{line}: {err}");
        assert!([":6:", ":7:", ":8:"].iter().any(|l| err.contains(l)), "{line}: no line in {err}");
    }
}

#[test]
fn inverted_thresholds_rejected() {
    let text = format!("{MINIMAL}[system]\ndisk_pct = {{ warn = 95, crit = 90 }}\n");
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(err.contains("system.disk_pct") && err.contains("must not be above"), "{err}");
}

const WITH_PG: &str = "[paths]\nmaintenance_dir = \"m\"\n[postgres]\nuser = \"u\"\ndbname = \"d\"\n";

#[test]
fn dbmaint_defaults_are_pghero_and_check_postgres() {
    let cfg = parse_str(WITH_PG).unwrap();
    let d = cfg.dbmaint.unwrap();
    assert_eq!(d.reports, ReportConfig::default());
    assert_eq!(d.reports.unused_index_max_scans, 50);
    assert_eq!(d.reports.xid_age, Thresholds::new(1.3e9, 1.4e9));
    assert_eq!(d.capacity.trend_csv.as_deref(), Some(Path::new("/etc/kyb/m/database-size-trend.csv")));
    assert_eq!((d.capacity.days_left_warn, d.capacity.days_left_crit), (90.0, 30.0));
    assert_eq!(cfg.window, Windows::default());
    let text = format!(
        "{WITH_PG}[dbmaint]\nbloat_bytes = {{ warn = 1, crit = 2 }}\nwrite_trend_csv = false\ndata_disk = \"data\"\n\
         [window]\nallowed = [\"Sat 23:00-01:00\"]\n"
    );
    let cfg = parse_str(&text).unwrap();
    let d = cfg.dbmaint.unwrap();
    assert_eq!(d.reports.bloat_bytes, Thresholds::new(1.0, 2.0));
    assert_eq!(d.capacity.trend_csv, None);
    assert_eq!(d.capacity.data_disk.as_deref(), Some(Path::new("/etc/kyb/data")));
    assert_eq!(cfg.window.describe(), "Sat 23:00-01:00 UTC");
}

#[test]
fn bad_dbmaint_and_window_settings_name_their_key() {
    for (section, line, key, want) in [
        ("dbmaint", "cache_hit_pct = { warn = 90, crit = 99 }", "dbmaint.cache_hit_pct", "lower is worse"),
        ("dbmaint", "sequence_pct = { warn = 95, crit = 85 }", "dbmaint.sequence_pct", "must not be above"),
        ("dbmaint", "bloat_min_pct = 150", "dbmaint.bloat_min_pct", "0 to 100"),
        ("dbmaint", "unused_index_max_scans = -1", "dbmaint.unused_index_max_scans", "negative"),
        ("dbmaint", "fit_days = 0", "dbmaint.fit_days", "between 1 and 3650"),
        ("dbmaint", "table_limit = 0", "dbmaint.table_limit", "between 1 and 10000"),
        ("dbmaint", "bloat_treshold = 5", "dbmaint", "unknown field"),
        ("window", "allowed = [\"Funday 01:00-02:00\"]", "window.allowed", "the day must be"),
        ("window", "allowed = [\"Sun 05:00-05:00\"]", "window.allowed", "empty"),
        ("window", "allowed = []", "window.allowed", "could never run"),
        ("security", "endpoints = [\"no-port\"]", "security.endpoints", "is not `host:port`"),
        ("security", "cert_days = { warn = 5, crit = 10 }", "security.cert_days", "fewer days left is worse"),
        ("security", "cargo_manifest = \"Cargo.toml\"", "security.cargo_manifest", "needs cargo_lock"),
        ("security", "burst_count = 0", "security.burst_count", "at least 1"),
        ("ml", "trend_days = 0", "ml.trend_days", "between 1 and 3650"),
        ("performance", "status_label = \"a-b\"", "performance.status_label", "not a label name"),
        ("performance", "endpoint_limit = 0", "performance.endpoint_limit", "between 1 and 100"),
        ("monitoring", "grafana_url = \"ftp://x\"", "monitoring.grafana_url", "ftp"),
        ("flows", "lock_wait_ms = 86400001", "flows.lock_wait_ms", "at most 86400000 (a day)"),
        ("flows", "lock_wait_ms = -1", "flows.lock_wait_ms", "invalid value"),
        ("flows", "host = \"\"", "flows.host", "not a host name"),
        ("flows", "host = \"a/b\"", "flows.host", "not a host name"),
        ("flows", "fleet = \"yes\"", "flows.fleet", "invalid type"),
        ("alerting", "alertmanager_urls = [\"https://am:9093\"]", "alerting.alertmanager_urls", "http://"),
        ("alerting", "pushgateway_url = \"pg:9091\"", "alerting.pushgateway_url", "http://"),
        ("alerting", "timeout_ms = 0", "alerting.timeout_ms", "between 1 and"),
    ] {
        let text = format!("{WITH_PG}[{section}]\n{line}\n");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(want), "{line}: {err}");
        assert!(err.contains(":7:"), "{line}: no line in {err}");
    }
    let off = format!("{WITH_PG}[window]\nenforce = false\nallowed = []\n");
    assert!(!parse_str(&off).unwrap().window.enforce);
}

#[test]
fn the_example_config_parses() {
    // It names a password file, an env var and a log owner that exist on the platform, not
    // on a test machine: stand-ins for those, the rest as shipped.
    let text = include_str!("../../../../deploy/kyb-maint.example.toml")
        .replace("password_file = \"/etc/kyb-maint/postgres.password\"", "password = \"x\"")
        .replace("password_env = \"REDIS_PASSWORD\"", "password = \"y\"")
        .replace("\"kyb\"\ngroup = \"kyb\"", "\"0\"\ngroup = \"0\"");
    let cfg = parse_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.ml.map(|m| m.ml.models.len()), Some(2));
    assert_eq!(cfg.monitoring.map(|m| m.targets.len()), Some(3));
    assert!(cfg.dbmaint.is_some() && cfg.backup.is_some());
    assert_eq!(cfg.window, Windows::default());
    let sec = &cfg.security;
    assert_eq!(
        sec.certs.as_ref().map(|c| c.endpoints[0].server_name.as_deref()),
        Some(Some("app.kyb.example"))
    );
    assert!(sec.perms.is_some() && sec.logs.is_some() && sec.advisories.is_none());
    let update = cfg.update.expect("[update]");
    assert!(update.database.is_some(), "the pre-update dump comes from [backup]");
    assert_eq!(update.mode.map(|m| m.bits()), Some(0o755));
    assert_eq!(update.health.successes, 3);
}

/// The example's keys: its own, and those it shows commented out as alternatives
/// (`# password_env = "..."` beside `password_file`), dotted from the root.
fn example_keys(text: &str, known: &[String]) -> Vec<String> {
    let mut table = String::new();
    let mut seen: Vec<String> = Vec::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        let shown = line.strip_prefix("# ").filter(|l| {
            l.split_once(" = ")
                .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        });
        let line = match shown {
            // An alternative for a key the table already sets (`kind`) stays a comment.
            Some(l) if seen.contains(&format!("{table}.{}", l.split_once(" = ").unwrap_or_default().0)) => {
                continue;
            }
            Some(l) => l,
            None => line,
        };
        if line.starts_with('[') {
            table = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            seen.clear();
        } else if let Some((key, _)) = line.split_once(" = ") {
            seen.push(format!("{table}.{}", key.trim()));
        }
        lines.push(line);
    }
    let value: toml::Table =
        lines.join("\n").parse().unwrap_or_else(|e| panic!("the example is not TOML: {e}"));
    let mut out = Vec::new();
    walk("", &toml::Value::Table(value), known, &mut out);
    out.sort();
    out.dedup();
    out
}

fn walk(prefix: &str, value: &toml::Value, known: &[String], out: &mut Vec<String>) {
    if known.iter().any(|k| k == prefix) {
        out.push(prefix.to_owned());
        return;
    }
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(&name, v, known, out);
            }
        }
        toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
            items.iter().for_each(|item| walk(prefix, item, known, out));
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn the_example_config_holds_every_key() {
    let known = reference::keys();
    assert!(known.len() > 150 && known.contains(&"backup.archive.paths".to_owned()), "{known:?}");
    let example = example_keys(include_str!("../../../../deploy/kyb-maint.example.toml"), &known);
    let missing: Vec<&String> = known.iter().filter(|k| !example.contains(k)).collect();
    let unknown: Vec<&String> = example.iter().filter(|k| !known.contains(k)).collect();
    assert!(missing.is_empty(), "keys the example leaves out: {missing:?}");
    assert!(unknown.is_empty(), "keys of the example no section has: {unknown:?}");
}

const UPDATE: &str = "[update]\nbinary = \"opt/app\"\nstate_dir = \"updates\"\n\
                      [update.service]\nkind = \"process\"\ncommand = [\"opt/app\"]\npid_file = \"run/app.pid\"\n";

#[test]
fn update_paths_resolve_and_the_dump_comes_from_backup() {
    let cfg = parse_str(&format!("{MINIMAL}{UPDATE}")).unwrap();
    let u = cfg.update.unwrap();
    assert_eq!(u.binary, Path::new("/etc/kyb/opt/app"));
    assert_eq!(u.state_dir, Path::new("/etc/kyb/updates"));
    assert!(
        matches!(&u.service, kyb_update::ServiceManager::Process { pid_file, .. } if pid_file == Path::new("/etc/kyb/run/app.pid"))
    );
    assert_eq!(u.database, None, "no [postgres]: no dump");
    assert_eq!(u.check_command, ["{binary}", "--config-check"]);
    assert_eq!(cfg.tuning.memory.rss_warn_bytes, 1 << 30);
    assert_eq!(cfg.tuning.sysctl.values.len(), 4, "the runbook's TCP settings");
}

#[test]
fn bad_update_and_tuning_settings_name_their_key() {
    for (extra, key, want) in [
        ("[update.health]\nsuccesses = 0\n", "update.health.successes", "at least 1"),
        ("[update.health]\nurl = \"ftp://x/health\"\n", "update.health.url", "only http://"),
        ("[update.health]\ndeadline_ms = 0\n", "update.health.deadline_ms", "between 1 and"),
        ("[update.health]\nsucceses = 3\n", "update.health", "unknown field"),
        (
            "[tuning.memory]\nrss_warn_bytes = 10\nrss_crit_bytes = 5\n",
            "tuning.memory.rss_crit_bytes",
            "at least",
        ),
        ("[tuning.sysctl]\nmanaged_file = \"etc/x.conf\"\n", "tuning.sysctl.managed_file", "absolute"),
    ] {
        let err = parse_str(&format!("{MINIMAL}{UPDATE}{extra}")).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(want), "{extra}: {err}");
    }
    for (text, key, want) in [
        (
            "[update]\nbinary = \"a\"\nstate_dir = \"s\"\nmode = \"0899\"\n[update.service]\nkind = \"systemd\"\nunit = \"u\"\n",
            "update.mode",
            "octal mode",
        ),
        (
            "[update]\nbinary = \"a\"\nstate_dir = \"s\"\n[update.service]\nkind = \"upstart\"\n",
            "update.service",
            "unknown variant",
        ),
        (
            "[update]\nbinary = \"a\"\nstate_dir = \"s\"\n[update.service]\nkind = \"systemd\"\nunit = \"\"\n",
            "update.service.unit",
            "must name a unit",
        ),
        (
            "[update]\nbinary = \"a\"\nstate_dir = \"s\"\n[update.service]\nkind = \"process\"\ncommand = []\npid_file = \"p\"\n",
            "update.service.command",
            "program",
        ),
        (
            "[update]\nbinary = \"a\"\n[update.service]\nkind = \"systemd\"\nunit = \"u\"\n",
            "update",
            "state_dir",
        ),
    ] {
        let err = parse_str(&format!("{MINIMAL}{text}")).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(want), "{text}: {err}");
    }
}

#[test]
fn missing_file_is_a_read_error() {
    let err = load(Path::new("/nonexistent/kyb.toml")).unwrap_err().to_string();
    assert!(err.starts_with("/nonexistent/kyb.toml: cannot read config file"), "{err}");
}

fn chain(e: &ConfigError) -> String {
    kyb_core::error_chain(e)
}

#[test]
fn the_config_file_must_be_a_regular_file_of_at_most_a_mebibyte() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
    let err = chain(&load(&fifo).unwrap_err());
    assert!(err.starts_with(&format!("{}: cannot read config file: it is a FIFO", fifo.display())), "{err}");
    let err = chain(&load(Path::new("/dev/zero")).unwrap_err());
    assert!(err.contains("/dev/zero: cannot read config file: it is a character device"), "{err}");
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "# padding\n".repeat(2 * 1024 * 1024 / 10)).unwrap();
    let err = chain(&load(&big).unwrap_err());
    assert!(err.contains("larger than the 1.0 MiB limit"), "{err}");
    // A config linked into place (as configuration management does) is read.
    let real = dir.path().join("real.toml");
    std::fs::write(&real, MINIMAL).unwrap();
    let link = dir.path().join("kyb-maint.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_eq!(load(&link).unwrap().paths.maintenance_dir, dir.path().join("m"));
}

#[test]
fn zero_ages_are_refused_with_their_key() {
    for (line, key) in [
        ("reports_max_age_days = 0", "cleanup.reports_max_age_days"),
        ("temp_max_age_days = 0", "cleanup.temp_max_age_days"),
        ("temp_max_age_days = -1.5", "cleanup.temp_max_age_days"),
        ("temp_max_age_days = nan", "cleanup.temp_max_age_days"),
    ] {
        let err = parse_str(&format!("{MINIMAL}[cleanup]\n{line}\n")).unwrap_err();
        assert_eq!(err.position(), Some((4, 1)), "{line}: {err}");
        let err = err.to_string();
        assert!(err.starts_with("/etc/kyb/kyb-maint.toml:4:1: must be "), "{line}: {err}");
        assert!(err.contains(&format!("(key `{key}`)")), "{line}: {err}");
    }
    let text = format!("{MINIMAL}temp_dir = \"t\"\n[cleanup]\ntemp_max_age_days = 0.25\n");
    assert_eq!(parse_str(&text).unwrap().cleanup.temp.unwrap().max_age_secs, 6 * 3600);
    let text = format!("{MINIMAL}temp_dir = \"t\"\n[cleanup]\ntemp_max_age_days = 0.000001\n");
    assert_eq!(parse_str(&text).unwrap().cleanup.temp.unwrap().max_age_secs, 1, "never rounded to 0");
    let cfg = parse_str(&format!("{MINIMAL}temp_dir = \"t\"\n")).unwrap();
    assert_eq!(cfg.cleanup.temp.unwrap().max_age_secs, 86_400);
    assert_eq!(cfg.retention.reports_max_age_days, 30);
    assert_eq!(cfg.retention.reports_dir, Some(cfg.paths.reports_dir.clone()));
    assert!(cfg.retention.logs.is_empty(), "rotated logs are pruned by the rotation");
}

fn with_password_file(dir: &Path, mode: u32, extra: &str) -> String {
    let pw = dir.join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    format!("{MINIMAL}[redis]\npassword_file = \"{}\"\n{extra}", pw.display())
}

#[test]
fn a_password_file_others_can_read_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o644, 0o640, 0o604, 0o620] {
        let err = parse_str(&with_password_file(dir.path(), mode, "")).unwrap_err().to_string();
        assert!(err.starts_with("/etc/kyb/kyb-maint.toml:4:1: "), "{err}");
        assert!(err.contains(&format!("is open to group or others (mode {mode:04o})")), "{err}");
        assert!(err.contains("chmod 600") && err.contains("(key `redis.password_file`)"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
    for mode in [0o600, 0o400] {
        let cfg = parse_str(&with_password_file(dir.path(), mode, "")).unwrap();
        assert_eq!(cfg.health.unwrap().redis.unwrap().password.unwrap().expose(), "s3cret");
    }
    let allowed = with_password_file(dir.path(), 0o644, "allow_insecure_password_file = true\n");
    let health = parse_str(&allowed).unwrap().health.unwrap();
    assert_eq!(health.redis.unwrap().password.unwrap().expose(), "s3cret");
}

#[test]
fn a_password_file_must_be_a_small_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 2 * 1024 * 1024]).unwrap();
    std::fs::set_permissions(&big, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for (file, want) in [
        (fifo.as_path(), "it is a FIFO"),
        (Path::new("/dev/zero"), "it is a character device"),
        (&big, "it is larger than the 1.0 MiB limit"),
    ] {
        let text = format!("{WITH_PG}password_file = \"{}\"\n", file.display());
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.contains(&format!("cannot read {}: {want}", file.display())), "{err}");
        assert!(err.contains(":6:1:") && err.contains("postgres.password_file"), "{err}");
    }
}

#[test]
fn symlinked_directories_the_flows_delete_in_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("real")).unwrap();
    std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
    std::fs::create_dir_all(d.join("m")).unwrap();
    let path = d.join("kyb-maint.toml");
    for (body, key) in [
        ("[paths]\ntemp_dir = \"link\"\n", "paths.temp_dir"),
        ("[paths]\nlog_dir = \"link\"\n", "paths.log_dir"),
        ("[paths]\nbackup_dir = \"link\"\n", "paths.backup_dir"),
        (
            "[paths]\nmaintenance_dir = \"m\"\n[[logs]]\npath = \"link/app.log\"\nowner = \"0\"\ngroup = \"0\"\n",
            "logs[0].path",
        ),
    ] {
        let err = parse(body, &path).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{} is a symlink (to {})",
                d.join("link").display(),
                d.join("real").display()
            )),
            "{body}: {err}"
        );
        assert!(err.contains(key) && err.contains("never through a symlink"), "{body}: {err}");
    }
    std::os::unix::fs::symlink(d.join("real"), d.join("m/reports")).unwrap();
    let err = parse("[paths]\nmaintenance_dir = \"m\"\n", &path).unwrap_err().to_string();
    assert!(err.contains("m/reports is a symlink") && err.contains("paths.maintenance_dir"), "{err}");
    // The real directories, and ones not made yet, are fine.
    parse("[paths]\nmaintenance_dir = \"n\"\ntemp_dir = \"real\"\nbackup_dir = \"none-yet\"\n", &path)
        .unwrap();
}

#[tokio::test]
async fn the_os_update_check_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let apt = dir.path().join("apt-get");
    std::fs::write(&apt, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&apt, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let release = dir.path().join("os-release");
    std::fs::write(&release, "ID=debian\n").unwrap();
    let text = |switch: &str| {
        format!(
            "{MINIMAL}[security]\napt_get = \"{}\"\nos_release = \"{}\"\n{switch}",
            apt.display(),
            release.display()
        )
    };
    let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc());
    let cfg = parse_str(&text("os_updates = false\n")).unwrap();
    assert_eq!(cfg.security.updates, None);
    let r = crate::security::audit(crate::security::Audit::OsUpdates, &cfg, &ctx).await;
    assert_eq!(
        (r.status, r.summary.as_str()),
        (kyb_core::Status::Ok, "switched off ([security] os_updates = false)")
    );
    assert!(!marker.exists(), "apt-get must not run");

    let cfg = parse_str(&text("")).unwrap();
    assert!(cfg.security.updates.is_some(), "on by default");
    crate::security::audit(crate::security::Audit::OsUpdates, &cfg, &ctx).await;
    assert!(marker.exists(), "on, the check runs apt-get");
}

/// `(text, line, column, key, words of the message, words of the hint)`.
const TOML_ERRORS: &[(&str, usize, usize, &str, &str, &str)] = &[
    (
        "[paths]\nmaintenance_dir = \"m\"\n[redis]\nport = = 1\n",
        4,
        8,
        "redis.port",
        "invalid string",
        "fix the TOML syntax",
    ),
    (
        "[paths]\nmaintenance_dir = \"m\"\n[redis]\nport = 99999999999999999999\n",
        4,
        8,
        "redis.port",
        "number too large",
        "use a smaller number",
    ),
    (
        "[paths]\nmaintenance_dir = \"m\"\n[redis]\nport = 70000\n",
        4,
        8,
        "redis.port",
        "expected u16",
        "from 0 to 65535",
    ),
    (
        "[redis]\nport = 1\n\n[redis]\nhost = \"x\"\n",
        4,
        1,
        "redis",
        "duplicate key `redis`",
        "merge the two sections",
    ),
    ("[redis]\nport = 1\nport = 2\n", 3, 1, "redis.port", "duplicate key `port`", "remove one of the two"),
    (
        "[paths]\nmaintenance_dir = 5\n",
        2,
        19,
        "paths.maintenance_dir",
        "invalid type: integer `5`",
        "put the value in double quotes",
    ),
    (
        "[system]\ndisk_pct = \"high\"\n",
        2,
        12,
        "system.disk_pct",
        "invalid type: string",
        "use a table: `{ key = value",
    ),
    (
        "[app]\nbase_url = \"http://x\"\ntimout_ms = 5\n",
        3,
        1,
        "app.timout_ms",
        "unknown field `timout_ms`",
        "fix its spelling",
    ),
    ("[postgres]\nuser = \"u\"\n", 1, 1, "postgres.dbname", "missing field `dbname`", "add the key"),
    (
        "[[logs]]\npath = \"a\"\n[[logs]]\npath = \"b\"\nevery = \"hourly\"\n",
        5,
        9,
        "logs[1].every",
        "unknown variant `hourly`",
        "one of the values",
    ),
];

#[test]
fn toml_errors_carry_position_key_and_a_hint() {
    for (text, line, column, key, message, hint) in TOML_ERRORS {
        let err = parse_str(text).unwrap_err();
        let shown = err.to_string();
        assert_eq!(err.position(), Some((*line, *column)), "{text}: {shown}");
        assert!(shown.starts_with(&format!("/etc/kyb/kyb-maint.toml:{line}:{column}: ")), "{shown}");
        assert!(shown.contains(&format!("(key `{key}`)")), "{text}: {shown}");
        assert!(shown.contains(message) && shown.contains(hint), "{text}: {shown}");
        assert!(!shown.contains('\n'), "one line: {shown}");
    }
}

#[test]
fn a_file_that_is_not_utf8_gets_the_position_of_the_first_bad_byte() {
    let err = parse_bytes(b"[paths]\nmaintenance_dir = \"m\xe9\"\n", Path::new("/k.toml")).unwrap_err();
    assert_eq!(err.position(), Some((2, 21)));
    let shown = err.to_string();
    assert!(shown.starts_with("/k.toml:2:21: the file is not UTF-8 (bad byte at offset 28)"), "{shown}");
    assert!(
        shown.contains("(key `paths.maintenance_dir`)") && shown.contains("re-save the file as UTF-8"),
        "{shown}"
    );
    let err = parse_bytes(b"\xff", Path::new("/k.toml")).unwrap_err();
    assert_eq!(err.position(), Some((1, 1)));
}

#[test]
fn a_setting_with_no_line_of_its_own_points_at_its_table() {
    let err = parse_str(&format!("{MINIMAL}\n[security]\nadvisory_db = \"db\"\n")).unwrap_err();
    assert_eq!(err.position(), Some((4, 1)), "{err}");
    assert!(err.to_string().contains("(key `security.cargo_lock`)"), "{err}");
}
