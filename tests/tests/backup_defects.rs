//! End-to-end tests of the kyb-backup binary: what a run killed with SIGKILL leaves behind, what
//! its child processes see of its environment, and what `list` prints.

use kyb_e2e::{binary, check, run, task, text};
use kyb_testkit::{FakeApp, HealthMode, TestDb, fresh_database, redis};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temp tree with a config file for the fake app, a fresh database with a `ledger` table,
/// Redis, and `<dir>/backups`.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    db: TestDb,
    _app: FakeApp,
}

async fn setup(tag: &str, backup_section: &str) -> Setup {
    let app = FakeApp::start(HealthMode::Healthy).await;
    let db = fresh_database(tag).await;
    db.connect()
        .await
        .batch_execute(
            "CREATE TABLE ledger (id bigint PRIMARY KEY, amount numeric);
             INSERT INTO ledger SELECT g, g FROM generate_series(1, 1000) g;
             CREATE VIEW big AS SELECT id FROM ledger WHERE amount > 500;",
        )
        .await
        .unwrap();
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kyb-maint.toml");
    let text = format!(
        "[paths]\nmaintenance_dir = \"maint\"\nbackup_dir = \"backups\"\n\n\
         [app]\nbase_url = \"{}\"\ntimeout_ms = 3000\n\n\
         [postgres]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndbname = \"{}\"\npassword = \"{}\"\ntimeout_ms = 3000\n\n\
         [redis]\nhost = \"{}\"\nport = {}\npassword = \"{}\"\ntimeout_ms = 3000\n\n\
         [system]\ncpu_sample_ms = 50\n\
         # Pinned so that a busy or full test machine cannot turn these into failures.\n\
         disk_pct = {{ warn = 100, crit = 100 }}\nmemory_pct = {{ warn = 100, crit = 100 }}\n\
         load_per_core = {{ warn = 1000, crit = 1000 }}\n\n\
         [backup]\nkeep_min = 1\n{backup_section}",
        app.url(""),
        db.host,
        db.port,
        db.user,
        db.dbname,
        db.password.clone().unwrap_or_default(),
        r.host,
        r.port,
        r.password.unwrap_or_default(),
    );
    std::fs::write(&config, text).unwrap();
    Setup { dir, config, db, _app: app }
}

impl Setup {
    fn backup(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kyb-backup"));
        cmd.args(args).arg("--config").arg(&self.config);
        cmd
    }

