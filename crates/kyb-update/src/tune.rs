//! The tuning tasks: the service's memory (RSS from procfs, runtime metrics from its
//! `/metrics`, a restart only when configured and allowed), kernel settings kept in one managed
//! sysctl file, and dropping the page cache on request.
//!
//! Everything that reads or writes `/etc` or `/proc` goes through a configurable root, so the
//! tests run against a temporary tree.

use crate::app::line_diff;
use crate::gate::{GateConfig, health_gate};
use crate::section::{MemoryConfig, SysctlConfig};
use crate::service::ServiceManager;
use kyb_core::{Check, Findings, Metric, RunCtx, Status, Unit};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// `managed-file` first (up to date, rewritten or would change, with the diff), then one
    /// check per key: its value now, and what was done. When a value does not hold, the key's
    /// Crit check, `restore` for a value that could not be put back, and `managed-file` last
    /// (Crit: left as it was).
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(SysctlReport);

/// What [`app_memory`] found and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryReport {
    /// `rss` (the service's, from procfs), `app rss` (one per series of the app's own figure),
    /// `runtime` (the app's other runtime numbers), `metrics` when `/metrics` could not be
    /// read, and `restart` when one was due or asked for and could not be.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(MemoryReport);

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
/// Crit, the values already set by this run are put back, and the file is left as it was. A dry
/// run (`ctx.dry_run`) reads the values and the file and writes nothing.
pub async fn sysctl(cfg: &SysctlConfig, ctx: &RunCtx) -> Result<SysctlReport, TuneError> {
    let (cfg, dry_run) = (cfg.clone(), ctx.dry_run);
    blocking(move || sysctl_blocking(&cfg, dry_run)).await
}

/// Runs file system work off the async workers; a panic in it goes on in the caller.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn sysctl_blocking(cfg: &SysctlConfig, dry_run: bool) -> Result<SysctlReport, TuneError> {
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
        let findings = Findings::from_checks(checks);
        return Ok(SysctlReport { file, file_changed: false, diff: String::new(), findings });
    }
    let what = match (file_changed, dry_run) {
        (false, _) => format!("{} is up to date", file.display()),
        (true, true) => format!("{} would change:\n{}", file.display(), diff.trim_end()),
        (true, false) => format!("{} rewritten:\n{}", file.display(), diff.trim_end()),
    };
    checks.insert(0, Check::new("managed-file", Status::Ok, what));
    Ok(SysctlReport { file, file_changed, diff, findings: Findings::from_checks(checks) })
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
/// (`3` into `/proc/sys/vm/drop_caches` under `cfg.root`). Everything cached must then be read
/// from disk again: the database and the service run slower until the cache warms up. The
/// findings are one `drop-caches` check; a dry run (`ctx.dry_run`) says what it would write.
pub async fn drop_caches(cfg: &SysctlConfig, ctx: &RunCtx) -> Result<Findings, TuneError> {
    let (root, dry_run) = (cfg.root.clone(), ctx.dry_run);
    let check = blocking(move || drop_caches_blocking(&root, dry_run)).await?;
    Ok(Findings::from_checks(vec![check]))
}

fn drop_caches_blocking(root: &Path, dry_run: bool) -> Result<Check, TuneError> {
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

/// Where the memory check reads its numbers. At least one is needed.
#[derive(Debug, Clone, Copy)]
pub struct MemorySources<'a> {
    /// The service as `[update]` runs it, and its health gate: its RSS is read from procfs, and
    /// only through it can the service be restarted. None: a read-only check of `/metrics`.
    pub service: Option<(&'a ServiceManager, &'a GateConfig)>,
    /// A scrape of the app's `/metrics`, or why it failed; None when no `[app]` is configured.
    pub metrics: Option<Result<&'a kyb_prom::Exposition, &'a str>>,
}

/// The gauge of resident memory client libraries export for their own process.
const APP_RSS_METRIC: &str = "process_resident_memory_bytes";

