//! Stopping, starting and watching the platform service: through systemd in production, or as a
//! plain supervised process (a pid file) for tests, the sandbox and hosts without systemd.
//!
//! Both answer the same question for the health gate: which instance of the service is running
//! now. An instance is a main pid plus when it started, so a restart is seen even when the pid
//! is reused.

use kyb_core::config::{FieldError, TimeoutMs, resolve_path};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `[update.service]`: how the service is stopped and started, around the swap and for a
/// restart. `kind` picks one of two ways, each with its own keys.
///
/// - `kind = "systemd"`: a systemd unit, driven with `systemctl stop`, `start` and `show`.
/// - `kind = "process"`: a process this tool starts itself, in its own process group, its pid
///   and start time kept in a pid file; for hosts without systemd, the sandbox and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceManager {
    /// A systemd unit, driven with `systemctl stop|start|show`.
    Systemd {
        /// The unit to stop and start, e.g. `"kyb-platform.service"`. Required.
        unit: String,
        /// The `systemctl` program run, by name (looked up in `PATH`) or by path.
        #[serde(default = "ServiceManager::default_systemctl")]
        systemctl: PathBuf,
        /// Deadline of each `systemctl` call, in milliseconds (1 ms to a day).
        #[serde(default = "ServiceManager::default_timeout_ms")]
        timeout_ms: TimeoutMs,
    },
    /// A process this tool starts itself, in its own process group, recorded in a pid file.
    Process {
        /// The command line, program first, then its arguments; it should run `binary` by its
        /// path. Required, and not empty.
        command: Vec<String>,
        /// Where `<pid> <start time>` of the running instance is kept. Required; relative to the
        /// config file's directory.
        pid_file: PathBuf,
        /// A file the service's stdout and stderr are appended to, relative to the config
        /// file's directory. Left out, they are discarded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_file: Option<PathBuf>,
        /// How long a stop waits after SIGTERM before it sends SIGKILL, in milliseconds (1 ms to
        /// a day).
        #[serde(default = "ServiceManager::default_timeout_ms")]
        stop_timeout_ms: TimeoutMs,
    },
}

impl ServiceManager {
    fn default_systemctl() -> PathBuf {
        PathBuf::from("systemctl")
    }

    fn default_timeout_ms() -> TimeoutMs {
        TimeoutMs::ms(30_000)
    }

    /// Checks what the types do not: a unit name, a command. Keys are relative to the table.
    pub(crate) fn validate(&self) -> Result<(), FieldError> {
        match self {
            ServiceManager::Systemd { unit, .. } if unit.is_empty() => {
                Err(FieldError::new("unit", "must name a unit"))
            }
            ServiceManager::Process { command, .. } if command.is_empty() => {
                Err(FieldError::new("command", "must hold the program and its arguments"))
            }
            _ => Ok(()),
        }
    }

    /// Makes the pid file and log file absolute against `base`.
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        if let ServiceManager::Process { pid_file, log_file, .. } = self {
            *pid_file = resolve_path(base, pid_file);
            *log_file = log_file.as_deref().map(|p| resolve_path(base, p));
        }
    }
}

/// One running instance of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Its main process.
    pub pid: u32,
    /// When it started: the process start time in clock ticks since boot (process manager) or
    /// systemd's `ExecMainStartTimestampMonotonic`.
    pub started: u64,
}

/// A stop or start that did not work.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A `systemctl` call failed or timed out.
    #[error("`{command}` failed: {reason}")]
    Systemctl {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the timeout.
        reason: String,
    },
    /// The service process could not be spawned.
    #[error("cannot start `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The `command` list is empty.
    #[error("the service command is empty")]
    EmptyCommand,
    /// The pid file could not be read or written.
    #[error("pid file {path}")]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process outlived SIGTERM and SIGKILL.
    #[error("process {pid} is still running after SIGKILL")]
    WontDie {
        /// Its pid.
        pid: u32,
    },
}

impl ServiceManager {
    /// A short description for plans and reports.
    pub fn describe(&self) -> String {
        match self {
            ServiceManager::Systemd { unit, .. } => format!("systemd unit {unit}"),
            ServiceManager::Process { command, pid_file, .. } => {
                format!("process `{}` (pid file {})", command.join(" "), pid_file.display())
            }
        }
    }

    /// Stops the service and waits until it is down. Stopping a stopped service is not an error.
    pub async fn stop(&self) -> Result<(), ServiceError> {
        match self {
            ServiceManager::Systemd { unit, systemctl, timeout_ms } => {
                systemctl_run(systemctl, &["stop", unit], *timeout_ms).await.map(drop)
            }
            ServiceManager::Process { pid_file, stop_timeout_ms, .. } => {
                let Some(instance) = read_pid_file(pid_file)? else { return Ok(()) };
                if is_running(instance) {
                    terminate(instance, stop_timeout_ms.duration()).await?;
                }
                remove_pid_file(pid_file)
            }
        }
    }

