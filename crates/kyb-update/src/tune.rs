//! The tuning tasks: the service's memory (RSS from procfs, runtime metrics from its
//! `/metrics`, a restart only when configured and allowed), kernel settings kept in one managed
//! sysctl file, and dropping the page cache on request.
//!
//! Everything that reads or writes `/etc` or `/proc` goes through a configurable root, so the
//! tests run against a temporary tree.

use crate::app::line_diff;
use crate::gate::{GateConfig, health_gate};
use crate::service::ServiceManager;
use kyb_core::{Check, Metric, Status, Unit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The tuning tasks' settings (`[tuning]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuneConfig {
    /// The service's memory.
    pub memory: MemoryConfig,
    /// Kernel settings.
    pub sysctl: SysctlConfig,
}

/// The service's memory check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// RSS above this is Warn (default 1 GiB, the runbook's threshold).
    pub rss_warn_bytes: u64,
    /// RSS above this is Crit (default 2 GiB).
    pub rss_crit_bytes: u64,
    /// Restart the service when its RSS is over `rss_warn_bytes` (inside a maintenance window,
    /// followed by the health gate). Off by default: a restart is an outage for its users.
    pub restart: bool,
    /// Metric names (or name prefixes ending in `*`) reported from `/metrics` as the runtime's
    /// numbers: goroutines, threads, open files, heap, whatever the app exports.
    pub runtime_metrics: Vec<String>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            rss_warn_bytes: 1 << 30,
            rss_crit_bytes: 2 << 30,
            restart: false,
            runtime_metrics: [
                "go_goroutines",
                "go_threads",
                "go_memstats_heap_inuse_bytes",
                "process_resident_memory_bytes",
                "process_open_fds",
                "tokio_*",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Kernel settings kept in one managed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SysctlConfig {
    /// The filesystem root `/etc` and `/proc` are found under (`/`; tests use a temporary tree).
    pub root: PathBuf,
    /// The managed file, as a path under `root`.
    pub managed_file: PathBuf,
    /// Key (dotted, as `sysctl` names it) to value.
    pub values: BTreeMap<String, String>,
}

impl Default for SysctlConfig {
    fn default() -> Self {
        let values = [
            ("net.core.rmem_max", "16777216"),
            ("net.core.wmem_max", "16777216"),
            ("net.ipv4.tcp_rmem", "4096 87380 16777216"),
            ("net.ipv4.tcp_wmem", "4096 65536 16777216"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        SysctlConfig {
            root: PathBuf::from("/"),
            managed_file: PathBuf::from("/etc/sysctl.d/60-kyb.conf"),
            values,
        }
    }
}

/// A tuning task that could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// A key the kernel does not have (no file under `/proc/sys`).
    #[error("unknown sysctl key `{key}`: {path} does not exist")]
    UnknownKey {
        /// The key.
        key: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A key or value that cannot be written to the managed file.
    #[error("sysctl `{key}`: {why}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {why}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        why: String,
    },
    /// The service's process could not be found.
    #[error("{0}")]
    Service(String),
}

/// What [`sysctl`] found and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SysctlReport {
    /// The managed file.
    pub file: PathBuf,
    /// It was (or in a dry run, would be) rewritten.
    pub file_changed: bool,
    /// How the file changes, `-`/`+` lines.
    pub diff: String,
    /// One check per key: its value now, and what was done.
    pub checks: Vec<Check>,
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn proc_sys_path(root: &Path, key: &str) -> Result<PathBuf, TuneError> {
    let invalid = |why: &str| TuneError::Invalid { key: key.to_owned(), why: why.to_owned() };
    let segments: Vec<&str> = key.split(['.', '/']).collect();
    if key.is_empty() || segments.iter().any(|s| s.is_empty() || *s == "..") {
        return Err(invalid("not a sysctl key like net.core.rmem_max"));
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)) {
        return Err(invalid("keys hold letters, digits, '.', '_', '-' and '/' only"));
    }
    let mut path = under(root, Path::new("/proc/sys"));
    path.extend(segments);
    Ok(path)
}

fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Applies each value through `/proc/sys` and reads it back; only when every value holds is the
/// managed file rewritten (and only when it differs), so a boot applies what was verified. Keys
/// are checked to exist before anything is written; a value the kernel refuses or changes is
/// Crit, the values already set by this run are put back, and the file is left as it was.
pub fn sysctl(cfg: &SysctlConfig, dry_run: bool) -> Result<SysctlReport, TuneError> {
    let mut wanted = Vec::new();
    for (key, value) in &cfg.values {
        let path = proc_sys_path(&cfg.root, key)?;
        let value = normalize(value);
        if value.is_empty() {
            return Err(TuneError::Invalid { key: key.clone(), why: "empty value".into() });
        }
        if !path.is_file() {
            return Err(TuneError::UnknownKey { key: key.clone(), path });
        }
        // Every value is read before any is written, so all can be put back.
        let before = read_value(&path)?;
        wanted.push((key, value, path, before));
    }
    let file = under(&cfg.root, &cfg.managed_file);
    let mut desired = String::from(
        "# Managed by kyb-update sysctl ([tuning.sysctl] in kyb-maint.toml); edits are overwritten.\n",
    );
    for (key, value, _, _) in &wanted {
        desired.push_str(&format!("{key} = {value}\n"));
    }
    let current = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(TuneError::Io { path: file, why: e.to_string() }),
    };
    let file_changed = current != desired;
    let diff = if file_changed { line_diff(&current, &desired) } else { String::new() };

    let mut checks = Vec::new();
    let mut changed: Vec<(&PathBuf, String)> = Vec::new();
    let mut failed = false;
    for (key, value, path, before) in &wanted {
        let check = if before == value {
            Check::new(key.as_str(), Status::Ok, format!("{value} (already)"))
        } else if dry_run {
            Check::new(key.as_str(), Status::Ok, format!("would set {value} (now {before})"))
        } else {
            match write_value(path, value) {
                Err(e) => {
                    failed = true;
                    Check::new(key.as_str(), Status::Crit, format!("the kernel refused {value}: {e}"))
                }
                Ok(()) => {
                    changed.push((path, before.clone()));
                    match read_value(path) {
                        Ok(after) if after == *value => {
                            Check::new(key.as_str(), Status::Ok, format!("{value} (was {before})"))
                        }
                        Ok(after) => {
                            failed = true;
                            Check::new(
                                key.as_str(),
                                Status::Crit,
                                format!("wrote {value} but it reads back {after}"),
                            )
                        }
                        Err(e) => {
                            failed = true;
                            Check::new(
                                key.as_str(),
                                Status::Crit,
                                format!("wrote {value} but cannot read it back: {e}"),
                            )
                        }
                    }
                }
            }
        };
        checks.push(check);
    }
    let saved = if failed || !file_changed || dry_run {
        Ok(())
    } else {
        file.parent().map_or(Ok(()), std::fs::create_dir_all).map_err(|e| e.to_string()).and_then(|()| {
            kyb_core::fs::atomic_write(&file, desired.as_bytes(), 0o644)
                .map_err(|e| kyb_core::error_chain(&e))
        })
    };
    if failed || saved.is_err() {
        // Nothing half-done: the running values go back to what they were, the file stays.
        for (path, before) in changed {
            if let Err(e) = write_value(path, &before) {
                checks.push(Check::new("restore", Status::Crit, format!("cannot put back {before}: {e}")));
            }
        }
        let why = match saved {
            Err(e) => {
                format!("cannot write {}: {e}; the values set by this run were put back", file.display())
            }
            Ok(()) => format!(
                "{} left as it was: not every value holds (the values set by this run were put back)",
                file.display()
            ),
        };
        checks.push(Check::new("managed-file", Status::Crit, why));
        return Ok(SysctlReport { file, file_changed: false, diff: String::new(), checks });
    }
    Ok(SysctlReport { file, file_changed, diff, checks })
}

