//! The config file through the binaries: what is refused at load (exit 2, before anything runs),
//! how the refusal reads, and the settings that switch parts of a flow off.

use kyb_e2e::{binary, text};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to completion, failing the test if it is still running at the deadline (generous:
/// the machine may be busy). A hang is the defect some of these tests are about.
fn run(mut cmd: Command) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn binary");
    let mut backoff = Duration::from_millis(5);
    loop {
        if child.try_wait().expect("wait for the binary").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!("still running after 60 s; stderr so far:\n{}", text(&out.stderr));
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(200));
    }
}

fn maint(args: &[&str], config: &Path) -> Output {
    let mut cmd = Command::new(binary("kyb-maint"));
    cmd.args(args).arg("--config").arg(config);
    run(cmd)
}

/// Runs `kyb-maint daily` on `config` and returns its stderr, checking it could not start.
fn refused(config: &Path) -> String {
    let out = maint(&["daily"], config);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

fn write(path: &Path, body: impl AsRef<[u8]>) -> PathBuf {
    std::fs::write(path, body).unwrap();
    path.to_owned()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// Only a regular file of at most 1 MiB is read as config.
mod file_kinds {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("kyb-maint.toml");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
        let err = refused(&fifo);
        assert!(
            err.contains(&format!(
                "{}: cannot read config file: it is a FIFO, not a regular file",
                fifo.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn dev_zero_is_refused() {
        let err = refused(Path::new("/dev/zero"));
        assert!(err.contains("/dev/zero: cannot read config file: it is a character device"), "{err}");
    }

    #[test]
    fn a_two_mebibyte_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = write(&dir.path().join("big.toml"), "# a comment line\n".repeat(2 * 1024 * 1024 / 17 + 1));
        let err = refused(&big);
        assert!(
            err.contains(&format!(
                "{}: cannot read config file: it is larger than the 1.0 MiB limit",
                big.display()
            )),
            "{err}"
        );
        assert!(!dir.path().join("maint").exists());
    }

    #[test]
    fn a_password_file_that_is_a_fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("redis.password");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
        let config = write(
            &dir.path().join("kyb-maint.toml"),
            "[paths]\nmaintenance_dir = \"maint\"\n[redis]\npassword_file = \"redis.password\"\n",
        );
        let err = refused(&config);
        assert!(err.contains(&format!("{}:4:1:", config.display())), "{err}");
        assert!(err.contains(&format!("cannot read {}: it is a FIFO", fifo.display())), "{err}");
        assert!(err.contains("(key `redis.password_file`)"), "{err}");
    }
}

// Every error about the file's content reads `file:line:column: what (key `k`); what to do`.
mod positions {
    use super::*;

    #[test]
    fn toml_and_schema_errors_name_position_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let head = "[paths]\nmaintenance_dir = \"maint\"\n";
        for (body, at, key, hint) in [
            (format!("{head}[redis]\nport = = 1\n").into_bytes(), "4:8", "redis.port", "fix the TOML syntax"),
            (
                format!("{head}[redis]\nport = 123456789012345678901234\n").into_bytes(),
                "4:8",
                "redis.port",
                "use a smaller number",
            ),
            (
                format!("{head}[redis]\nport = 1\n[redis]\nhost = \"x\"\n").into_bytes(),
                "5:1",
                "redis",
                "merge the two sections",
            ),
            (b"[paths]\nmaintenance_dir = \"ma\xefnt\"\n".to_vec(), "2:22", "paths.maintenance_dir", "UTF-8"),
            (
                format!("{head}[redis]\nport = \"six\"\n").into_bytes(),
                "4:8",
                "redis.port",
                "use a whole number, without quotes",
            ),
            (format!("{head}[redis]\nprot = 6379\n").into_bytes(), "4:1", "redis.prot", "fix its spelling"),
        ] {
            let config = write(&dir.path().join("kyb-maint.toml"), &body);
            let err = refused(&config);
            let shown = String::from_utf8_lossy(&body);
            assert!(
                err.contains(&format!("kyb-maint: error: {}:{at}: ", config.display())),
                "{shown}: {err}"
            );
            assert!(err.contains(&format!("(key `{key}`); ")) && err.contains(hint), "{shown}: {err}");
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
        assert!(!dir.path().join("maint").exists(), "nothing runs on a bad config");
    }
}

// Settings refused at load because a run would do harm with them.
mod refused_settings {
    use super::*;

    #[test]
    fn a_zero_age_is_refused_and_no_report_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let reports = dir.path().join("maint/reports");
        std::fs::create_dir_all(&reports).unwrap();
        let report = write(&reports.join("daily-report-20260101-020000.txt"), "kept\n");
        for (line, key) in [
            ("reports_max_age_days = 0", "cleanup.reports_max_age_days"),
            ("temp_max_age_days = 0", "cleanup.temp_max_age_days"),
        ] {
            let config = write(
                &dir.path().join("kyb-maint.toml"),
                format!("[paths]\nmaintenance_dir = \"maint\"\ntemp_dir = \"tmp\"\n\n[cleanup]\n{line}\n"),
            );
            let err = refused(&config);
            assert!(err.contains(&format!("{}:6:1: must be", config.display())), "{err}");
            assert!(err.contains(&format!("(key `{key}`)")), "{err}");
        }
        assert_eq!(std::fs::read_to_string(&report).unwrap(), "kept\n");
    }

    #[test]
    fn a_password_file_others_can_read_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let pw = write(&dir.path().join("redis.password"), "hunter2\n");
        let config = dir.path().join("kyb-maint.toml");
        // A dead port and a short deadline: the run after the config loads is quick.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let body = |extra: &str| {
            format!(
                "[paths]\nmaintenance_dir = \"maint\"\n[redis]\nhost = \"127.0.0.1\"\nport = {port}\n\
                 timeout_ms = 500\npassword_file = \"redis.password\"\n{extra}"
            )
        };
        write(&config, body(""));
        chmod(&pw, 0o644);
        let err = refused(&config);
        assert!(
            err.contains(&format!(
                "{}:7:1: {} is open to group or others (mode 0644)",
                config.display(),
                pw.display()
            )),
            "{err}"
        );
        assert!(err.contains("chmod 600") && err.contains("allow_insecure_password_file"), "{err}");
        assert!(!err.contains("hunter2"));

        for (mode, extra) in [(0o600, ""), (0o644, "allow_insecure_password_file = true\n")] {
            chmod(&pw, mode);
            write(&config, body(extra));
            let out = maint(&["daily", "--dry-run"], &config);
            assert_ne!(out.status.code(), Some(2), "mode {mode:o}, {extra}: {}", text(&out.stderr));
            assert!(!text(&out.stderr).contains("password_file"), "{}", text(&out.stderr));
        }
    }

    #[test]
    fn a_symlinked_temp_dir_is_a_config_error_and_nothing_behind_it_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let victim = write(&elsewhere.join("kyb-old"), "keep\n");
        let link = dir.path().join("tmp");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let config = write(
            &dir.path().join("kyb-maint.toml"),
            "[paths]\nmaintenance_dir = \"maint\"\ntemp_dir = \"tmp\"\n[cleanup]\ntemp_max_age_days = 0.00001\n",
        );
        let err = refused(&config);
        assert!(
            err.contains(&format!(
                "{}:3:1: {} is a symlink (to {}); kyb-maint deletes inside this directory and never through a symlink",
                config.display(),
                link.display(),
                elsewhere.display()
            )),
            "{err}"
        );
        assert!(err.contains("(key `paths.temp_dir`)"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
        assert!(!dir.path().join("maint").exists());
    }
}

// Parts of a flow that the config switches off, and refusals at run time that must say why.
mod flows {
    use super::*;

    #[test]
    fn the_weekly_os_update_check_can_be_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let marker = d.join("apt-get-ran");
        let apt = write(&d.join("apt-get"), format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()));
        chmod(&apt, 0o755);
        write(&d.join("os-release"), "ID=debian\n");
        let config = write(
            &d.join("kyb-maint.toml"),
            "[paths]\nmaintenance_dir = \"maint\"\n\n[security]\nos_updates = false\napt_get = \"apt-get\"\n\
             os_release = \"os-release\"\n",
        );
        let out = maint(&["weekly", "--format", "json"], &config);
        assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let task = json["tasks"].as_array().unwrap().iter().find(|t| t["name"] == "os-updates").unwrap();
        assert_eq!(task["status"], "ok");
        assert_eq!(task["summary"], "switched off ([security] os_updates = false)");
        assert!(!marker.exists(), "apt-get must not run when the check is off");
    }

    #[test]
    fn a_symlinked_run_log_is_refused_and_called_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("maint/logs");
        std::fs::create_dir_all(&logs).unwrap();
        let victim = write(&dir.path().join("victim"), "keep\n");
        let log = logs.join("daily-maintenance.log");
        std::os::unix::fs::symlink(&victim, &log).unwrap();
        let config = write(&dir.path().join("kyb-maint.toml"), "[paths]\nmaintenance_dir = \"maint\"\n");
        let err = refused(&config);
        assert!(
            err.contains(&format!(
                "cannot open run log {}: it is a symlink to {}, and run logs are never written through one",
                log.display(),
                victim.display()
            )),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    }
}
