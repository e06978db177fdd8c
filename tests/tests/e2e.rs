//! End-to-end tests: the real binaries against a real app, PostgreSQL and Redis.

use kyb_e2e::binary;
use kyb_testkit::{FakeApp, HealthMode, MetricsMode, TestDb, fresh_database, redis};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A sandbox for one test: a temp tree, a config file, and the services it points at.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    app: FakeApp,
    db: TestDb,
}

struct Opts {
    app_mode: HealthMode,
    app_timeout_ms: u64,
    pg_port: Option<u16>,
    redis_port: Option<u16>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts { app_mode: HealthMode::Healthy, app_timeout_ms: 3_000, pg_port: None, redis_port: None }
    }
}

async fn setup(tag: &str, opts: Opts) -> Setup {
    let app = FakeApp::start(opts.app_mode).await;
    let db = fresh_database(tag).await;
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kyb-maint.toml");
    let text = format!(
        "[paths]\nmaintenance_dir = \"maint\"\n\n\
         [app]\nbase_url = \"{}\"\ntimeout_ms = {}\n\n\
         [postgres]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndbname = \"{}\"\npassword = \"{}\"\ntimeout_ms = 3000\n\n\
         [redis]\nhost = \"{}\"\nport = {}\npassword = \"{}\"\ntimeout_ms = 3000\n\n\
         [system]\ncpu_sample_ms = 50\n\
         # Pinned so that a busy or full test machine cannot turn these into failures.\n\
         disk_pct = {{ warn = 100, crit = 100 }}\nmemory_pct = {{ warn = 100, crit = 100 }}\n\
         load_per_core = {{ warn = 1000, crit = 1000 }}\n",
        app.url(""),
        opts.app_timeout_ms,
        db.host,
        opts.pg_port.unwrap_or(db.port),
        db.user,
        db.dbname,
        db.password.clone().unwrap_or_default(),
        r.host,
        opts.redis_port.unwrap_or(r.port),
        r.password.unwrap_or_default(),
    );
    std::fs::write(&config, text).unwrap();
    Setup { dir, config, app, db }
}

impl Setup {
    fn maint(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kyb-maint"));
        cmd.args(args).arg("--config").arg(&self.config);
        cmd
    }

    fn maint_dir(&self) -> PathBuf {
        self.dir.path().join("maint")
    }
}

/// Runs `cmd` off the async runtime, so the in-process fake app keeps serving.
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("spawn binary")).await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn task<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name}"))
}

fn check<'a>(task: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    task["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}"))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

// The daily flow end to end.
mod daily {
    use super::*;

