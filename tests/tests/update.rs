//! `kyb-update` end to end: a fake service binary (kyb-fake-service, each "release" a copy with
//! its behaviour in a trailer) run by the process supervisor, updated, gated and rolled back by
//! the real binary.

use kyb_e2e::{binary, run, text};
use kyb_update::{GateConfig, ServiceManager};
use sha2::{Digest, Sha256};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Host {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    service: ServiceManager,
}

impl Drop for Host {
    /// No service outlives its test, whatever the test did.
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.dir.path().join("run/kyb-platform.pid"))
            && let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse::<i32>().ok())
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A release: a copy of the fake service with `behaviour` (JSON) as its trailer.
fn release(path: &Path, behaviour: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(binary("kyb-fake-service")).unwrap();
    bytes.extend_from_slice(format!("\n#kyb-fake-service {behaviour}\n").as_bytes());
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_owned()
}

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A release directory: the binary under the installed name, its SHA256SUMS, and a config.
fn release_dir(host: &Host, name: &str, behaviour: &str) -> PathBuf {
    let dir = host.dir.path().join(name);
    let bin = release(&dir.join("kyb-platform"), behaviour);
    std::fs::write(dir.join("SHA256SUMS"), format!("{}  kyb-platform\n", sha256(&bin))).unwrap();
    std::fs::create_dir_all(dir.join("configs")).unwrap();
    std::fs::write(dir.join("configs/production.yml"), "listen: 8080\nworkers: 8\nlog_level: info\n")
        .unwrap();
    dir
}

/// Installs version 1.0.0 (with `behaviour` added) and starts it under the supervisor.
async fn host(installed: &str, extra_config: &str) -> Host {
    host_in(installed, extra_config, "opt/kyb-platform").await
}

/// The releases layout: `opt/current` a symlink to `opt/releases/1.0.0`.
async fn releases_host(extra_config: &str) -> Host {
    let h = host_in(V1, extra_config, "opt/current/kyb-platform").await;
    let cfg = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(&h.config, cfg.replacen("[update]\n", "[update]\nreleases_dir = \"opt/releases\"\n", 1))
        .unwrap();
    h
}

async fn host_in(installed: &str, extra_config: &str, binary: &str) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::create_dir_all(d.join("run")).unwrap();
    std::fs::write(d.join("etc/production.yml"), "listen: 8080\nworkers: 4\nlog_level: info\n").unwrap();
    if binary.starts_with("opt/current/") {
        release(&d.join("opt/releases/1.0.0/kyb-platform"), installed);
        std::os::unix::fs::symlink("releases/1.0.0", d.join("opt/current")).unwrap();
    } else {
        release(&d.join(binary), installed);
    }
    let config = d.join("kyb-maint.toml");
    let text = format!(
        "[update]\nbinary = \"{binary}\"\nstate_dir = \"updates\"\nconfigs = [\"etc/production.yml\"]\n\
         check_timeout_ms = 3000\n\n\
         [update.service]\nkind = \"process\"\ncommand = [\"{bin}\", \"--listen\", \"127.0.0.1:{port}\"]\n\
         pid_file = \"run/kyb-platform.pid\"\nlog_file = \"run/kyb-platform.log\"\nstop_timeout_ms = 6000\n\n\
         [update.health]\nurl = \"http://127.0.0.1:{port}/health\"\ndeadline_ms = 4000\nsuccesses = 3\n\
         first_backoff_ms = 50\nmax_backoff_ms = 400\nprobe_timeout_ms = 1000\n{extra_config}",
        bin = d.join(binary).display()
    );
    std::fs::write(&config, text).unwrap();
    let service = ServiceManager::Process {
        command: vec![d.join(binary).display().to_string(), "--listen".into(), format!("127.0.0.1:{port}")],
        pid_file: d.join("run/kyb-platform.pid"),
        log_file: None,
        stop_timeout_ms: kyb_core::config::TimeoutMs::ms(6000),
    };
    let host = Host { dir, config, port, service };
    if !installed.contains("\"crash\":true") {
        host.service.start().await.unwrap();
        assert_eq!(host.version().await.as_deref(), Some("1.0.0"), "the installed version serves");
    }
    host
}

impl Host {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn update(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kyb-update"));
        cmd.args(args).arg("--config").arg(&self.config).env("KYB_LOG", "warn");
        cmd
    }