fn read_value(path: &Path) -> Result<String, TuneError> {
    std::fs::read_to_string(path)
        .map(|t| normalize(&t))
        .map_err(|e| TuneError::Io { path: path.to_owned(), why: e.to_string() })
}

/// Writes a `/proc/sys` value without following a symlink where the file should be.
fn write_value(path: &Path, value: &str) -> Result<(), TuneError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| TuneError::Io { path: path.to_owned(), why: e.to_string() };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(io)?;
    f.write_all(format!("{value}\n").as_bytes()).map_err(io)
}

/// Flushes dirty pages (`sync`) and asks the kernel to drop the page cache, dentries and inodes
/// (`3` into `/proc/sys/vm/drop_caches` under `root`). Everything cached must then be read
/// from disk again: the database and the service run slower until the cache warms up.
pub fn drop_caches(root: &Path, dry_run: bool) -> Result<Check, TuneError> {
    let path = under(root, Path::new("/proc/sys/vm/drop_caches"));
    if !path.is_file() {
        return Err(TuneError::Io { path, why: "not found".into() });
    }
    if dry_run {
        return Ok(Check::new(
            "drop-caches",
            Status::Ok,
            format!("would sync and write 3 to {}", path.display()),
        ));
    }
    rustix::fs::sync();
    write_value(&path, "3")?;
    Ok(Check::new(
        "drop-caches",
        Status::Ok,
        format!("synced; page cache, dentries and inodes dropped ({})", path.display()),
    ))
}