    #[tokio::test]
    async fn healthy_stack_reports_ok_and_saves_everything() {
        let s = setup("dailyok", Opts::default()).await;
        let out = run(s.maint(&["daily"])).await;
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
        assert!(stdout.contains("kyb-maint daily report") && stdout.contains("Status:   OK"), "{stdout}");
        for line in ["OK       app", "OK       postgres", "OK       redis", "OK       memory"] {
            assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
        }
        let files = files_under(&s.maint_dir());
        let names: Vec<String> =
            files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.iter().any(|n| n.starts_with("daily-report-") && n.ends_with(".txt")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("daily-report-") && n.ends_with(".json")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("app-metrics-") && n.ends_with(".prom")), "{names:?}");
        let log = std::fs::read_to_string(s.maint_dir().join("logs/daily-maintenance.log")).unwrap();
        assert!(
            log.starts_with('[')
                && log.contains("daily flow started")
                && log.contains("daily flow finished: OK"),
            "{log}"
        );
    }

    #[tokio::test]
    async fn json_report_has_status_and_tasks() {
        let s = setup("dailyjson", Opts::default()).await;
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
        assert_eq!(json["status"], "ok");
        assert_eq!(json["flow"], "daily");
        for t in json["tasks"].as_array().unwrap() {
            for key in ["name", "status", "summary", "duration_ms", "checks"] {
                assert!(t.get(key).is_some(), "task lacks {key}: {t}");
            }
        }
        let names: Vec<&str> =
            json["tasks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["health", "system", "metrics-snapshot", "log-rotation", "retention", "temp-cleanup"]);
        assert!(check(task(&json, "system"), "memory")["metrics"][0]["value"].as_f64().unwrap() > 0.0);
    }

    #[tokio::test]
    async fn hanging_app_is_cut_off_and_only_the_app_is_crit() {
        let s =
            setup("dailyhang", Opts { app_mode: HealthMode::Hang, app_timeout_ms: 1_000, ..Opts::default() })
                .await;
        let started = Instant::now();
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(2_000), "daily took {took:?} with a 1000 ms app timeout");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let health = task(&json, "health");
        assert_eq!(check(health, "app")["status"], "crit");
        assert!(check(health, "app")["summary"].as_str().unwrap().contains("no response"));
        assert_eq!(check(health, "postgres")["status"], "ok");
        assert_eq!(check(health, "redis")["status"], "ok");
        assert_eq!(task(&json, "system")["status"], "ok");
    }

    #[tokio::test]
    async fn postgres_down_is_crit_with_reason_and_the_rest_still_runs() {
        let s = setup("dailypgdown", Opts { pg_port: Some(dead_port()), ..Opts::default() }).await;
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(1));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let pg = check(task(&json, "health"), "postgres");
        assert_eq!(pg["status"], "crit");
        assert!(pg["summary"].as_str().unwrap().to_lowercase().contains("refused"), "{pg}");
        assert_eq!(check(task(&json, "health"), "app")["status"], "ok");
        assert_eq!(check(task(&json, "health"), "redis")["status"], "ok");
        assert_eq!(task(&json, "metrics-snapshot")["status"], "ok");
    }

    #[tokio::test]
    async fn redis_down_is_crit_with_reason_and_the_rest_still_runs() {
        let s = setup("dailyredisdown", Opts { redis_port: Some(dead_port()), ..Opts::default() }).await;
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(1));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let r = check(task(&json, "health"), "redis");
        assert_eq!(r["status"], "crit");
        assert!(r["summary"].as_str().unwrap().to_lowercase().contains("refused"), "{r}");
        assert_eq!(check(task(&json, "health"), "postgres")["status"], "ok");
        assert_eq!(task(&json, "system")["status"], "ok");
    }

    #[tokio::test]
    async fn malformed_metrics_warn_but_the_snapshot_is_saved() {
        let s = setup("dailymalformed", Opts::default()).await;
        s.app.set_metrics(MetricsMode::Malformed);
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "Warn still exits 0");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let snap = task(&json, "metrics-snapshot");
        assert_eq!(snap["status"], "warn");
        assert!(snap["summary"].as_str().unwrap().contains("line "), "{snap}");
        let saved = snap["artifacts"][0].as_str().unwrap();
        assert!(std::fs::read_to_string(saved).unwrap().contains("this line is not a sample"));
    }

    #[tokio::test]
    async fn dry_run_writes_nothing() {
        let s = setup("dailydry", Opts::default()).await;
        let out = run(s.maint(&["daily", "--dry-run"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("(dry run: nothing changed)"));
        assert!(text(&out.stdout).contains("would save"));
        assert!(!s.maint_dir().exists(), "dry run created {:?}", files_under(&s.maint_dir()));
    }

    #[tokio::test]
    async fn flows_without_tasks_say_so_and_exit_2() {
        let s = setup("noflow", Opts::default()).await;
        for flow in ["weekly", "monthly"] {
            let out = run(s.maint(&[flow])).await;
            assert_eq!(out.status.code(), Some(2));
            assert!(
                text(&out.stderr).contains(&format!("the {flow} flow has no tasks yet")),
                "{}",
                text(&out.stderr)
            );
            assert!(out.stdout.is_empty());
        }
    }

    #[tokio::test]
    async fn a_second_run_while_one_is_going_exits_2_at_once() {
        // Slow enough to hold the lock for a while, fast enough to stay under the latency crit level.
        let s = setup(
            "lock",
            Opts { app_mode: HealthMode::Slow(Duration::from_millis(1_500)), ..Opts::default() },
        )
        .await;
        let first = s.maint(&["daily"]).spawn_blocking_child();
        // Wait until the first run holds the lock (its pid is written after flock succeeds).
        let lock = s.maint_dir().join("kyb-maint.lock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&lock).map(|t| t.trim().is_empty()).unwrap_or(true) {
            assert!(Instant::now() < deadline, "first run never took the lock");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = Instant::now();
        let second = run(s.maint(&["daily"])).await;
        assert!(started.elapsed() < Duration::from_secs(1), "second run took {:?}", started.elapsed());
        assert_eq!(second.status.code(), Some(2));
        let err = text(&second.stderr);
        assert!(err.contains("already running") && err.contains("kyb-maint.lock"), "{err}");
        let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap()).await.unwrap();
        assert_eq!(first.status.code(), Some(0), "{}", text(&first.stdout));
    }

    trait SpawnChild {
        fn spawn_blocking_child(self) -> std::process::Child;
    }

    impl SpawnChild for Command {
        fn spawn_blocking_child(mut self) -> std::process::Child {
            self.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        }
    }
}

// Config files that cannot be used: a message with file and line, exit 2, nothing run.
mod config_errors {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("bad.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    async fn maint_with(config: &Path) -> Output {
        let mut cmd = Command::new(binary("kyb-maint"));
        cmd.arg("daily").arg("--config").arg(config);
        run(cmd).await
    }

    #[tokio::test]
    async fn unknown_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[paths]\nmaintenance_dir = \"m\"\n[app]\nbase_url = \"http://127.0.0.1:1\"\ntimout_ms = 5\n",
        );
        let out = maint_with(&p).await;
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{}:5:", p.display())) && err.contains("unknown field `timout_ms`"),
            "{err}"
        );
        assert!(!dir.path().join("m").exists(), "nothing may run on a bad config");
    }

    #[tokio::test]
    async fn wrong_type() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "[paths]\nmaintenance_dir = \"m\"\n\n[redis]\nport = \"six\"\n");
        let out = maint_with(&p).await;
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(err.contains(&format!("{}:5:", p.display())) && err.contains("redis.port"), "{err}");
    }

    #[tokio::test]
    async fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("absent.toml");
        let out = maint_with(&p).await;
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(err.contains(&p.display().to_string()) && err.contains("cannot read config file"), "{err}");
    }

    #[tokio::test]
    async fn not_toml_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "[paths\nmaintenance_dir = 3\n");
        let out = maint_with(&p).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains(&format!("{}:1:", p.display())), "{}", text(&out.stderr));
    }
}