/// The service's RSS (from procfs, through `sources.service`) and the RSS the app reports in
/// its `/metrics` (`process_resident_memory_bytes`), each against the thresholds; the app's
/// other runtime numbers; and a restart (with the health gate) when over, configured, and
/// allowed now ([`RunCtx::heavy_work_allowed`]; a dry run says it would restart). `Err` when
/// the service is configured but not running, or there is nothing to read the memory from.
pub async fn app_memory(
    cfg: &MemoryConfig,
    sources: MemorySources<'_>,
    ctx: &RunCtx,
) -> Result<MemoryReport, TuneError> {
    let mut checks = Vec::new();
    if let Some((service, _)) = sources.service {
        let instance = service
            .instance()
            .await
            .map_err(|e| TuneError::Service(kyb_core::error_chain(&e)))?
            .ok_or_else(|| TuneError::Service(format!("{} is not running", service.describe())))?;
        let rss = rss_bytes(instance.pid)?;
        checks.push(rss_check(cfg, "rss", rss as f64, &format!("pid {} uses", instance.pid), ""));
    }
    match sources.metrics {
        Some(Ok(exp)) => {
            checks.extend(app_rss(cfg, exp, sources.service.is_some()));
            checks.push(runtime(cfg, exp));
        }
        Some(Err(why)) => {
            let (status, lost) = match sources.service {
                Some(_) => (Status::Warn, "the app's own RSS and runtime numbers are not checked"),
                None => (Status::Unknown, "no RSS to judge"),
            };
            checks.push(Check::new("metrics", status, format!("cannot read /metrics: {why}; {lost}")));
        }
        None if sources.service.is_none() => {
            return Err(TuneError::Service(
                "nothing to read the memory from: configure [app] (its /metrics) or [update] (the service)"
                    .into(),
            ));
        }
        None => {}
    }
    let over = checks
        .iter()
        .filter(|c| c.name == "rss" || c.name.starts_with("app rss"))
        .any(|c| matches!(c.status, Status::Warn | Status::Crit));
    match sources.service {
        Some((service, gate)) if over && cfg.restart => checks.push(restart(service, gate, ctx).await),
        Some(_) => {}
        None if cfg.restart => checks.push(Check::new(
            "restart",
            Status::Warn,
            format!(
                "restart = true in [tuning.memory], but there is no [update] section (binary, state_dir, \
                 service) to say how the service runs: {}; add [update] to allow it",
                if over { "not restarted" } else { "it could not be restarted" }
            ),
        )),
        None => {}
    }
    Ok(MemoryReport { findings: Findings::from_checks(checks) })
}

/// Reads `{before} <size>{after} (<level>)`.
fn rss_check(cfg: &MemoryConfig, name: &str, rss: f64, before: &str, after: &str) -> Check {
    let status = if rss > cfg.rss_crit_bytes as f64 {
        Status::Crit
    } else if rss > cfg.rss_warn_bytes as f64 {
        Status::Warn
    } else {
        Status::Ok
    };
    let level = if status == Status::Crit {
        format!("crit above {}", kyb_core::human_bytes(cfg.rss_crit_bytes))
    } else {
        format!("warn above {}", kyb_core::human_bytes(cfg.rss_warn_bytes))
    };
    let size = kyb_core::human_bytes(rss as u64);
    Check::new(name, status, format!("{before} {size}{after} ({level})")).with_metric(
        Metric::new("rss", rss, Unit::Bytes)
            .with_thresholds(cfg.rss_warn_bytes as f64, cfg.rss_crit_bytes as f64),
    )
}

