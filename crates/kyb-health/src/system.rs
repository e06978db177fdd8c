//! System metrics: CPU, memory, per-mount disk usage, load and uptime, with thresholds.

use crate::HealthError;
use kyb_core::config::{FieldError, TimeoutMs};
use kyb_core::{Check, Findings, Gauge, Metric, RunCtx, Status, Thresholds, Unit};
use procfs::{Current, CurrentSI};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// `[system]`: the machine's own figures, as the daily flow and `kyb-health system` measure
/// them: CPU, memory, the usage of every mounted filesystem, load and uptime.
///
/// Pseudo filesystems (proc, sysfs, cgroup, devpts, ...) and zero-sized ones are skipped; a
/// device mounted twice is reported once.
///
/// Levels are `{ warn = .., crit = .. }` tables: a value at or above `warn` is Warn, at or above
/// `crit` is Crit, and `warn` must not be above `crit`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SystemConfig {
    /// Disk usage levels per mount, in percent: the higher of blocks and inodes used.
    pub disk_pct: Thresholds,
    /// Memory usage levels, in percent of memory not available (`MemTotal - MemAvailable`).
    pub memory_pct: Thresholds,
    /// Load levels: the 5-minute load average divided by the online CPUs.
    pub load_per_core: Thresholds,
    /// Interval between the two `/proc/stat` samples the CPU figure is measured over, in
    /// milliseconds (1 to 10000).
    pub cpu_sample_ms: u64,
    /// Deadline of each mount's `statvfs`, in milliseconds (1 to 86400000); a mount that does
    /// not answer in time (a hung network mount) is Unknown.
    pub mount_timeout_ms: TimeoutMs,
}

impl Default for SystemConfig {
    fn default() -> SystemConfig {
        SystemConfig {
            disk_pct: Thresholds::new(80.0, 90.0),
            memory_pct: Thresholds::new(85.0, 95.0),
            load_per_core: Thresholds::new(1.5, 3.0),
            // Half a second: long enough for a steady figure, short for a daily job.
            cpu_sample_ms: 500,
            mount_timeout_ms: TimeoutMs::ms(2_000),
        }
    }
}

/// The longest CPU sample: ten seconds.
const MAX_CPU_SAMPLE_MS: u64 = 10_000;

impl SystemConfig {
    /// Checks what the types do not: the three levels, and `cpu_sample_ms` within 1 to 10000.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (key, t) in [
            ("disk_pct", self.disk_pct),
            ("memory_pct", self.memory_pct),
            ("load_per_core", self.load_per_core),
        ] {
            t.validate().map_err(|e| FieldError::new(key, e.to_string()))?;
        }
        if self.cpu_sample_ms == 0 || self.cpu_sample_ms > MAX_CPU_SAMPLE_MS {
            return Err(FieldError::new("cpu_sample_ms", "must be between 1 and 10000"));
        }
        Ok(())
    }
}

/// Usage of one mounted filesystem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskUsage {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type.
    pub fs_type: String,
    /// Size in bytes.
    pub total_bytes: u64,
    /// Bytes available to unprivileged users.
    pub available_bytes: u64,
    /// Percent used, as `df` computes it (used / (used + available)).
    pub used_pct: f64,
    /// Percent of inodes used, when the filesystem has a fixed inode count.
    pub inodes_used_pct: Option<f64>,
}

/// What [`system_metrics`] measured, and the checks derived from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemReport {
    /// CPU busy percent over the sample interval, all CPUs.
    pub cpu_pct: f64,
    /// Online CPUs.
    pub cpus: usize,
    /// Memory size.
    pub memory_total_bytes: u64,
    /// Memory available without swapping (`MemAvailable`).
    pub memory_available_bytes: u64,
    /// Percent of memory not available.
    pub memory_used_pct: f64,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Seconds since boot.
    pub uptime_secs: u64,
    /// Real filesystems, one entry per device.
    pub disks: Vec<DiskUsage>,
    /// One check each for cpu, memory, load, uptime and every disk.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(SystemReport);

/// Filesystems that hold no user data: their usage means nothing.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "rpc_pipefs",
    "efivarfs",
    "selinuxfs",
    "ramfs",
    "squashfs",
    "overlay_internal",
    "nfsd",
    "fuse.gvfsd-fuse",
    "fuse.portal",
];