// A password given in the config never shows up in output, logs or reports.
mod secrets {
    use super::*;

    #[tokio::test]
    async fn passwords_appear_nowhere() {
        let s = setup("secret", Opts::default()).await;
        let pg_password = s.db.password.clone().expect("the private stack uses a password");
        let redis_password = redis().password.expect("the private stack uses a password");
        // One run that fails (postgres refuses a wrong user) so error paths are covered too.
        let config_text = std::fs::read_to_string(&s.config).unwrap();
        let failing = s.dir.path().join("failing.toml");
        std::fs::write(
            &failing,
            config_text.replace(&format!("user = \"{}\"", s.db.user), "user = \"nobody\""),
        )
        .unwrap();
        let mut outputs = Vec::new();
        for (config, format) in [(&s.config, "text"), (&s.config, "json"), (&failing, "text")] {
            let mut cmd = Command::new(binary("kyb-maint"));
            cmd.args(["daily", "--format", format]).arg("--config").arg(config).env("KYB_LOG", "debug");
            let out = run(cmd).await;
            outputs.push(text(&out.stdout));
            outputs.push(text(&out.stderr));
        }
        let mut cmd = Command::new(binary("kyb-health"));
        cmd.args(["all", "--config"]).arg(&failing);
        let out = run(cmd).await;
        outputs.push(text(&out.stdout));
        outputs.push(text(&out.stderr));
        let files = files_under(&s.maint_dir());
        // Three runs: one log, the lock, and three each of text report, JSON report and snapshot.
        assert_eq!(files.len(), 11, "expected reports and logs, got {files:?}");
        for f in &files {
            outputs.push(text(&std::fs::read(f).unwrap()));
        }
        assert!(
            outputs.iter().any(|o| o.contains("nobody")),
            "the failing run should have reported the user"
        );
        for (i, o) in outputs.iter().enumerate() {
            assert!(!o.contains(&pg_password), "postgres password leaked in output {i}:\n{o}");
            assert!(!o.contains(&redis_password), "redis password leaked in output {i}:\n{o}");
        }
    }
}

// kyb-health: Nagios output and the four exit codes.
mod nagios {
    use super::*;

    async fn health(s: &Setup, args: &[&str]) -> (i32, String) {
        let mut cmd = Command::new(binary("kyb-health"));
        cmd.args(args).arg("--config").arg(&s.config);
        let out = run(cmd).await;
        (out.status.code().unwrap(), text(&out.stdout))
    }