    /// Starts the service. For systemd, `systemctl start` waits for the unit's own start-up;
    /// a process is spawned and recorded, and whether it stays up is the health gate's business.
    pub async fn start(&self) -> Result<(), ServiceError> {
        match self {
            ServiceManager::Systemd { unit, systemctl, timeout_ms } => {
                systemctl_run(systemctl, &["start", unit], *timeout_ms).await.map(drop)
            }
            ServiceManager::Process { command, pid_file, log_file, .. } => {
                spawn(command, pid_file, log_file.as_deref())
            }
        }
    }

    /// The instance running now, if any.
    pub async fn instance(&self) -> Result<Option<Instance>, ServiceError> {
        match self {
            ServiceManager::Systemd { unit, systemctl, timeout_ms } => {
                let props = ["-p", "MainPID", "-p", "ActiveState", "-p", "ExecMainStartTimestampMonotonic"];
                let mut args = vec!["show", unit.as_str()];
                args.extend(props);
                let out = systemctl_run(systemctl, &args, *timeout_ms).await?;
                Ok(parse_show(&out))
            }
            ServiceManager::Process { pid_file, .. } => {
                Ok(read_pid_file(pid_file)?.filter(|i| is_running(*i)))
            }
        }
    }
}

/// Reads `systemctl show` output: an instance when the unit is active with a main process.
fn parse_show(out: &str) -> Option<Instance> {
    let mut pid = 0;
    let mut started = 0;
    let mut active = false;
    for line in out.lines() {
        match line.split_once('=') {
            Some(("MainPID", v)) => pid = v.trim().parse().unwrap_or(0),
            Some(("ExecMainStartTimestampMonotonic", v)) => started = v.trim().parse().unwrap_or(0),
            Some(("ActiveState", v)) => active = matches!(v.trim(), "active" | "reloading"),
            _ => {}
        }
    }
    (active && pid != 0).then_some(Instance { pid, started })
}

async fn systemctl_run(systemctl: &Path, args: &[&str], timeout: TimeoutMs) -> Result<String, ServiceError> {
    let command = format!("{} {}", systemctl.display(), args.join(" "));
    let fail = |reason: String| ServiceError::Systemctl { command: command.clone(), reason };
    let mut cmd = tokio::process::Command::new(systemctl);
    cmd.args(args).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(timeout.duration(), cmd.output())
        .await
        .map_err(|_| fail(format!("no answer within {} ms", timeout.get())))?
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("{}: {}", out.status, stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn spawn(command: &[String], pid_file: &Path, log_file: Option<&Path>) -> Result<(), ServiceError> {
    use std::os::unix::process::CommandExt;
    let (program, args) = command.split_first().ok_or(ServiceError::EmptyCommand)?;
    let spawn_err = |source| ServiceError::Spawn { program: program.clone(), source };
    let (stdout, stderr) = match log_file {
        Some(path) => {
            let log = kyb_core::fs::open_append(path, 0o640).map_err(spawn_err)?;
            let second = log.try_clone().map_err(spawn_err)?;
            (std::process::Stdio::from(log), std::process::Stdio::from(second))
        }
        None => (std::process::Stdio::null(), std::process::Stdio::null()),
    };
    // Its own process group: a signal to the updater (Ctrl-C, kill of its group) is not one to
    // the service, and the service outlives the run that started it.
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).stdin(std::process::Stdio::null()).stdout(stdout).stderr(stderr).process_group(0);
    let child = spawn_retrying_busy(&mut cmd).map_err(spawn_err)?;
    let pid = child.id();
    // Never waited for here; once this run exits the process is reparented and reaped by init.
    drop(child);
    let started = proc_stat(pid).map_or(0, |s| s.started);
    let text = format!("{pid} {started}\n");
    kyb_core::fs::atomic_write(pid_file, text.as_bytes(), 0o644)
        .map_err(|e| ServiceError::PidFile { path: pid_file.to_owned(), source: std::io::Error::other(e) })
}

/// Spawns `cmd`, retrying for a moment while the kernel says the program is busy (ETXTBSY): a
/// binary just written can still be open for writing in a child forked meanwhile by another
/// thread, until that child execs.
pub(crate) fn spawn_retrying_busy(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    let mut pause = Duration::from_millis(5);
    for _ in 0..8 {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => std::thread::sleep(pause),
            other => return other,
        }
        pause *= 2;
    }
    cmd.spawn()
}