/// Measures the machine. It only reads, so a dry run is the same run. `Err` only when the
/// kernel's own statistics cannot be read.
pub async fn system_metrics(cfg: &SystemConfig, _ctx: &RunCtx) -> Result<SystemReport, HealthError> {
    let proc_err = |what| move |source| HealthError::Proc { what, source };
    let first = procfs::KernelStats::current().map_err(proc_err("/proc/stat"))?;
    tokio::time::sleep(Duration::from_millis(cfg.cpu_sample_ms)).await;
    let second = procfs::KernelStats::current().map_err(proc_err("/proc/stat"))?;
    let cpu_pct = busy_pct(&first.total, &second.total);
    let cpus = second.cpu_time.len().max(1);
    let mem = procfs::Meminfo::current().map_err(proc_err("/proc/meminfo"))?;
    let available = mem.mem_available.unwrap_or(mem.mem_free + mem.cached);
    let memory_used_pct = pct(mem.mem_total.saturating_sub(available), mem.mem_total);
    let load = procfs::LoadAverage::current().map_err(proc_err("/proc/loadavg"))?;
    let uptime = procfs::Uptime::current().map_err(proc_err("/proc/uptime"))?;
    let load = [f64::from(load.one), f64::from(load.five), f64::from(load.fifteen)];
    let load_per_core = load[1] / cpus as f64;

    let mut checks = vec![
        Check::new("cpu", Status::Ok, format!("{cpu_pct:.1}% busy over {} ms", cfg.cpu_sample_ms))
            .with_metric(Metric::new("cpu", round1(cpu_pct), Unit::Percent)),
        Check::new(
            "memory",
            cfg.memory_pct.classify(memory_used_pct),
            format!(
                "{memory_used_pct:.1}% used ({} of {} available)",
                human_bytes(available),
                human_bytes(mem.mem_total)
            ),
        )
        .with_metric(
            Metric::new("memory", round1(memory_used_pct), Unit::Percent)
                .with_thresholds(cfg.memory_pct.warn, cfg.memory_pct.crit),
        ),
        Check::new(
            "load",
            cfg.load_per_core.classify(load_per_core),
            format!(
                "{:.2} {:.2} {:.2} on {cpus} CPUs ({load_per_core:.2} per CPU over 5 min)",
                load[0], load[1], load[2]
            ),
        )
        .with_metric(
            Metric::new("load5_per_cpu", (load_per_core * 100.0).round() / 100.0, Unit::None)
                .with_thresholds(cfg.load_per_core.warn, cfg.load_per_core.crit),
        ),
        Check::new("uptime", Status::Ok, format!("up {}", human_duration(uptime.uptime as u64)))
            .with_metric(Metric::new("uptime", uptime.uptime.floor(), Unit::Seconds)),
    ];
    let (disks, disk_checks) = disks(cfg).await;
    checks.extend(disk_checks);
    Ok(SystemReport {
        cpu_pct: round1(cpu_pct),
        cpus,
        memory_total_bytes: mem.mem_total,
        memory_available_bytes: available,
        memory_used_pct: round1(memory_used_pct),
        load,
        uptime_secs: uptime.uptime as u64,
        disks,
        findings: Findings::from_checks(checks),
    })
}

fn busy_pct(a: &procfs::CpuTime, b: &procfs::CpuTime) -> f64 {
    let idle = |t: &procfs::CpuTime| t.idle + t.iowait.unwrap_or(0);
    let total = |t: &procfs::CpuTime| {
        t.user
            + t.nice
            + t.system
            + idle(t)
            + t.irq.unwrap_or(0)
            + t.softirq.unwrap_or(0)
            + t.steal.unwrap_or(0)
    };
    let dt = total(b).saturating_sub(total(a));
    let di = idle(b).saturating_sub(idle(a));
    pct(dt.saturating_sub(di), dt)
}

async fn disks(cfg: &SystemConfig) -> (Vec<DiskUsage>, Vec<Check>) {
    let mounts = match procfs::process::Process::myself().and_then(|p| p.mountinfo()) {
        Ok(m) => m,
        Err(e) => {
            return (
                Vec::new(),
                vec![Check::new("disk", Status::Unknown, format!("cannot read mountinfo: {e}"))],
            );
        }
    };
    // Only the last mount on a path is visible there; bind mounts repeat a device.
    let mut mounts: Vec<_> = mounts.into_iter().collect();
    let mut top = HashSet::new();
    mounts.reverse();
    mounts.retain(|m| top.insert(m.mount_point.clone()));
    mounts.reverse();
    let mut seen = HashSet::new();
    let mut usages = Vec::new();
    let mut checks = Vec::new();
    let timeout = cfg.mount_timeout_ms.duration();
    mounts.retain(|m| !PSEUDO_FS.contains(&m.fs_type.as_str()) && seen.insert(m.majmin.clone()));
    // All mounts at once, each on its own thread: N hung mounts cost one deadline, not N.
    let stats = futures_util::future::join_all(mounts.iter().map(|m| {
        let path = m.mount_point.clone();
        with_deadline(timeout, move || rustix::fs::statvfs(&path))
    }))
    .await;
    for (m, stat) in mounts.into_iter().zip(stats) {
        let name = format!("disk {}", m.mount_point.display());
        let stat = match stat {
            None => {
                checks.push(Check::new(
                    name,
                    Status::Unknown,
                    format!("statvfs did not answer within {} ms (hung mount?)", cfg.mount_timeout_ms.get()),
                ));
                continue;
            }
            Some(Err(e)) => {
                checks.push(Check::new(name, Status::Unknown, format!("statvfs failed: {e}")));
                continue;
            }
            Some(Ok(s)) => s,
        };
        if stat.f_blocks == 0 {
            continue;
        }
        let frsize = stat.f_frsize.max(1);
        let total_bytes = stat.f_blocks * frsize;
        let used = stat.f_blocks.saturating_sub(stat.f_bfree);
        let used_pct = pct(used, used + stat.f_bavail);
        let inodes_used_pct =
            (stat.f_files > 0).then(|| pct(stat.f_files.saturating_sub(stat.f_ffree), stat.f_files));
        let worst_pct = used_pct.max(inodes_used_pct.unwrap_or(0.0));
        let mut summary = format!(
            "{used_pct:.1}% used, {} free of {} ({})",
            human_bytes(stat.f_bavail * frsize),
            human_bytes(total_bytes),
            m.fs_type
        );
        if let Some(i) = inodes_used_pct.filter(|i| *i >= cfg.disk_pct.warn) {
            summary.push_str(&format!("; inodes {i:.1}% used"));
        }
        checks.push(
            Check::new(name, cfg.disk_pct.classify(worst_pct), summary)
                .with_metric(
                    Metric::new(format!("disk_{}", m.mount_point.display()), round1(used_pct), Unit::Percent)
                        .with_thresholds(cfg.disk_pct.warn, cfg.disk_pct.crit),
                )
                .with_gauge(
                    Gauge::new("kyb_maint_disk_used_ratio", used_pct / 100.0)
                        .label("mount", m.mount_point.display().to_string()),
                ),
        );
        usages.push(DiskUsage {
            mount_point: m.mount_point,
            fs_type: m.fs_type,
            total_bytes,
            available_bytes: stat.f_bavail * frsize,
            used_pct: round1(used_pct),
            inodes_used_pct: inodes_used_pct.map(round1),
        });
    }
    (usages, checks)
}