    /// The version `/health` reports after passing the gate, or None when it does not pass.
    async fn version(&self) -> Option<String> {
        let mut gate = GateConfig::default();
        gate.url = format!("http://127.0.0.1:{}/health", self.port);
        gate.deadline_ms = 4000;
        gate.first_backoff_ms = 50;
        gate.successes = 2;
        let g = kyb_update::health_gate(&gate, &self.service, None).await;
        g.passed.then(|| g.version.unwrap_or_default())
    }

    async fn pid(&self) -> Option<u32> {
        self.service.instance().await.unwrap().map(|i| i.pid)
    }

    /// Names in the binary's directory, to see that no staging file is left.
    fn opt_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("opt"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

const V1: &str = r#"{"version":"1.0.0"}"#;

/// Config lines for `[postgres]` on `db`, with a backup directory for its dumps.
fn with_database(db: &kyb_testkit::TestDb) -> String {
    format!(
        "\n[paths]\nbackup_dir = \"backups\"\n\n[postgres]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndbname = \"{}\"\npassword = \"{}\"\n",
        db.host,
        db.port,
        db.user,
        db.dbname,
        db.password.clone().unwrap_or_default()
    )
}

#[tokio::test]
async fn a_good_update_swaps_gates_and_keeps_the_previous_binary() {
    let h = host(V1, "").await;
    let old_sha = sha256(&h.path("opt/kyb-platform"));
    let old_pid = h.pid().await.unwrap();
    let rel = release_dir(&h, "release-2.0.0", r#"{"version":"2.0.0"}"#);
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel.to_str().unwrap()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("UPDATED"), "{stdout}");
    assert!(stdout.contains("matches checksum file"), "{stdout}");
    assert_eq!(h.version().await.as_deref(), Some("2.0.0"));
    assert_ne!(h.pid().await.unwrap(), old_pid);
    assert_eq!(sha256(&h.path("opt/kyb-platform")), sha256(&rel.join("kyb-platform")));
    assert_eq!(sha256(&h.path("opt/kyb-platform.previous")), old_sha);
    assert_eq!(h.opt_names(), ["kyb-platform", "kyb-platform.previous"], "no staging file left");
    // The release's config differs: shown, not installed.
    assert!(stdout.contains("-   2 workers: 4") && stdout.contains("+   2 workers: 8"), "{stdout}");
    assert!(std::fs::read_to_string(h.path("etc/production.yml")).unwrap().contains("workers: 4"));
    // The pre-update backup holds the old binary and the config; its state says done.
    let backups: Vec<PathBuf> = std::fs::read_dir(h.path("updates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("pre_update_"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(sha256(&backups[0].join("binary/kyb-platform")), old_sha);
    assert!(backups[0].join("configs/0-production.yml").is_file());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backups[0].join("state.json")).unwrap()).unwrap();
    assert_eq!(state["phase"], "done");
    assert!(!h.path("updates/in-progress.json").exists());
    // A run stopped between recording "done" and removing its marker: the next run must not
    // undo the finished update.
    let leftover = serde_json::json!({ "state": backups[0].join("state.json") });
    std::fs::write(h.path("updates/in-progress.json"), leftover.to_string()).unwrap();

    // A second update, asked to merge the configs, installs them too; JSON says how it ended.
    let rel3 = release_dir(&h, "release-3.0.0", r#"{"version":"3.0.0"}"#);
    let out = run(h.update(&[
        "app",
        "--version",
        "3.0.0",
        "--from",
        rel3.to_str().unwrap(),
        "--merge-configs",
        "--format",
        "json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "updated");
    assert!(!text(&out.stdout).contains("interrupted"), "{}", text(&out.stdout));
    assert!(!h.path("updates/in-progress.json").exists());
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["config_diffs"][0]["merged"], true);
    assert!(std::fs::read_to_string(h.path("etc/production.yml")).unwrap().contains("workers: 8"));
    assert_eq!(h.version().await.as_deref(), Some("3.0.0"));
}

#[tokio::test]
async fn the_update_dumps_the_database_first() {
    let db = kyb_testkit::fresh_database("update_dump").await;
    let extra = with_database(&db);
    let h = host(V1, &extra).await;
    std::fs::create_dir_all(h.path("backups")).unwrap();
    let rel = release_dir(&h, "rel", r#"{"version":"2.0.0"}"#);
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel.to_str().unwrap()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("database dump"), "{stdout}");
    let dumps: Vec<_> = std::fs::read_dir(h.path("backups/full")).unwrap().collect();
    assert_eq!(dumps.len(), 1);

    // Without a good dump nothing changes: the database is gone, the update stops before the
    // service is touched.
    let pid = h.pid().await.unwrap();
    let broken =
        std::fs::read_to_string(&h.config).unwrap().replace(&format!("port = {}\n", db.port), "port = 1\n");
    std::fs::write(&h.config, broken).unwrap();
    let rel3 = release_dir(&h, "rel3", r#"{"version":"3.0.0"}"#);
    let out = run(h.update(&["app", "--version", "3.0.0", "--from", rel3.to_str().unwrap()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("backup") && stdout.contains("nothing was changed"), "{stdout}");
    assert_eq!(h.pid().await, Some(pid), "the service was not restarted");
    assert_eq!(h.version().await.as_deref(), Some("2.0.0"));
    assert_eq!(h.opt_names(), ["kyb-platform", "kyb-platform.previous"]);
}

#[tokio::test]
async fn a_binary_failing_its_config_check_is_not_swapped() {
    let h = host(V1, "").await;
    let (sha, pid) = (sha256(&h.path("opt/kyb-platform")), h.pid().await);
    let rel = release_dir(&h, "rel", r#"{"version":"2.0.0","config_check":"fail"}"#);
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel.to_str().unwrap()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("unknown key `listen_adress`"), "the check's own message is shown: {stdout}");
    assert!(stdout.contains("nothing was changed"), "{stdout}");
    assert_eq!(sha256(&h.path("opt/kyb-platform")), sha);
    assert_eq!(h.pid().await, pid, "not stopped, not restarted");
    assert_eq!(h.opt_names(), ["kyb-platform"], "the staged copy is removed");
    assert_eq!(h.version().await.as_deref(), Some("1.0.0"));

    // A check that hangs is stopped at its deadline.
    let rel = release_dir(&h, "rel-hang", r#"{"version":"2.0.0","config_check":"hang"}"#);
    let started = Instant::now();
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("did not finish within 3000 ms"), "{}", text(&out.stdout));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(h.version().await.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn a_binary_that_crashes_at_start_is_rolled_back() {
    let h = host(V1, "").await;
    let sha = sha256(&h.path("opt/kyb-platform"));
    let rel = release_dir(&h, "rel", r#"{"version":"2.0.0","crash":true}"#);
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel.to_str().unwrap()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("rolled back"), "{stdout}");
    assert!(stdout.contains("exited during the gate") || stdout.contains("not running"), "{stdout}");
    assert_eq!(sha256(&h.path("opt/kyb-platform")), sha);
    assert_eq!(h.version().await.as_deref(), Some("1.0.0"));
    assert!(!h.path("updates/in-progress.json").exists());
}

#[tokio::test]
async fn an_unhealthy_binary_is_rolled_back_with_owners_and_modes_kept() {
    let h = host(V1, "").await;
    // The service's files belong to its own user, as on a real host (the tests run as root).
    let nobody = 65534;
    for (path, mode) in [(h.path("opt/kyb-platform"), 0o750), (h.path("etc/production.yml"), 0o640)] {
        std::os::unix::fs::chown(&path, Some(nobody), Some(nobody)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let sha = sha256(&h.path("opt/kyb-platform"));
    let rel = release_dir(&h, "rel", r#"{"version":"2.0.0","health":"fail"}"#);
    let out =
        run(h.update(&["app", "--version", "2.0.0", "--from", rel.to_str().unwrap(), "--merge-configs"]))
            .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("HTTP 503"), "{stdout}");
    assert!(stdout.contains("previous binary put back from"), "{stdout}");
    assert_eq!(h.version().await.as_deref(), Some("1.0.0"));
    assert_eq!(sha256(&h.path("opt/kyb-platform")), sha);
    assert!(!h.path("updates/in-progress.json").exists());
    // The merged config is put back too, and both files keep their owner and mode.
    assert!(std::fs::read_to_string(h.path("etc/production.yml")).unwrap().contains("workers: 4"));
    for (path, mode) in [(h.path("opt/kyb-platform"), 0o750), (h.path("etc/production.yml"), 0o640)] {
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (nobody, nobody, mode), "{}", path.display());
    }

    // A good release installed over them gets the installed binary's owner; a merged config
    // keeps the config's.
    let good = release_dir(&h, "rel-good", r#"{"version":"2.0.1"}"#);
    let out =
        run(h.update(&["app", "--version", "2.0.1", "--from", good.to_str().unwrap(), "--merge-configs"]))
            .await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let bin = std::fs::metadata(h.path("opt/kyb-platform")).unwrap();
    assert_eq!((bin.uid(), bin.gid()), (nobody, nobody));
    let conf = std::fs::metadata(h.path("etc/production.yml")).unwrap();
    assert_eq!((conf.uid(), conf.gid(), conf.mode() & 0o7777), (nobody, nobody, 0o640));
    assert!(std::fs::read_to_string(h.path("etc/production.yml")).unwrap().contains("workers: 8"));
}

#[tokio::test]
async fn a_failed_rollback_exits_2_and_describes_the_state() {
    // The installed version starts once (the test's start) and never again.
    let marker = tempfile::tempdir().unwrap();
    let once = marker.path().join("started");
    let h = host(&format!(r#"{{"version":"1.0.0","crash_if_exists":"{}"}}"#, once.display()), "").await;
    let rel = release_dir(&h, "rel", r#"{"version":"2.0.0","crash":true}"#);
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel.to_str().unwrap()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("ROLLBACK FAILED"), "{stdout}");
    assert!(stdout.contains("kyb-platform is the previous version"), "{stdout}");
    assert!(stdout.contains("is not running"), "{stdout}");
    assert!(stdout.contains("pre-update backup:"), "{stdout}");
    assert!(h.path("updates/in-progress.json").exists(), "the next run knows");
    let good = release_dir(&h, "rel-good", r#"{"version":"2.0.1"}"#);
    let out =
        run(h.update(&["app", "--version", "2.0.1", "--from", good.to_str().unwrap(), "--dry-run"])).await;
    let stdout = text(&out.stdout);
    assert!(stdout.contains("would be rolled back first"), "{stdout}");
    assert!(h.path("updates/in-progress.json").exists(), "a dry run leaves the record");
    assert_eq!(h.pid().await, None, "and starts nothing");

    // Once the operator mends the old version, the next run rolls back first, then updates.
    std::fs::remove_file(&once).unwrap();
    let out = run(h.update(&["app", "--version", "2.0.1", "--from", good.to_str().unwrap()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("interrupted update to 2.0.0"), "{stdout}");
    assert_eq!(h.version().await.as_deref(), Some("2.0.1"));
}

/// The phases recorded in the pre-update backups, sorted.
fn phases(h: &Host) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(h.path("updates"))
        .unwrap()
        .map(|e| e.unwrap().path().join("state.json"))
        .filter(|p| p.exists())
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            v["phase"].as_str().unwrap().to_owned()
        })
        .collect();
    out.sort();
    out
}

/// Starts an update, waits for `ready`, kills it with SIGKILL, and runs the same update again.
async fn kill_and_rerun(h: &Host, rel: &Path, ready: impl Fn() -> bool) -> Output {
    let mut cmd = h.update(&["app", "--version", "2.0.0", "--from", rel.to_str().unwrap()]);
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "the update never reached the point to kill it at");
        assert!(child.try_wait().unwrap().is_none(), "the update ended before it could be killed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    run(h.update(&["app", "--version", "2.0.0", "--from", rel.to_str().unwrap()])).await
}

#[tokio::test]
async fn kill_9_while_the_old_version_stops_then_a_rerun_ends_healthy_on_one_version() {
    let h = host(r#"{"version":"1.0.0","slow_stop_ms":1500}"#, "").await;
    let v1_sha = sha256(&h.path("opt/kyb-platform"));
    let rel = release_dir(&h, "rel", r#"{"version":"2.0.0"}"#);
    let marker = h.path("updates/in-progress.json");
    let out = kill_and_rerun(&h, &rel, || marker.exists()).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("interrupted update to 2.0.0"), "{stdout}");
    assert_eq!(h.version().await.as_deref(), Some("2.0.0"));
    assert_eq!(sha256(&h.path("opt/kyb-platform")), sha256(&rel.join("kyb-platform")));
    assert_eq!(sha256(&h.path("opt/kyb-platform.previous")), v1_sha, "the old version is still kept");
    assert!(!marker.exists());
    assert_eq!(h.opt_names(), ["kyb-platform", "kyb-platform.previous"]);
    assert_eq!(phases(&h), ["done", "rolled_back"], "the killed run's backup records its rollback");
}

#[tokio::test]
async fn kill_9_during_the_health_gate_then_a_rerun_ends_healthy_on_one_version() {
    let h = host(V1, "").await;
    let first = h.pid().await.unwrap();
    let rel = release_dir(&h, "rel", r#"{"version":"2.0.0","slow_start_ms":1500}"#);
    let pid_file = h.path("run/kyb-platform.pid");
    let new_pid_recorded = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()))
            .is_some_and(|p| p != first)
    };
    let v1_sha = sha256(&h.path("opt/kyb-platform"));
    let out = kill_and_rerun(&h, &rel, new_pid_recorded).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("interrupted update to 2.0.0"), "{stdout}");
    assert!(
        stdout.contains("previous binary put back from"),
        "the swapped binary was undone first: {stdout}"
    );
    assert_eq!(h.version().await.as_deref(), Some("2.0.0"));
    assert_eq!(sha256(&h.path("opt/kyb-platform")), sha256(&rel.join("kyb-platform")));
    assert_eq!(sha256(&h.path("opt/kyb-platform.previous")), v1_sha);
    assert_eq!(phases(&h), ["done", "rolled_back"]);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let h = host(V1, "").await;
    let (sha, pid) = (sha256(&h.path("opt/kyb-platform")), h.pid().await);
    let rel = release_dir(&h, "rel", r#"{"version":"2.0.0"}"#);
    let rel_s = rel.to_str().unwrap();
    let missing = h.path("no-such-release");
    let etc = h.path("etc");
    let zeros = "0".repeat(64);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--version", "2.0.0", "--from", missing.to_str().unwrap()], 1, "No such file"),
        (vec!["--version", "2.0.0", "--from", etc.to_str().unwrap()], 1, "has no kyb-platform"),
        (vec!["--version", "2.0.0", "--from", rel_s, "--sha256", &zeros], 1, "--sha256 says"),
        (vec!["--version", "2.0.0", "--from", rel_s, "--sha256", "abc"], 1, "not 64 hex digits"),
        (vec!["--version", "../../etc", "--from", rel_s], 3, "invalid version"),
        (vec!["--version", "", "--from", rel_s], 3, "invalid version"),
        (vec!["--from", rel_s], 3, "--version"),
    ];
    for (args, code, says) in cases {
        let mut all = vec!["app"];
        all.extend(&args);
        let out = run(h.update(&all)).await;
        let both = text(&out.stdout) + &text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {both}");
        assert!(both.contains(says), "{args:?}: {both}");
    }
    // A checksum file that lists another file, or is not one.
    std::fs::write(rel.join("SHA256SUMS"), format!("{}  other-binary\n", "a".repeat(64))).unwrap();
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel_s])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("has no line for kyb-platform"), "{}", text(&out.stdout));
    std::fs::write(rel.join("SHA256SUMS"), "garbage\n").unwrap();
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel_s])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("line 1"), "{}", text(&out.stdout));
    std::fs::remove_file(rel.join("SHA256SUMS")).unwrap();
    // One that is a FIFO (nobody writes it) or a device is refused at once, never waited on.
    for special in ["fifo", "/dev/zero"] {
        if special == "fifo" {
            let made = Command::new("mkfifo").arg(rel.join("SHA256SUMS")).status().unwrap();
            assert!(made.success());
        } else {
            std::os::unix::fs::symlink(special, rel.join("SHA256SUMS")).unwrap();
        }
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            run(h.update(&["app", "--version", "2.0.0", "--from", rel_s])),
        )
        .await
        .expect("a special checksum file must not hang the update");
        assert_eq!(out.status.code(), Some(1), "{special}");
        assert!(text(&out.stdout).contains("not a regular file"), "{special}: {}", text(&out.stdout));
        std::fs::remove_file(rel.join("SHA256SUMS")).unwrap();
    }

    // Another update holding the lock.
    std::fs::create_dir_all(h.path("updates")).unwrap();
    let lock = kyb_core::fs::RunLock::try_acquire(&h.path("updates/update.lock")).unwrap();
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel_s])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("update.lock"), "{}", text(&out.stderr));
    drop(lock);

    // A release that is not executable, with no mode configured.
    std::fs::set_permissions(rel.join("kyb-platform"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel_s])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("not executable"), "{}", text(&out.stdout));

    // A dry run plans, with the checksum computed, and changes nothing.
    std::fs::set_permissions(rel.join("kyb-platform"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel_s, "--dry-run"])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("DRY RUN") && stdout.contains("would stop process"), "{stdout}");
    assert!(stdout.contains("+   2 workers: 8"), "the config diff is part of the plan: {stdout}");