/// The resident set size of a process, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Result<u64, TuneError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TuneError::Io { path: path.clone(), why: e.to_string() })?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or(TuneError::Io { path, why: "no VmRSS line".into() })
}

/// How a memory check may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryOptions {
    /// A restart is allowed now (inside a maintenance window, or an emergency).
    pub restart_allowed: bool,
    /// Report what would be done.
    pub dry_run: bool,
}

/// The service's RSS against the thresholds, and a restart (with the health gate) when it is
/// over, configured, and allowed now. `exposition` is a scrape of the app's `/metrics`, for the
/// runtime numbers.
pub async fn app_memory(
    cfg: &MemoryConfig,
    service: &ServiceManager,
    gate: &GateConfig,
    exposition: Option<&kyb_prom::Exposition>,
    opts: MemoryOptions,
) -> Result<Vec<Check>, TuneError> {
    let instance = service
        .instance()
        .await
        .map_err(|e| TuneError::Service(kyb_core::error_chain(&e)))?
        .ok_or_else(|| TuneError::Service(format!("{} is not running", service.describe())))?;
    let rss = rss_bytes(instance.pid)?;
    let status = if rss > cfg.rss_crit_bytes {
        Status::Crit
    } else if rss > cfg.rss_warn_bytes {
        Status::Warn
    } else {
        Status::Ok
    };
    let mut checks = vec![
        Check::new(
            "rss",
            status,
            format!(
                "pid {} uses {} (warn above {})",
                instance.pid,
                kyb_core::human_bytes(rss),
                kyb_core::human_bytes(cfg.rss_warn_bytes)
            ),
        )
        .with_metric(
            Metric::new("rss", rss as f64, Unit::Bytes)
                .with_thresholds(cfg.rss_warn_bytes as f64, cfg.rss_crit_bytes as f64),
        ),
    ];
    if let Some(exp) = exposition {
        checks.push(runtime(cfg, exp));
    }
    if status != Status::Ok && cfg.restart {
        checks.push(restart(service, gate, opts).await);
    }
    Ok(checks)
}