    fn full(&self) -> PathBuf {
        self.dir.path().join("backups/full")
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

/// The `.partial` files under `full`.
fn partials(full: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(full)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

#[tokio::test]
async fn a_backup_run_killed_mid_dump_is_a_warn_beside_a_good_backup_and_the_next_run_sweeps_it() {
    let s = setup("killedbackup", "").await;
    let out = run(s.backup(&["create"])).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let good = std::fs::read_dir(s.full()).unwrap().next().unwrap().unwrap().path();

    // A lock held elsewhere keeps the second run's pg_dump waiting with its partial file made:
    // it is killed there, as by the OOM killer or `kill -9`.
    let holder = s.db.connect().await;
    holder.batch_execute("BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE;").await.unwrap();
    let mut child = s.backup(&["create"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while partials(&s.full()).is_empty() {
        assert!(Instant::now() < deadline, "the second run never began writing");
        assert!(child.try_wait().unwrap().is_none(), "the second run ended on its own");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Its pg_dump, orphaned, dies on the closed pipe once it can write.
    holder.batch_execute("ROLLBACK").await.unwrap();
    let left = partials(&s.full());
    assert_eq!(left.len(), 1, "{left:?}");
    let killed_dir = left[0].parent().unwrap().to_owned();

    // Latest and today's backup are the complete one; the leftover is a Warn of its own.
    for args in [&["verify", "--latest", "--format", "json"][..], &["verify", "--format", "json"][..]] {
        let out = run(s.backup(args)).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stdout));
        let v = json(&out);
        let t = task(&v, "backup-verify");
        assert_eq!(t["status"], "warn", "{t}");
        assert_eq!(check(t, "checksum")["status"], "ok");
        assert!(check(t, "backup")["summary"].as_str().unwrap().contains(good.to_str().unwrap()), "{t}");
        let p = check(t, "partials");
        assert_eq!(p["status"], "warn");
        assert!(p["summary"].as_str().unwrap().contains("database.dump.gz.partial"), "{p}");
    }
    // The daily flow's check of today's backup says the same.
    let mut daily = Command::new(binary("kyb-maint"));
    daily.args(["daily", "--format", "json", "--config"]).arg(&s.config);
    let out = run(daily).await;
    let report = json(&out);
    assert_eq!(task(&report, "backup-verify")["status"], "warn", "{report}");

    // The listing has a header and says what the leftover is.
    let out = run(s.backup(&["list"])).await;
    let listed = text(&out.stdout);
    let lines: Vec<&str> = listed.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["BACKUP", "FORMAT", "SIZE_BYTES", "DATABASE", "DURATION_MS", "STATE"], "{listed}");
    let killed_name = killed_dir.file_name().unwrap().to_str().unwrap();
    assert!(lines[1].starts_with(killed_name) && lines[1].ends_with("killed: partial file left"), "{listed}");
    assert!(lines[2].contains(&s.db.dbname) && lines[2].ends_with("complete"), "{listed}");
    // JSON stays an array of the listings, with no header.
    let out = run(s.backup(&["list", "--format", "json"])).await;
    assert_eq!(json(&out).as_array().unwrap().len(), 2);

    // The next backup removes it and says so.
    let out = run(s.backup(&["create", "--format", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let made = json(&out);
    let swept = check(task(&made, "backup-create"), "partials");
    assert!(swept["summary"].as_str().unwrap().starts_with("removed 1 stale partial file"), "{swept}");
    // (The new backup may take the freed directory name, when made within the same second.)
    assert!(partials(&s.full()).is_empty(), "{:?}", partials(&s.full()));
    let out = run(s.backup(&["list", "--format", "json"])).await;
    let listed = json(&out);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(listed.as_array().unwrap().iter().all(|b| b["state"] == "complete"), "{listed}");
    let out = run(s.backup(&["verify", "--latest"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("partial"), "{}", text(&out.stdout));
}

#[tokio::test]
async fn pg_tools_run_by_the_binary_see_no_password_and_none_of_its_environment() {
    let root = tempfile::tempdir().unwrap();
    let real = kyb_backup::pg_bindir(None).expect("PostgreSQL client binaries");
    let bin = root.path().join("bin");
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    // Stand-ins that log their environment and their PGPASSFILE's mode, then exec the real tool.
    for tool in ["pg_dump", "pg_restore", "psql"] {
        let script = format!(
            "#!/bin/sh\n\
             {{ printf 'ARGS %s\\n' \"$*\"; tr '\\0' '\\n' < /proc/$$/environ | sed 's/^/ENV /';\n\
               [ -n \"$PGPASSFILE\" ] && printf 'PASSFILE_MODE %s\\n' \"$(stat -c %a \"$PGPASSFILE\")\"; }} > {}/{tool}.$$\n\
             exec {}/{tool} \"$@\"\n",
            logs.display(),
            real.display()
        );
        std::fs::write(bin.join(tool), script).unwrap();
        std::fs::set_permissions(bin.join(tool), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let s = setup("childenv", &format!("pg_bindir = \"{}\"\n", bin.display())).await;
    let secret = "kyb-e2e-unrelated-secret-value";
    for args in [["create"], ["restore-drill"]] {
        let mut cmd = s.backup(&args);
        cmd.env("KYB_UNRELATED_TOKEN", secret).env("PGPASSWORD", "not-the-password");
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}{}", text(&out.stdout), text(&out.stderr));
    }
    let password = s.db.password.clone().unwrap_or_default();
    let mut connecting = 0;
    for entry in std::fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(!log.contains(secret) && !log.contains("KYB_UNRELATED_TOKEN"), "{}: {log}", path.display());
        assert!(!log.contains("PGPASSWORD"), "{}: {log}", path.display());
        assert!(
            password.is_empty() || !log.contains(&password),
            "{}: the password in plain sight",
            path.display()
        );
        if log.contains("--host") {
            connecting += 1;
            assert!(
                log.contains("ENV PGPASSFILE=") && log.contains("PASSFILE_MODE 600"),
                "{}: {log}",
                path.display()
            );
        }
    }
    // pg_dump for the backup, pg_restore for the drill.
    assert_eq!(connecting, 2);
}