    assert_eq!(sha256(&h.path("opt/kyb-platform")), sha, "nothing was swapped");
    assert_eq!(h.pid().await, pid, "the service was never restarted");
    assert_eq!(h.opt_names(), ["kyb-platform"]);
    let left: Vec<_> = std::fs::read_dir(h.path("updates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "update.lock")
        .collect();
    assert!(left.is_empty(), "no backup was made for updates that stopped early: {left:?}");

    // An interrupted update's record that cannot be read: the state is unknown, exit 2.
    std::fs::write(h.path("updates/in-progress.json"), "{ torn").unwrap();
    let out = run(h.update(&["app", "--version", "2.0.0", "--from", rel_s])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("in-progress.json"), "{}", text(&out.stderr));
    assert_eq!(h.pid().await, pid);
    std::fs::remove_file(h.path("updates/in-progress.json")).unwrap();

    // A config without [update].
    std::fs::write(h.path("empty.toml"), "").unwrap();
    let mut cmd = Command::new(binary("kyb-update"));
    cmd.args(["app", "--version", "2.0.0", "--from", rel_s, "--config"]).arg(h.path("empty.toml"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("has no [update] section"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn memory_over_the_threshold_restarts_only_when_configured_and_allowed() {
    // A window three days away: certainly closed now.
    let day = time::OffsetDateTime::now_utc().weekday().next().next().next();
    let closed = format!("\n[window]\nallowed = [\"{} 02:00-03:00\"]\n", &day.to_string()[..3]);
    // The app's /metrics (the fake app's realistic exposition) gives the runtime numbers.
    let app = kyb_testkit::FakeApp::start(kyb_testkit::HealthMode::Healthy).await;
    let h = host(
        V1,
        &format!(
            "\n[app]\nbase_url = \"{}\"\n\n[tuning.memory]\nrss_warn_bytes = 1\nrss_crit_bytes = 1099511627776\nrestart = true\n{closed}",
            app.url("")
        ),
    )
    .await;
    let pid = h.pid().await.unwrap();

    let out = run(h.update(&["memory", "--format", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "Warn: {}{}", text(&out.stdout), text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = &json["tasks"][0]["checks"];
    assert_eq!(checks[0]["name"], "rss");
    assert_eq!(checks[0]["status"], "warn");
    let runtime = checks.as_array().unwrap().iter().find(|c| c["name"] == "runtime").expect("runtime check");
    let summary = runtime["summary"].as_str().unwrap();
    assert!(summary.contains("process_open_fds 57"), "{summary}");
    // The RSS the app reports is judged against the threshold, not listed as a runtime number.
    let app_rss = checks.as_array().unwrap().iter().find(|c| c["name"] == "app rss").expect("app rss");
    assert_eq!(app_rss["status"], "warn", "{app_rss}");
    let restart = checks.as_array().unwrap().iter().find(|c| c["name"] == "restart").expect("restart check");
    assert!(restart["summary"].as_str().unwrap().contains("not allowed now"), "{checks}");
    assert_eq!(h.pid().await, Some(pid), "outside the window: not restarted");

    let out = run(h.update(&["memory", "--dry-run"])).await;
    assert!(text(&out.stdout).contains("would restart"), "{}", text(&out.stdout));
    assert_eq!(h.pid().await, Some(pid));

    let out = run(h.update(&["memory", "--emergency"])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("restarted; health gate"), "{stdout}");
    assert_ne!(h.pid().await, Some(pid));
    assert_eq!(h.version().await.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn sysctl_writes_its_managed_file_once_and_refuses_unknown_keys() {
    let h = host(
        V1,
        "\n[tuning.sysctl]\nroot = \"fakeroot\"\n[tuning.sysctl.values]\n\"net.core.somaxconn\" = \"4096\"\n",
    )
    .await;
    let knob = h.path("fakeroot/proc/sys/net/core/somaxconn");
    std::fs::create_dir_all(knob.parent().unwrap()).unwrap();
    std::fs::write(&knob, "128\n").unwrap();
    let managed = h.path("fakeroot/etc/sysctl.d/60-kyb.conf");

    let out = run(h.update(&["sysctl", "--dry-run"])).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("would change"), "{}", text(&out.stdout));
    assert!(!managed.exists());

    let out = run(h.update(&["sysctl"])).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("rewritten"), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(&knob).unwrap(), "4096\n");
    let modified = std::fs::metadata(&managed).unwrap().modified().unwrap();
    let out = run(h.update(&["sysctl"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("is up to date"), "{}", text(&out.stdout));
    assert_eq!(std::fs::metadata(&managed).unwrap().modified().unwrap(), modified);

    let cfg = std::fs::read_to_string(&h.config).unwrap() + "\"net.core.no_such_knob\" = \"1\"\n";
    std::fs::write(&h.config, cfg).unwrap();
    let out = run(h.update(&["sysctl"])).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("unknown sysctl key `net.core.no_such_knob`"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn db_backs_up_then_migrates_then_verifies() {
    let db = kyb_testkit::fresh_database("update_db").await;
    let extra = with_database(&db);
    let h = host(V1, &extra).await;
    std::fs::create_dir_all(h.path("backups")).unwrap();
    std::fs::create_dir_all(h.path("migrations")).unwrap();
    std::fs::write(
        h.path("migrations/0001_accounts.sql"),
        "CREATE TABLE accounts (id bigint PRIMARY KEY);\n",
    )
    .unwrap();
    std::fs::write(
        h.path("migrations/0002_accounts_index.sql"),
        "-- kyb:no-transaction\nCREATE INDEX CONCURRENTLY accounts_id_idx ON accounts (id);\n",
    )
    .unwrap();
    let dir = h.path("migrations");
    // A dry run lists what would run, dumps nothing and applies nothing.
    let out = run(h.update(&["db", "--dir", dir.to_str().unwrap(), "--dry-run"])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("would dump") && stdout.contains("2 would apply, 0 already applied"), "{stdout}");
    assert!(!h.path("backups/full").exists());
    // A directory that is not there: exit 1, naming it.
    let out = run(h.update(&["db", "--dir", h.path("no-such-dir").to_str().unwrap(), "--skip-backup"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("no-such-dir"), "{}", text(&out.stdout));

    let out = run(h.update(&["db", "--dir", dir.to_str().unwrap()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("database dumped to"), "{stdout}");
    assert!(stdout.contains("2 applied, 0 already applied"), "{stdout}");
    let out = run(h.update(&["db", "--dir", dir.to_str().unwrap()])).await;
    assert!(text(&out.stdout).contains("0 applied, 2 already applied"), "{}", text(&out.stdout));

    // A failing migration: exit 1, and the backup was made first.
    std::fs::write(h.path("migrations/0003_broken.sql"), "ALTER TABLE nope ADD COLUMN x int;\n").unwrap();
    let out = run(h.update(&["db", "--dir", dir.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_dir(h.path("backups/full")).unwrap().count(), 3);
}

#[tokio::test]
async fn only_the_newest_finished_pre_update_backups_are_kept() {
    let h = host(V1, "").await;
    let cfg =
        std::fs::read_to_string(&h.config).unwrap().replace("[update]\n", "[update]\nkeep_backups = 2\n");
    std::fs::write(&h.config, cfg).unwrap();
    for v in ["2.0.0", "3.0.0", "4.0.0"] {
        let rel = release_dir(&h, &format!("rel-{v}"), &format!(r#"{{"version":"{v}"}}"#));
        let out = run(h.update(&["app", "--version", v, "--from", rel.to_str().unwrap()])).await;
        assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    }
    let mut kept: Vec<String> = std::fs::read_dir(h.path("updates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pre_update_"))
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept[0].ends_with("_3.0.0") && kept[1].ends_with("_4.0.0"), "{kept:?}");
    assert_eq!(h.version().await.as_deref(), Some("4.0.0"));
}

#[tokio::test]
async fn the_releases_layout_switches_the_current_link_and_rolls_it_back() {
    let h = releases_host("").await;
    let cfg = std::fs::read_to_string(&h.config).unwrap().replacen(
        "[update]\n",
        "[update]\nkeep_releases = 3\n",
        1,
    );
    std::fs::write(&h.config, cfg).unwrap();
    let current = || {
        std::fs::read_link(h.path("opt/current")).unwrap().file_name().unwrap().to_string_lossy().into_owned()
    };
    let releases = || {
        let mut names: Vec<String> = std::fs::read_dir(h.path("opt/releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let update = |v: &str, behaviour: &str, name: &str| {
        let rel = release_dir(&h, name, behaviour);
        h.update(&["app", "--version", v, "--from", rel.to_str().unwrap()])
    };

    let out = run(update("2.0.0", r#"{"version":"2.0.0"}"#, "rel-2")).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("now points to"), "{stdout}");
    assert_eq!(current(), "2.0.0");
    assert_eq!(releases(), ["1.0.0", "2.0.0"], "no staging directory left");
    assert_eq!(h.version().await.as_deref(), Some("2.0.0"));

    // An unhealthy release: the link goes back.
    let out = run(update("3.0.0", r#"{"version":"3.0.0","health":"fail"}"#, "rel-3-bad")).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("points to") && stdout.contains("again"), "{stdout}");
    assert_eq!(current(), "2.0.0");
    assert_eq!(h.version().await.as_deref(), Some("2.0.0"));

    // The failed release's directory does not block a good build of the same version.
    let out = run(update("3.0.0", r#"{"version":"3.0.0","build":2}"#, "rel-3-good")).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(current(), "3.0.0");
    assert_eq!(h.version().await.as_deref(), Some("3.0.0"));

    // Installing the current release again changes nothing.
    let out = run(update("3.0.0", r#"{"version":"3.0.0"}"#, "rel-3-again")).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("3.0.0 is already the current release"), "{}", text(&out.stderr));

    // Past keep_releases, the oldest go; the current and previous stay.
    let out = run(update("4.0.0", r#"{"version":"4.0.0"}"#, "rel-4")).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(current(), "4.0.0");
    assert_eq!(releases(), ["2.0.0", "3.0.0", "4.0.0"], "{stdout}");
    assert!(stdout.contains("old release(s) removed: 1.0.0"), "{stdout}");

    // The same bytes under another version: the gate sees the old version answering, and the
    // rollback points `current` back although the binaries hash the same.
    let same = h.path("rel-same");
    std::fs::create_dir_all(&same).unwrap();
    std::fs::copy(h.path("rel-4/kyb-platform"), same.join("kyb-platform")).unwrap();
    let out = run(h.update(&["app", "--version", "4.0.1", "--from", same.to_str().unwrap()])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("reports version 4.0.0, not 4.0.1"), "{stdout}");
    assert_eq!(current(), "4.0.0");
    assert_eq!(
        std::fs::read_link(h.path("opt/current")).unwrap(),
        Path::new("releases/4.0.0"),
        "still relative"
    );

    // A `current` that is not a link into releases_dir is refused before anything happens.
    std::fs::remove_file(h.path("opt/current")).unwrap();
    std::fs::create_dir_all(h.path("opt/current")).unwrap();
    let out = run(update("5.0.0", r#"{"version":"5.0.0"}"#, "rel-5")).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("not a symlink to a release"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn pruning_an_old_release_never_deletes_through_a_bind_mount_inside_it() {
    let h = releases_host("").await;
    let cfg = std::fs::read_to_string(&h.config).unwrap().replacen(
        "[update]\n",
        "[update]\nkeep_releases = 2\n",
        1,
    );
    std::fs::write(&h.config, cfg).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious"), "keep").unwrap();
    let mnt = h.path("opt/releases/1.0.0/data");
    std::fs::create_dir_all(&mnt).unwrap();
    let out =
        std::process::Command::new("mount").arg("--bind").arg(outside.path()).arg(&mnt).output().unwrap();
    assert!(out.status.success(), "this test bind-mounts and needs root: {}", text(&out.stderr));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    for v in ["2.0.0", "3.0.0"] {
        let rel = release_dir(&h, &format!("rel-{v}"), &format!(r#"{{"version":"{v}"}}"#));
        let out = run(h.update(&["app", "--version", v, "--from", rel.to_str().unwrap()])).await;
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        if v == "3.0.0" {
            assert!(stdout.contains("cannot remove") && stdout.contains("is a mount point"), "{stdout}");
        }
    }
    assert_eq!(std::fs::read_to_string(outside.path().join("precious")).unwrap(), "keep");
    assert!(mnt.join("precious").exists(), "the mount point and the release above it stay");
    assert_eq!(h.version().await.as_deref(), Some("3.0.0"));
}