fn runtime(cfg: &MemoryConfig, exp: &kyb_prom::Exposition) -> Check {
    let wanted = |name: &str| {
        cfg.runtime_metrics.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        })
    };
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    for s in exp.samples.iter().filter(|s| wanted(&s.name)) {
        *seen.entry(s.name.clone()).or_default() += s.value;
    }
    if seen.is_empty() {
        return Check::new("runtime", Status::Ok, "the app exports none of the configured runtime metrics");
    }
    let text: Vec<String> = seen.iter().map(|(n, v)| format!("{n} {v}")).collect();
    let mut check = Check::new("runtime", Status::Ok, text.join(", "));
    for (n, v) in seen {
        check = check.with_metric(Metric::new(n, v, Unit::None));
    }
    check
}

async fn restart(service: &ServiceManager, gate: &GateConfig, opts: MemoryOptions) -> Check {
    if opts.dry_run {
        return Check::new(
            "restart",
            Status::Ok,
            format!("would restart {} and run the health gate", service.describe()),
        );
    }
    if !opts.restart_allowed {
        return Check::new(
            "restart",
            Status::Warn,
            "restart configured but not allowed now (outside a maintenance window)",
        );
    }
    if let Err(e) = service.stop().await {
        return Check::new("restart", Status::Crit, format!("stop: {}", kyb_core::error_chain(&e)));
    }
    if let Err(e) = service.start().await {
        return Check::new("restart", Status::Crit, format!("start: {}", kyb_core::error_chain(&e)));
    }
    let g = health_gate(gate, service, None).await;
    let status = if g.passed { Status::Ok } else { Status::Crit };
    Check::new(
        "restart",
        status,
        format!("restarted; health gate: {} ({} probes, {} ms)", g.detail, g.probes, g.took_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(values: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (key, value) in values {
            let path = proc_sys_path(root.path(), key).unwrap();
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{value}\n")).unwrap();
        }
        root
    }

    fn cfg(root: &Path) -> SysctlConfig {
        SysctlConfig { root: root.to_owned(), ..SysctlConfig::default() }
    }

    #[test]
    fn running_twice_writes_the_file_once_and_applies_through_proc() {
        let root = fake_root(&[
            ("net.core.rmem_max", "212992"),
            ("net.core.wmem_max", "16777216"),
            ("net.ipv4.tcp_rmem", "4096\t131072\t6291456"),
            ("net.ipv4.tcp_wmem", "4096\t16384\t4194304"),
        ]);
        let cfg = cfg(root.path());
        let plan = sysctl(&cfg, true).unwrap();
        assert!(plan.file_changed);
        assert!(plan.diff.contains("+   2 net.core.rmem_max = 16777216"), "{}", plan.diff);
        assert!(!plan.file.exists(), "a dry run writes nothing");
        assert_eq!(
            std::fs::read_to_string(proc_sys_path(root.path(), "net.core.rmem_max").unwrap()).unwrap(),
            "212992\n"
        );

        let first = sysctl(&cfg, false).unwrap();
        assert!(first.file_changed);
        let file = root.path().join("etc/sysctl.d/60-kyb.conf");
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(written.contains("net.ipv4.tcp_rmem = 4096 87380 16777216\n"), "{written}");
        assert!(first.checks.iter().all(|c| c.status == Status::Ok), "{:?}", first.checks);
        assert!(first.checks.iter().any(|c| c.summary == "16777216 (was 212992)"), "{:?}", first.checks);
        assert!(first.checks.iter().any(|c| c.summary == "16777216 (already)"), "{:?}", first.checks);
        let tcp = std::fs::read_to_string(proc_sys_path(root.path(), "net.ipv4.tcp_rmem").unwrap()).unwrap();
        assert_eq!(tcp, "4096 87380 16777216\n");

        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).unwrap());
        let second = sysctl(&cfg, false).unwrap();
        assert!(!second.file_changed && second.diff.is_empty());
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).unwrap()),
            inode,
            "not rewritten"
        );
        assert!(second.checks.iter().all(|c| c.summary.ends_with("(already)")), "{:?}", second.checks);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
    }

    #[test]
    fn a_missing_key_is_a_clear_error_and_nothing_is_written() {
        let root = fake_root(&[("net.core.rmem_max", "212992")]);
        let mut cfg = cfg(root.path());
        cfg.values = [("net.core.rmem_max", "1"), ("net.core.no_such_knob", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let err = sysctl(&cfg, false).unwrap_err();
        assert!(err.to_string().starts_with("unknown sysctl key `net.core.no_such_knob`"), "{err}");
        assert!(!root.path().join("etc/sysctl.d/60-kyb.conf").exists());
        assert_eq!(
            std::fs::read_to_string(proc_sys_path(root.path(), "net.core.rmem_max").unwrap()).unwrap(),
            "212992\n"
        );

        cfg.values = [("net..core", "1")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        assert!(matches!(sysctl(&cfg, false), Err(TuneError::Invalid { .. })));
        cfg.values =
            [("../../etc/passwd", "1")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        assert!(matches!(sysctl(&cfg, false), Err(TuneError::Invalid { .. })));
        cfg.values =
            [("net.core.rmem_max", " ")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        assert!(matches!(sysctl(&cfg, false), Err(TuneError::Invalid { .. })));
    }

    #[test]
    fn a_value_that_cannot_be_set_leaves_the_file_and_puts_back_the_others() {
        let root = fake_root(&[("net.core.rmem_max", "212992"), ("net.core.wmem_max", "212992")]);
        // A symlink where a value should be: not written through.
        let wmem = proc_sys_path(root.path(), "net.core.wmem_max").unwrap();
        let elsewhere = root.path().join("elsewhere");
        std::fs::write(&elsewhere, "keep\n").unwrap();
        std::fs::remove_file(&wmem).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &wmem).unwrap();
        let mut cfg = cfg(root.path());
        cfg.values = [("net.core.rmem_max", "16777216"), ("net.core.wmem_max", "16777216")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let report = sysctl(&cfg, false).unwrap();
        let wmem_check = report.checks.iter().find(|c| c.name == "net.core.wmem_max").unwrap();
        assert_eq!(wmem_check.status, Status::Crit, "{:?}", report.checks);
        assert!(wmem_check.summary.contains("refused"), "{}", wmem_check.summary);
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep\n");
        let rmem = proc_sys_path(root.path(), "net.core.rmem_max").unwrap();
        assert_eq!(std::fs::read_to_string(rmem).unwrap(), "212992\n", "put back");
        assert!(!root.path().join("etc/sysctl.d/60-kyb.conf").exists(), "the file is not written");
        assert!(report.checks.iter().any(|c| c.name == "managed-file" && c.status == Status::Crit));
    }

    #[test]
    fn an_unreadable_managed_file_stops_the_run_before_any_value_is_set() {
        let root = fake_root(&[("net.core.rmem_max", "212992")]);
        // A file where the directory should be.
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/sysctl.d"), "not a directory").unwrap();
        let mut cfg = cfg(root.path());
        cfg.values = [("net.core.rmem_max", "16777216")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let err = sysctl(&cfg, false).unwrap_err();
        assert!(
            err.to_string().contains("60-kyb.conf") && err.to_string().contains("Not a directory"),
            "{err}"
        );
        let rmem = proc_sys_path(root.path(), "net.core.rmem_max").unwrap();
        assert_eq!(std::fs::read_to_string(rmem).unwrap(), "212992\n", "untouched");
    }

    #[test]
    fn drop_caches_writes_3_only_when_not_a_dry_run() {
        let root = fake_root(&[("vm.drop_caches", "0")]);
        let path = root.path().join("proc/sys/vm/drop_caches");
        drop_caches(root.path(), true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n");
        drop_caches(root.path(), false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "3\n");
        let empty = tempfile::tempdir().unwrap();
        assert!(drop_caches(empty.path(), false).is_err());
    }

    #[test]
    fn rss_of_this_process_is_read() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 1 << 20, "{rss}");
    }
}