/// Runs a blocking call on its own thread and gives up waiting after `limit`. A plain thread, not
/// the runtime's blocking pool, so a call stuck in the kernel cannot hold up runtime shutdown.
pub(crate) async fn with_deadline<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kyb-blocking-probe".to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    tokio::time::timeout(limit, rx).await.ok()?.ok()
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub use kyb_core::human_bytes;

fn human_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 { format!("{d}d {h}h {m}m") } else { format!("{h}h {m}m") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadline_cuts_off_a_stuck_call() {
        let started = std::time::Instant::now();
        let out =
            with_deadline(Duration::from_millis(100), || std::thread::sleep(Duration::from_secs(5))).await;
        assert!(out.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(with_deadline(Duration::from_secs(5), || 7).await, Some(7));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(human_duration(90_061), "1d 1h 1m");
    }

    fn section(text: &str) -> SystemConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn defaults_are_the_documented_numbers() {
        let s = section("");
        assert_eq!(s, SystemConfig::default());
        assert_eq!(s.disk_pct, Thresholds::new(80.0, 90.0));
        assert_eq!(s.memory_pct, Thresholds::new(85.0, 95.0));
        assert_eq!(s.load_per_core, Thresholds::new(1.5, 3.0));
        assert_eq!((s.cpu_sample_ms, s.mount_timeout_ms.get()), (500, 2_000));
        s.validate().unwrap();
    }

    #[test]
    fn every_key_reads_and_round_trips() {
        let s = section(
            "disk_pct = { warn = 70, crit = 80 }\nmemory_pct = { warn = 60, crit = 70 }\n\
             load_per_core = { warn = 1, crit = 2 }\ncpu_sample_ms = 250\nmount_timeout_ms = 1000\n",
        );
        assert_eq!(s.disk_pct, Thresholds::new(70.0, 80.0));
        assert_eq!(s.memory_pct, Thresholds::new(60.0, 70.0));
        assert_eq!(s.load_per_core, Thresholds::new(1.0, 2.0));
        assert_eq!((s.cpu_sample_ms, s.mount_timeout_ms.get()), (250, 1_000));
        assert_eq!(section(&toml::to_string(&s).unwrap()), s);
        assert!(toml::from_str::<SystemConfig>("mount_timeout_ms = 0").is_err());
        assert!(toml::from_str::<SystemConfig>("disk = 1").is_err());
    }

    #[test]
    fn validate_names_the_key() {
        for (text, key, message) in [
            ("disk_pct = { warn = 95, crit = 90 }", "disk_pct", "warn (95) must not be above crit (90)"),
            ("memory_pct = { warn = 95, crit = 90 }", "memory_pct", "warn (95) must not be above crit (90)"),
            (
                "load_per_core = { warn = 4, crit = 3 }",
                "load_per_core",
                "warn (4) must not be above crit (3)",
            ),
            ("cpu_sample_ms = 0", "cpu_sample_ms", "must be between 1 and 10000"),
            ("cpu_sample_ms = 10001", "cpu_sample_ms", "must be between 1 and 10000"),
        ] {
            assert_eq!(section(text).validate(), Err(FieldError::new(key, message)), "{text}");
        }
        section("cpu_sample_ms = 10000").validate().unwrap();
        let s = SystemConfig { disk_pct: Thresholds::new(f64::NAN, 90.0), ..SystemConfig::default() };
        assert_eq!(s.validate().unwrap_err().key, "disk_pct");
    }
}