/// `process_resident_memory_bytes` judged like the RSS read from procfs: one check per series.
fn app_rss(cfg: &MemoryConfig, exp: &kyb_prom::Exposition, have_procfs: bool) -> Vec<Check> {
    let series: Vec<&kyb_prom::Sample> = kyb_prom::select(&exp.samples, APP_RSS_METRIC, &[]).collect();
    if series.is_empty() {
        // Without a service the app's own figure was the only source.
        return if have_procfs {
            Vec::new()
        } else {
            vec![Check::new(
                "app rss",
                Status::Unknown,
                format!(
                    "the app's /metrics has no {APP_RSS_METRIC}, and without an [update] section there is \
                     no process to read from procfs"
                ),
            )]
        };
    }
    series
        .into_iter()
        .map(|s| {
            let name = format!("app rss{}", labels_text(&s.labels));
            if s.value.is_finite() && s.value >= 0.0 {
                let after = format!(" resident in {APP_RSS_METRIC}");
                rss_check(cfg, &name, s.value, "the app reports", &after)
            } else {
                Check::new(
                    name,
                    Status::Unknown,
                    format!("{APP_RSS_METRIC} reports {}: no RSS to judge", s.value),
                )
            }
        })
        .collect()
}

/// `{a="1",b="2"}`, or nothing without labels.
fn labels_text(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// Runtime entries listed in the summary; the rest are counted, and all are in the metrics.
const MAX_RUNTIME_LINES: usize = 20;

/// The configured runtime numbers, each series on its own: gauges and summary quantiles mean
/// nothing added together. A counter with several series is shown as its total, which is what
/// a counter's series add up to. Histogram buckets are left out (their `_sum` and `_count`
/// stay).
fn runtime(cfg: &MemoryConfig, exp: &kyb_prom::Exposition) -> Check {
    use kyb_prom::MetricKind;
    let wanted = |name: &str| {
        name != APP_RSS_METRIC
            && cfg.runtime_metrics.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == p,
            })
    };
    let mut by_name: BTreeMap<&str, Vec<&kyb_prom::Sample>> = BTreeMap::new();
    for s in exp.samples.iter().filter(|s| wanted(&s.name)) {
        by_name.entry(s.name.as_str()).or_default().push(s);
    }
    let mut entries: Vec<(String, f64, Unit)> = Vec::new();
    for (name, series) in by_name {
        let kind = exp.family_of(name).map_or(MetricKind::Untyped, |f| f.kind);
        if kind == MetricKind::Histogram && name.ends_with("_bucket") {
            continue;
        }
        let counter = kind == MetricKind::Counter
            || (kind == MetricKind::Untyped && name.ends_with("_total"))
            || (matches!(kind, MetricKind::Histogram | MetricKind::Summary)
                && (name.ends_with("_count") || name.ends_with("_sum")));
        if counter && series.len() > 1 {
            let total = series.iter().map(|s| s.value).sum();
            entries.push((format!("{name} (total of {} series)", series.len()), total, Unit::Counter));
            continue;
        }
        for s in series {
            let unit = match name {
                _ if counter => Unit::Counter,
                n if n.ends_with("_bytes") => Unit::Bytes,
                n if n.ends_with("_seconds") => Unit::Seconds,
                _ => Unit::None,
            };
            entries.push((format!("{name}{}", labels_text(&s.labels)), s.value, unit));
        }
    }
    if entries.is_empty() {
        return Check::new("runtime", Status::Ok, "the app exports none of the configured runtime metrics");
    }
    let mut text: Vec<String> =
        entries.iter().take(MAX_RUNTIME_LINES).map(|(n, v, u)| format!("{n} {}", show(*v, *u))).collect();
    if entries.len() > MAX_RUNTIME_LINES {
        text.push(format!("... and {} more", entries.len() - MAX_RUNTIME_LINES));
    }
    let mut check = Check::new("runtime", Status::Ok, text.join(", "));
    for (n, v, u) in entries {
        check = check.with_metric(Metric::new(n, v, u));
    }
    check
}

/// A value for a reader: bytes in binary units, seconds with their unit.
fn show(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Bytes if v.is_finite() && v >= 0.0 => kyb_core::human_bytes(v as u64),
        Unit::Seconds => format!("{v} s"),
        _ => format!("{v}"),
    }
}