    #[tokio::test]
    async fn ok_is_0_with_perfdata() {
        let s = setup("nagok", Opts::default()).await;
        let (code, out) = health(&s, &["app"]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with("OK - app: HTTP 200 in "), "{out}");
        assert!(out.contains(" | 'latency'=") && out.contains("s;0.5;2"), "{out}");
        for which in ["postgres", "redis", "all"] {
            let (code, out) = health(&s, &[which]).await;
            assert!(code <= 1, "{which}: {out}");
        }
    }

    #[tokio::test]
    async fn warning_is_1() {
        let s = setup("nagwarn", Opts { app_mode: HealthMode::NotJson, ..Opts::default() }).await;
        let (code, out) = health(&s, &["app"]).await;
        assert_eq!(code, 1, "{out}");
        assert!(out.starts_with("WARNING - app: HTTP 200") && out.contains("not JSON"), "{out}");
    }

    #[tokio::test]
    async fn critical_is_2() {
        let s = setup("nagcrit", Opts { app_mode: HealthMode::ServerError, ..Opts::default() }).await;
        let (code, out) = health(&s, &["app"]).await;
        assert_eq!(code, 2, "{out}");
        assert!(out.starts_with("CRITICAL - app: HTTP 500"), "{out}");
        let s = setup("nagcritpg", Opts { pg_port: Some(dead_port()), ..Opts::default() }).await;
        let (code, out) = health(&s, &["postgres"]).await;
        assert_eq!(code, 2, "{out}");
        assert!(out.starts_with("CRITICAL - postgres: "), "{out}");
    }

    #[tokio::test]
    async fn unknown_is_3_for_a_bad_config_or_bad_usage() {
        let s = setup("nagunknown", Opts::default()).await;
        std::fs::write(&s.config, "[paths]\nmaintenance_dir = \"m\"\nbogus = 1\n").unwrap();
        let (code, out) = health(&s, &["app"]).await;
        assert_eq!(code, 3, "{out}");
        assert!(out.starts_with("UNKNOWN - config: ") && out.contains(":3:"), "{out}");
        std::fs::write(&s.config, "[paths]\nmaintenance_dir = \"m\"\n").unwrap();
        let (code, out) = health(&s, &["redis"]).await;
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("no [redis] section"), "{out}");
        let (code, _) = health(&s, &["no-such-check"]).await;
        assert_eq!(code, 3);
    }

    #[tokio::test]
    async fn json_format() {
        let s = setup("nagjson", Opts::default()).await;
        let (code, out) = health(&s, &["redis", "--format", "json"]).await;
        assert_eq!(code, 0, "{out}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["status"], "ok");
        assert_eq!(json["checks"][0]["name"], "redis");
    }
}

// Prometheus textfile export for node_exporter.
mod textfile {
    use super::*;

    #[tokio::test]
    async fn textfile_holds_flow_task_and_check_statuses() {
        let s = setup("textfile", Opts { app_mode: HealthMode::ServerError, ..Opts::default() }).await;
        let prom = s.dir.path().join("kyb-maint-daily.prom");
        let out = run(s.maint(&["daily", "--textfile", prom.to_str().unwrap()])).await;
        assert_eq!(out.status.code(), Some(1));
        let text = std::fs::read_to_string(&prom).unwrap();
        assert!(text.contains("kyb_maint_flow_status{flow=\"daily\"} 2\n"), "{text}");
        assert!(
            text.contains("kyb_maint_check_status{flow=\"daily\",task=\"health\",check=\"app\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kyb_maint_check_status{flow=\"daily\",task=\"health\",check=\"redis\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE kyb_maint_task_duration_seconds gauge"), "{text}");
    }

    #[tokio::test]
    async fn unwritable_textfile_fails_the_run_but_keeps_the_report() {
        let s = setup("textfilebad", Opts::default()).await;
        let prom = s.dir.path().join("no-such-dir/kyb.prom");
        let out = run(s.maint(&["daily", "--textfile", prom.to_str().unwrap()])).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("no-such-dir"), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("kyb-maint daily report"));
    }

    #[tokio::test]
    async fn dry_run_writes_no_textfile() {
        let s = setup("textfiledry", Opts::default()).await;
        let prom = s.dir.path().join("kyb.prom");
        let out = run(s.maint(&["daily", "--dry-run", "--textfile", prom.to_str().unwrap()])).await;
        assert_eq!(out.status.code(), Some(0));
        assert!(!prom.exists());
    }
}