fn read_pid_file(path: &Path) -> Result<Option<Instance>, ServiceError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ServiceError::PidFile { path: path.to_owned(), source }),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(pid)), Some(Ok(started))) if pid > 0 && pid <= u64::from(u32::MAX) => {
            Ok(Some(Instance { pid: pid as u32, started }))
        }
        _ => Err(ServiceError::PidFile {
            path: path.to_owned(),
            source: std::io::Error::other(format!("expected `<pid> <start time>`, found {:?}", text.trim())),
        }),
    }
}

fn remove_pid_file(path: &Path) -> Result<(), ServiceError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ServiceError::PidFile { path: path.to_owned(), source: e })
        }
        _ => Ok(()),
    }
}

struct ProcStat {
    state: char,
    started: u64,
}

/// State and start time from `/proc/<pid>/stat` (fields 3 and 22; the command name in
/// parentheses may itself hold spaces and parentheses, so fields are counted from the last `)`).
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat { state: fields.first()?.chars().next()?, started: fields.get(19)?.parse().ok()? })
}

/// The recorded process is alive: same pid, same start time, not a zombie.
fn is_running(instance: Instance) -> bool {
    proc_stat(instance.pid).is_some_and(|s| s.started == instance.started && !matches!(s.state, 'Z' | 'X'))
}

/// SIGTERM, then after `grace` SIGKILL, to the service's process group (it was started as the
/// leader of its own group, so its workers get the signal too), or to the process alone when it
/// no longer leads a group of its own.
async fn terminate(instance: Instance, grace: Duration) -> Result<(), ServiceError> {
    use rustix::process::{Pid, Signal, getpgid, kill_process, kill_process_group};
    let Some(pid) = Pid::from_raw(instance.pid as i32) else { return Ok(()) };
    let leads_group = getpgid(Some(pid)).is_ok_and(|g| g == pid);
    let signal = |sig| {
        // Checked again right before each signal: a pid reused since is left alone.
        if is_running(instance) {
            let _ = if leads_group { kill_process_group(pid, sig) } else { kill_process(pid, sig) };
        }
    };
    signal(Signal::TERM);
    if wait_gone(instance, grace).await {
        return Ok(());
    }
    tracing::warn!(pid = instance.pid, "service ignored SIGTERM; sending SIGKILL");
    signal(Signal::KILL);
    if wait_gone(instance, Duration::from_secs(5)).await {
        Ok(())
    } else {
        Err(ServiceError::WontDie { pid: instance.pid })
    }
}

async fn wait_gone(instance: Instance, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(10);
    loop {
        if !is_running(instance) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_show_is_read_as_an_instance_only_when_active() {
        let up = "MainPID=4242\nActiveState=active\nExecMainStartTimestampMonotonic=123456\n";
        assert_eq!(parse_show(up), Some(Instance { pid: 4242, started: 123_456 }));
        assert_eq!(parse_show("MainPID=0\nActiveState=failed\n"), None);
        assert_eq!(parse_show("MainPID=17\nActiveState=deactivating\n"), None);
    }

    #[test]
    fn the_config_names_its_kind() {
        let m: ServiceManager =
            toml::from_str("kind = \"systemd\"\nunit = \"kyb-platform.service\"\n").unwrap();
        assert_eq!(
            m,
            ServiceManager::Systemd {
                unit: "kyb-platform.service".into(),
                systemctl: "systemctl".into(),
                timeout_ms: TimeoutMs::ms(30_000)
            }
        );
        let bad = toml::from_str::<ServiceManager>("kind = \"systemd\"\nunit = \"x\"\nuntit = \"y\"\n");
        assert!(bad.unwrap_err().to_string().contains("untit"));
    }

    #[tokio::test]
    async fn a_process_is_started_seen_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("svc.pid");
        let svc = ServiceManager::Process {
            command: vec!["sleep".into(), "30".into()],
            pid_file: pid_file.clone(),
            log_file: Some(dir.path().join("svc.log")),
            stop_timeout_ms: TimeoutMs::ms(5_000),
        };
        assert_eq!(svc.instance().await.unwrap(), None);
        svc.start().await.unwrap();
        let running = svc.instance().await.unwrap().expect("running after start");
        assert!(Path::new(&format!("/proc/{}", running.pid)).exists());
        svc.stop().await.unwrap();
        assert_eq!(svc.instance().await.unwrap(), None);
        assert!(!pid_file.exists());
        svc.stop().await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let svc = ServiceManager::Process {
            command: vec![dir.path().join("nope").display().to_string()],
            pid_file: dir.path().join("svc.pid"),
            log_file: None,
            stop_timeout_ms: TimeoutMs::ms(1_000),
        };
        let err = svc.start().await.unwrap_err();
        assert!(matches!(err, ServiceError::Spawn { .. }), "{err}");
    }
}