async fn restart(service: &ServiceManager, gate: &GateConfig, ctx: &RunCtx) -> Check {
    if ctx.dry_run {
        return Check::new(
            "restart",
            Status::Ok,
            format!("would restart {} and run the health gate", service.describe()),
        );
    }
    if !ctx.heavy_work_allowed() {
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

    fn ctx(dry_run: bool) -> RunCtx {
        RunCtx::new(time::OffsetDateTime::now_utc()).with_dry_run(dry_run)
    }

    #[tokio::test]
    async fn running_twice_writes_the_file_once_and_applies_through_proc() {
        let root = fake_root(&[
            ("net.core.rmem_max", "212992"),
            ("net.core.wmem_max", "16777216"),
            ("net.ipv4.tcp_rmem", "4096\t131072\t6291456"),
            ("net.ipv4.tcp_wmem", "4096\t16384\t4194304"),
        ]);
        let cfg = cfg(root.path());
        let plan = sysctl(&cfg, &ctx(true)).await.unwrap();
        assert!(plan.file_changed);
        assert!(plan.diff.contains("+   2 net.core.rmem_max = 16777216"), "{}", plan.diff);
        let file = root.path().join("etc/sysctl.d/60-kyb.conf");
        let head = &plan.findings.checks[0];
        assert_eq!((head.name.as_str(), head.status), ("managed-file", Status::Ok));
        assert!(head.summary.starts_with(&format!("{} would change:; ", file.display())), "{}", head.summary);
        assert!(head.summary.contains("+   2 net.core.rmem_max = 16777216"), "{}", head.summary);
        assert!(plan.findings.checks.iter().any(|c| c.summary == "would set 16777216 (now 212992)"));
        assert!(!plan.file.exists(), "a dry run writes nothing");
        assert_eq!(
            std::fs::read_to_string(proc_sys_path(root.path(), "net.core.rmem_max").unwrap()).unwrap(),
            "212992\n"
        );

        let first = sysctl(&cfg, &ctx(false)).await.unwrap();
        assert!(first.file_changed);
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(written.contains("net.ipv4.tcp_rmem = 4096 87380 16777216\n"), "{written}");
        let checks = &first.findings.checks;
        assert!(checks.iter().all(|c| c.status == Status::Ok), "{checks:?}");
        assert!(checks[0].summary.starts_with(&format!("{} rewritten:; ", file.display())), "{checks:?}");
        assert!(checks.iter().any(|c| c.summary == "16777216 (was 212992)"), "{checks:?}");
        assert!(checks.iter().any(|c| c.summary == "16777216 (already)"), "{checks:?}");
        let tcp = std::fs::read_to_string(proc_sys_path(root.path(), "net.ipv4.tcp_rmem").unwrap()).unwrap();
        assert_eq!(tcp, "4096 87380 16777216\n");

        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).unwrap());
        let second = sysctl(&cfg, &ctx(false)).await.unwrap();
        assert!(!second.file_changed && second.diff.is_empty());
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).unwrap()),
            inode,
            "not rewritten"
        );
        let (head, keys) = second.findings.checks.split_first().unwrap();
        assert_eq!(head.summary, format!("{} is up to date", file.display()));
        assert!(keys.iter().all(|c| c.summary.ends_with("(already)")), "{keys:?}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
    }

    #[tokio::test]
    async fn a_missing_key_is_a_clear_error_and_nothing_is_written() {
        let root = fake_root(&[("net.core.rmem_max", "212992")]);
        let mut cfg = cfg(root.path());
        cfg.values = [("net.core.rmem_max", "1"), ("net.core.no_such_knob", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let err = sysctl(&cfg, &ctx(false)).await.unwrap_err();
        assert!(err.to_string().starts_with("unknown sysctl key `net.core.no_such_knob`"), "{err}");
        assert!(!root.path().join("etc/sysctl.d/60-kyb.conf").exists());
        assert_eq!(
            std::fs::read_to_string(proc_sys_path(root.path(), "net.core.rmem_max").unwrap()).unwrap(),
            "212992\n"
        );

        cfg.values = [("net..core", "1")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        assert!(matches!(sysctl(&cfg, &ctx(false)).await, Err(TuneError::Invalid { .. })));
        cfg.values =
            [("../../etc/passwd", "1")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        assert!(matches!(sysctl(&cfg, &ctx(false)).await, Err(TuneError::Invalid { .. })));
        cfg.values =
            [("net.core.rmem_max", " ")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        assert!(matches!(sysctl(&cfg, &ctx(false)).await, Err(TuneError::Invalid { .. })));
    }

    #[tokio::test]
    async fn a_value_that_cannot_be_set_leaves_the_file_and_puts_back_the_others() {
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
        let report = sysctl(&cfg, &ctx(false)).await.unwrap();
        let checks = &report.findings.checks;
        let wmem_check = checks.iter().find(|c| c.name == "net.core.wmem_max").unwrap();
        assert_eq!(wmem_check.status, Status::Crit, "{checks:?}");
        assert!(wmem_check.summary.contains("refused"), "{}", wmem_check.summary);
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep\n");
        let rmem = proc_sys_path(root.path(), "net.core.rmem_max").unwrap();
        assert_eq!(std::fs::read_to_string(rmem).unwrap(), "212992\n", "put back");
        assert!(!root.path().join("etc/sysctl.d/60-kyb.conf").exists(), "the file is not written");
        assert!(checks.iter().any(|c| c.name == "managed-file" && c.status == Status::Crit));
        assert!(checks.iter().all(|c| c.name != "managed-file" || c.status == Status::Crit), "{checks:?}");
    }

    #[tokio::test]
    async fn an_unreadable_managed_file_stops_the_run_before_any_value_is_set() {
        let root = fake_root(&[("net.core.rmem_max", "212992")]);
        // A file where the directory should be.
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/sysctl.d"), "not a directory").unwrap();
        let mut cfg = cfg(root.path());
        cfg.values = [("net.core.rmem_max", "16777216")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let err = sysctl(&cfg, &ctx(false)).await.unwrap_err();
        assert!(
            err.to_string().contains("60-kyb.conf") && err.to_string().contains("Not a directory"),
            "{err}"
        );
        let rmem = proc_sys_path(root.path(), "net.core.rmem_max").unwrap();
        assert_eq!(std::fs::read_to_string(rmem).unwrap(), "212992\n", "untouched");
    }

    #[tokio::test]
    async fn drop_caches_writes_3_only_when_not_a_dry_run() {
        let root = fake_root(&[("vm.drop_caches", "0")]);
        let path = root.path().join("proc/sys/vm/drop_caches");
        let plan = drop_caches(&cfg(root.path()), &ctx(true)).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n");
        assert_eq!(plan.checks[0].summary, format!("would sync and write 3 to {}", path.display()));
        let done = drop_caches(&cfg(root.path()), &ctx(false)).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "3\n");
        assert_eq!((done.checks.len(), done.checks[0].name.as_str()), (1, "drop-caches"));
        assert!(done.checks[0].summary.starts_with("synced; page cache"), "{:?}", done.checks);
        let empty = tempfile::tempdir().unwrap();
        assert!(drop_caches(&cfg(empty.path()), &ctx(false)).await.is_err());
    }

    #[test]
    fn rss_of_this_process_is_read() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 1 << 20, "{rss}");
    }

    mod memory {
        use super::*;
        use kyb_testkit::{FakeApp, HealthMode, MetricsMode};

        async fn scraped(app: &FakeApp) -> kyb_prom::Exposition {
            let sc = kyb_health::ScrapeConfig {
                url: app.url("/metrics"),
                timeout_ms: 10_000,
                max_body_bytes: 1 << 22,
                max_redirects: 3,
            };
            kyb_health::scrape(&sc).await.unwrap().exposition
        }

        fn levels(warn: u64, crit: u64) -> MemoryConfig {
            MemoryConfig { rss_warn_bytes: warn, rss_crit_bytes: crit, ..MemoryConfig::default() }
        }

        fn only_metrics(exp: &kyb_prom::Exposition) -> MemorySources<'_> {
            MemorySources { service: None, metrics: Some(Ok(exp)) }
        }

        fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
            checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} in {checks:#?}"))
        }

        /// The checks of a run at a time when a window is open and that may change things.
        async fn judged(cfg: &MemoryConfig, sources: MemorySources<'_>) -> Vec<Check> {
            app_memory(cfg, sources, &ctx(false)).await.unwrap().findings.checks
        }

        #[tokio::test]
        async fn the_apps_own_rss_is_judged_against_the_thresholds_without_a_service() {
            let app = FakeApp::start(HealthMode::Healthy).await;
            let exp = scraped(&app).await;
            // The fake app reports 412,001,000 bytes: 392.9 MiB.
            let checks = judged(&levels(256 << 20, 1 << 30), only_metrics(&exp)).await;
            let rss = find(&checks, "app rss");
            assert_eq!(rss.status, Status::Warn, "{rss:?}");
            assert_eq!(
                rss.summary,
                "the app reports 392.9 MiB resident in process_resident_memory_bytes (warn above 256.0 MiB)"
            );
            assert_eq!(rss.metrics[0].unit, Unit::Bytes);
            assert_eq!(rss.metrics[0].warn, Some(f64::from(256u32 << 20)));
            let runtime = find(&checks, "runtime");
            assert!(!runtime.summary.contains("process_resident_memory_bytes"), "{}", runtime.summary);
            assert!(checks.iter().all(|c| c.name != "rss" && c.name != "restart"), "{checks:#?}");

            let checks = judged(&levels(100 << 20, 300 << 20), only_metrics(&exp)).await;
            let rss = find(&checks, "app rss");
            assert_eq!(rss.status, Status::Crit);
            assert!(rss.summary.ends_with("(crit above 300.0 MiB)"), "{}", rss.summary);
            let checks = judged(&levels(1 << 30, 2 << 30), only_metrics(&exp)).await;
            assert_eq!(find(&checks, "app rss").status, Status::Ok);
        }

        #[tokio::test]
        async fn runtime_numbers_are_never_added_across_series() {
            let app = FakeApp::start(HealthMode::Healthy).await;
            app.set_metrics(MetricsMode::TokioRuntime);
            let exp = scraped(&app).await;
            let checks = judged(&MemoryConfig::default(), only_metrics(&exp)).await;
            let runtime = find(&checks, "runtime");
            let s = &runtime.summary;
            for part in [
                "tokio_task_poll_duration_seconds{quantile=\"0.5\"} 0.12 s",
                "tokio_task_poll_duration_seconds{quantile=\"0.9\"} 0.52 s",
                "tokio_task_poll_duration_seconds{quantile=\"0.99\"} 1 s",
                "tokio_worker_local_queue_depth{worker=\"0\"} 3",
                "tokio_worker_local_queue_depth{worker=\"1\"} 7",
                "tokio_worker_polls_total (total of 2 series) 200000",
                "tokio_workers_count 4",
                "process_open_fds 57",
            ] {
                assert!(s.contains(part), "{part} in {s}");
            }
            assert!(!s.contains("1.64") && !s.contains("depth 10"), "{s}");
            let unit = |label: &str| runtime.metrics.iter().find(|m| m.label == label).map(|m| m.unit);
            assert_eq!(unit("tokio_task_poll_duration_seconds_sum"), Some(Unit::Counter));
            assert_eq!(unit("tokio_task_poll_duration_seconds{quantile=\"0.5\"}"), Some(Unit::Seconds));
            assert_eq!(unit("process_open_fds"), Some(Unit::None));
        }

        #[tokio::test]
        async fn without_a_figure_to_judge_it_says_why() {
            let exp = kyb_prom::parse("process_open_fds 12\nprocess_resident_memory_bytes NaN\n");
            let checks = judged(&MemoryConfig::default(), only_metrics(&exp)).await;
            let rss = find(&checks, "app rss");
            assert_eq!(rss.status, Status::Unknown);
            assert!(rss.summary.contains("reports NaN"), "{}", rss.summary);

            let exp = kyb_prom::parse("process_open_fds 12\n");
            let checks = judged(&MemoryConfig::default(), only_metrics(&exp)).await;
            let rss = find(&checks, "app rss");
            assert_eq!(rss.status, Status::Unknown);
            assert!(rss.summary.contains("no process_resident_memory_bytes"), "{}", rss.summary);

            let failed =
                MemorySources { service: None, metrics: Some(Err("HTTP 500 from http://x/metrics")) };
            let checks = judged(&MemoryConfig::default(), failed).await;
            let m = find(&checks, "metrics");
            assert_eq!(m.status, Status::Unknown);
            assert!(m.summary.starts_with("cannot read /metrics: HTTP 500"), "{}", m.summary);

            let none = MemorySources { service: None, metrics: None };
            let err = app_memory(&MemoryConfig::default(), none, &ctx(false)).await.unwrap_err();
            assert!(err.to_string().contains("configure [app]"), "{err}");
        }

        #[tokio::test]
        async fn a_restart_asked_without_a_service_is_explained() {
            let app = FakeApp::start(HealthMode::Healthy).await;
            let exp = scraped(&app).await;
            let cfg = MemoryConfig { restart: true, ..levels(256 << 20, 1 << 30) };
            let checks = judged(&cfg, only_metrics(&exp)).await;
            let restart = find(&checks, "restart");
            assert_eq!(restart.status, Status::Warn);
            assert!(
                restart.summary.contains("no [update] section") && restart.summary.contains("not restarted"),
                "{}",
                restart.summary
            );
        }

        /// This test process, as a supervised service would be recorded.
        fn this_process(dir: &Path) -> ServiceManager {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            // Field 22, the start time, is the 20th after the name.
            let started = after_name.split_whitespace().nth(19).unwrap();
            let pid_file = dir.join("app.pid");
            std::fs::write(&pid_file, format!("{} {started}\n", std::process::id())).unwrap();
            ServiceManager::Process {
                command: vec!["/bin/false".into()],
                pid_file,
                log_file: None,
                stop_timeout_ms: kyb_core::config::TimeoutMs::ms(1_000),
            }
        }

        #[tokio::test]
        async fn procfs_and_the_apps_own_figure_are_both_judged() {
            let app = FakeApp::start(HealthMode::Healthy).await;
            let exp = scraped(&app).await;
            let dir = tempfile::tempdir().unwrap();
            let service = this_process(dir.path());
            let gate = GateConfig::default();
            let sources = MemorySources { service: Some((&service, &gate)), metrics: Some(Ok(&exp)) };
            let checks = judged(&levels(256 << 20, 1 << 40), sources).await;
            let rss = find(&checks, "rss");
            assert!(rss.summary.starts_with(&format!("pid {} uses ", std::process::id())), "{}", rss.summary);
            assert_eq!(find(&checks, "app rss").status, Status::Warn);
            assert!(checks.iter().all(|c| c.name != "restart"), "restart is off: {checks:#?}");
        }

        #[tokio::test]
        async fn a_restart_waits_for_a_window_and_a_dry_run_only_says_it() {
            let dir = tempfile::tempdir().unwrap();
            let service = this_process(dir.path());
            let gate = GateConfig::default();
            let sources = MemorySources { service: Some((&service, &gate)), metrics: None };
            let cfg = MemoryConfig { restart: true, ..levels(1, 1 << 40) };
            let closed = kyb_core::WindowState::Closed { windows: "Sun 02:00-03:00".into(), next_open: None };
            let outside = ctx(false).with_window(closed);
            let r = app_memory(&cfg, sources, &outside).await.unwrap();
            assert_eq!(find(&r.findings.checks, "rss").status, Status::Warn);
            let restart = find(&r.findings.checks, "restart");
            assert_eq!(restart.status, Status::Warn);
            assert!(restart.summary.contains("not allowed now"), "{}", restart.summary);
            // A dry run says what it would do, inside a window or not.
            for run in [ctx(true), outside.with_dry_run(true).with_emergency(true)] {
                let r = app_memory(&cfg, sources, &run).await.unwrap();
                let restart = find(&r.findings.checks, "restart");
                assert_eq!(restart.status, Status::Ok);
                assert!(restart.summary.starts_with("would restart "), "{}", restart.summary);
            }
        }
    }
}
