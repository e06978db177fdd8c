//! End-to-end tests: the real binaries against a real app, PostgreSQL and Redis.

use kyb_e2e::{binary, check, dead_port, promtool_check, run, task, text};
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
    /// The app's address instead of the fake app's (e.g. a dead port: the app is down).
    app_url: Option<String>,
    app_timeout_ms: u64,
    pg_port: Option<u16>,
    redis_port: Option<u16>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            app_mode: HealthMode::Healthy,
            app_url: None,
            app_timeout_ms: 3_000,
            pg_port: None,
            redis_port: None,
        }
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
        opts.app_url.unwrap_or_else(|| app.url("")),
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
        assert_eq!(
            names,
            [
                "health",
                "system",
                "metrics-snapshot",
                "backup-verify",
                "log-rotation",
                "retention",
                "temp-cleanup",
                "history",
                "forecast"
            ]
        );
        assert!(check(task(&json, "system"), "memory")["metrics"][0]["value"].as_f64().unwrap() > 0.0);
    }

    #[tokio::test]
    async fn hanging_app_is_cut_off_and_only_the_app_is_crit() {
        let s =
            setup("dailyhang", Opts { app_mode: HealthMode::Hang, app_timeout_ms: 1_000, ..Opts::default() })
                .await;
        // Built (on first use) before the clock starts: the time measured is the flow's.
        let cmd = s.maint(&["daily", "--format", "json"]);
        let started = Instant::now();
        let out = run(cmd).await;
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

    /// docs/operations.md's cron line, run as cron runs it (sh, no stdin, stdout thrown away)
    /// with the app down: cron mails stderr, which names each failed task and why, and only
    /// those; the exit code is 1.
    #[tokio::test]
    async fn the_documented_cron_line_says_what_failed_on_stderr() {
        let down = format!("http://127.0.0.1:{}/", dead_port());
        let s = setup("croncall", Opts { app_url: Some(down), ..Opts::default() }).await;
        let ops = std::fs::read_to_string(kyb_testkit::workspace_root().join("docs/operations.md")).unwrap();
        let cron = ops.split("\n## cron\n").nth(1).expect("a cron section");
        let line = cron.lines().find(|l| l.contains("kyb-maint daily ")).expect("a cron line");
        let (_, command) = line.split_once(" root ").expect("a system crontab line");
        let command = command
            .replace("/usr/local/bin/kyb-maint", binary("kyb-maint").to_str().unwrap())
            .replace("/etc/kyb-maint/kyb-maint.toml", s.config.to_str().unwrap());
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(&command).stdin(std::process::Stdio::null()).env_remove("RUST_LOG");
        let out = run(sh).await;
        assert_eq!(out.status.code(), Some(1), "{command}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty());
        let events: Vec<serde_json::Value> =
            text(&out.stderr).lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
        let health = events.iter().find(|e| e["task"] == "health").expect("the health task on stderr");
        assert_eq!((&health["level"], &health["status"]), (&"ERROR".into(), &"CRIT".into()), "{health}");
        assert!(health["message"].as_str().unwrap().contains("app CRIT"), "{health}");
        // Nothing that is Ok reaches the mail.
        assert!(events.iter().all(|e| e["level"] != "INFO"), "{events:?}");
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
    async fn weekly_analyzes_and_reports_on_the_database() {
        let s = setup("weekly", Opts::default()).await;
        s.db.connect()
            .await
            .batch_execute(
                "CREATE TABLE orders (id int PRIMARY KEY, customer int);
                 INSERT INTO orders SELECT g, g % 100 FROM generate_series(1, 5000) g;
                 CREATE INDEX orders_customer_idx ON orders (customer);
                 CREATE INDEX orders_customer_copy ON orders (customer);",
            )
            .await
            .unwrap();
        let out = run(s.maint(&["weekly", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut names: Vec<&str> =
            json["tasks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "advisories",
                "db-analyze",
                "db-bloat",
                "db-duplicate-indexes",
                "db-invalid-indexes",
                "db-sequences",
                "db-table-sizes",
                "db-top-activity",
                "db-unused-indexes",
                "db-vacuum-state",
                "db-wraparound",
                "history",
                "ml-models",
                "monitoring",
                "os-updates",
                "performance"
            ]
        );
        assert_eq!(check(task(&json, "db-analyze"), "public.orders")["status"], "ok");
        let unused = task(&json, "db-unused-indexes");
        assert_eq!(check(unused, "public.orders_customer_idx")["status"], "warn", "{unused}");
        assert!(unused["notes"][0].as_str().unwrap().contains("scans counted since"), "{unused}");
        assert_eq!(
            check(task(&json, "db-duplicate-indexes"), "public.orders_customer_idx")["status"],
            "warn"
        );
        assert_eq!(check(task(&json, "db-table-sizes"), "public.orders")["status"], "ok");
        assert_eq!(task(&json, "db-invalid-indexes")["status"], "ok");
        assert!(s.maint_dir().join("logs/weekly-maintenance.log").exists());
    }

    #[tokio::test]
    async fn the_weekly_flow_with_the_database_down_is_crit_without_a_hang() {
        let s = setup("weeklydown", Opts { pg_port: Some(dead_port()), ..Opts::default() }).await;
        // Built (on first use) before the clock starts: the time measured is the flow's.
        let cmd = s.maint(&["weekly", "--format", "json"]);
        let started = Instant::now();
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let db: Vec<&serde_json::Value> = json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"].as_str().unwrap().starts_with("db-"))
            .collect();
        for t in &db {
            assert_eq!(t["status"], "crit", "{t}");
            assert!(t["summary"].as_str().unwrap().to_lowercase().contains("refused"), "{t}");
        }
        // The cause and what to check are said once; the other tasks point at that one.
        let full: Vec<_> =
            db.iter().filter(|t| t["summary"].as_str().unwrap().contains("; check ")).collect();
        assert_eq!(full.len(), 1, "{db:#?}");
        let see = format!("; see {}", full[0]["name"].as_str().unwrap());
        assert_eq!(
            db.iter().filter(|t| t["summary"].as_str().unwrap().ends_with(&see)).count(),
            db.len() - 1
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[tokio::test]
    async fn monthly_tasks_left_out_of_the_config_say_why() {
        let s = setup("nomonthly", Opts::default()).await;
        let out = run(s.maint(&["monthly", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for t in ["backup-create", "backup-archive", "restore-drill", "backup-prune"] {
            let summary = task(&json, t)["summary"].as_str().unwrap().to_owned();
            assert!(summary.contains("configured"), "{t}: {summary}");
        }
    }

    #[tokio::test]
    async fn monthly_vacuum_keeps_to_the_window_unless_emergency() {
        let s = setup("monthlywindow", Opts::default()).await;
        // A window three days from now is certainly closed.
        let day = (time::OffsetDateTime::now_utc() + time::Duration::days(3)).weekday();
        let mut cfg = std::fs::read_to_string(&s.config).unwrap();
        cfg.push_str(&format!("\n[window]\nallowed = [\"{} 02:00-03:00\"]\n", &day.to_string()[..3]));
        std::fs::write(&s.config, cfg).unwrap();
        s.db.connect()
            .await
            .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
            .await
            .unwrap();

        let out = run(s.maint(&["monthly", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let vacuum = task(&json, "db-vacuum");
        assert_eq!(vacuum["status"], "warn", "{vacuum}");
        assert!(check(vacuum, "window")["summary"].as_str().unwrap().starts_with("not run"), "{vacuum}");
        let capacity = task(&json, "db-capacity");
        assert_eq!(check(capacity, "database size")["status"], "ok", "{capacity}");
        assert!(s.maint_dir().join("database-size-trend.csv").exists());
        for t in ["db-slow-queries", "db-index-recommendations", "db-cache-hit"] {
            assert_eq!(task(&json, t)["status"], "ok", "{t}: {json}");
        }

        let out = run(s.maint(&["monthly", "--emergency", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let vacuum = task(&json, "db-vacuum");
        assert_eq!(check(vacuum, "public.t")["status"], "ok", "{vacuum}");
        assert!(check(vacuum, "window")["summary"].as_str().unwrap().contains("run anyway"), "{vacuum}");
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
        let cmd = s.maint(&["daily"]);
        let started = Instant::now();
        let second = run(cmd).await;
        assert!(started.elapsed() < Duration::from_secs(1), "second run took {:?}", started.elapsed());
        assert_eq!(second.status.code(), Some(2));
        let err = text(&second.stderr);
        assert!(err.contains("another daily run is already running"), "{err}");
        assert!(err.contains("kyb-maint-daily.lock"), "{err}");
        let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap()).await.unwrap();
        assert_eq!(first.status.code(), Some(0), "{}", text(&first.stdout));
    }

    /// The run log's time of the line that contains `what`.
    fn logged_at(log: &Path, what: &str) -> String {
        let text = std::fs::read_to_string(log).unwrap();
        let line = text.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no {what:?} in {text}"));
        line[1..20].to_owned()
    }

    /// A weekly run that goes long holds the run lock when the monthly one starts: the monthly
    /// run waits for it (`[flows] lock_wait_ms`), then runs, rather than losing the month.
    #[tokio::test]
    async fn a_different_flow_waits_for_the_lock_then_runs() {
        let s = setup("lockwait", Opts::default()).await;
        // A Grafana that takes connections and never answers keeps the weekly run busy for its
        // three-second deadline.
        let grafana = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", grafana.local_addr().unwrap());
        let mut config = std::fs::read_to_string(&s.config).unwrap();
        config.push_str(&format!("\n[monitoring]\ngrafana_url = \"{url}\"\ntimeout_ms = 3000\n"));
        config.push_str("\n[flows]\nlock_wait_ms = 120000\n");
        std::fs::write(&s.config, config).unwrap();
        let weekly = s.maint(&["weekly"]).spawn_blocking_child();
        let lock = s.maint_dir().join("kyb-maint.lock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&lock).map(|t| t.trim().is_empty()).unwrap_or(true) {
            assert!(Instant::now() < deadline, "the weekly run never took the lock");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let monthly = run(s.maint(&["monthly", "--format", "json"])).await;
        let weekly = tokio::task::spawn_blocking(move || weekly.wait_with_output().unwrap()).await.unwrap();
        assert_ne!(monthly.status.code(), Some(2), "{}", text(&monthly.stderr));
        assert!(
            text(&monthly.stderr).contains("waiting for that run to finish"),
            "{}",
            text(&monthly.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&monthly.stdout).unwrap();
        assert_eq!(task(&json, "db-vacuum")["name"], "db-vacuum", "the monthly tasks ran");
        assert_eq!(weekly.status.code(), Some(1), "Grafana hung: {}", text(&weekly.stdout));
        // The monthly run began once the weekly one was over.
        let logs = s.maint_dir().join("logs");
        let weekly_end = logged_at(&logs.join("weekly-maintenance.log"), "weekly flow finished");
        let monthly_start = logged_at(&logs.join("monthly-maintenance.log"), "monthly flow started");
        assert!(monthly_start >= weekly_end, "monthly started {monthly_start}, weekly ended {weekly_end}");
        drop(grafana);
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
    async fn bad_backup_settings_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        for (body, key, line) in [
            ("[backup]\ncompression_level = 0\n", "backup.compression_level", 8),
            ("[backup]\nkeep_min = 0\n", "backup.keep_min", 8),
            ("[backup]\nformat = \"zip\"\n", "unknown variant `zip`", 8),
            ("[[backup.archive]]\nname = \"../x\"\npaths = [\"/etc\"]\n", "backup.archive[0].name", 8),
            ("[[backup.archive]]\nname = \"x\"\npaths = [\"/etc/../root\"]\n", "backup.archive[0].paths", 9),
        ] {
            let p = write(
                dir.path(),
                &format!("[paths]\nmaintenance_dir = \"m\"\nbackup_dir = \"b\"\n\n\n\n{body}"),
            );
            let out = maint_with(&p).await;
            assert_eq!(out.status.code(), Some(2), "{body}");
            let err = text(&out.stderr);
            assert!(err.contains(key) && err.contains(&format!("{}:{line}", p.display())), "{body}: {err}");
        }
        assert!(!dir.path().join("m").exists() && !dir.path().join("b").exists());
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
        // Three runs: one log, the run lock and the daily flow's lock, three each of text
        // report, JSON report and snapshot, and the history spool of the run that could not
        // log in (searched for passwords too).
        assert_eq!(files.len(), 13, "expected reports and logs, got {files:?}");
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
        assert!(out.starts_with("KYB-HEALTH OK - app: HTTP 200 in "), "{out}");
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
        assert!(out.starts_with("KYB-HEALTH WARNING - app: HTTP 200") && out.contains("not JSON"), "{out}");
    }

    #[tokio::test]
    async fn critical_is_2() {
        let s = setup("nagcrit", Opts { app_mode: HealthMode::ServerError, ..Opts::default() }).await;
        let (code, out) = health(&s, &["app"]).await;
        assert_eq!(code, 2, "{out}");
        assert!(out.starts_with("KYB-HEALTH CRITICAL - app: HTTP 500"), "{out}");
        let s = setup("nagcritpg", Opts { pg_port: Some(dead_port()), ..Opts::default() }).await;
        let (code, out) = health(&s, &["postgres"]).await;
        assert_eq!(code, 2, "{out}");
        assert!(out.starts_with("KYB-HEALTH CRITICAL - postgres: "), "{out}");
    }

    #[tokio::test]
    async fn unknown_is_3_for_a_bad_config_or_bad_usage() {
        let s = setup("nagunknown", Opts::default()).await;
        std::fs::write(&s.config, "[paths]\nmaintenance_dir = \"m\"\nbogus = 1\n").unwrap();
        let (code, out) = health(&s, &["app"]).await;
        assert_eq!(code, 3, "{out}");
        assert!(out.starts_with("KYB-HEALTH UNKNOWN - config: ") && out.contains(":3:"), "{out}");
        std::fs::write(&s.config, "[paths]\nmaintenance_dir = \"m\"\n").unwrap();
        let (code, out) = health(&s, &["redis"]).await;
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("no [redis] section"), "{out}");
        let (code, out) = health(&s, &["no-such-check"]).await;
        assert_eq!(code, 3, "{out}");
        assert!(out.starts_with("KYB-HEALTH UNKNOWN - usage: invalid value 'no-such-check'"), "{out}");
        // A config that is not there at all: still one UNKNOWN line on stdout for monitoring.
        let mut cmd = Command::new(binary("kyb-health"));
        cmd.args(["app", "--config"]).arg(s.config.with_file_name("missing.toml"));
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(3));
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with("KYB-HEALTH UNKNOWN - config: ") && stdout.contains("missing.toml"),
            "{stdout}"
        );
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
    }

    #[tokio::test]
    async fn json_format() {
        let s = setup("nagjson", Opts::default()).await;
        let (code, out) = health(&s, &["redis", "--format", "json"]).await;
        assert_eq!(code, 0, "{out}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["status"], "ok");
        assert_eq!(json["tasks"][0]["checks"][0]["name"], "redis", "the report shape of every binary");
    }

    #[tokio::test]
    async fn text_format_and_textfile_like_every_binary() {
        let s = setup("nagtext", Opts::default()).await;
        let prom = s.dir.path().join("kyb-health.prom");
        let (code, out) =
            health(&s, &["redis", "--format", "text", "--textfile", prom.to_str().unwrap()]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("redis") && !out.starts_with("KYB-HEALTH"), "{out}");
        let metrics = std::fs::read_to_string(&prom).unwrap();
        assert!(metrics.contains("flow=\"health\""), "{metrics}");
        promtool_check(&prom);
        // A task binary speaks Nagios when asked, with Nagios exit codes.
        let mut cmd = Command::new(binary("kyb-mlcheck"));
        cmd.args(["--format", "nagios", "--config"]).arg(&s.config);
        let out = run(cmd).await;
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with("KYB-MLCHECK "), "{stdout}");
        assert!((0..=3).contains(&out.status.code().unwrap()), "{stdout}");
    }
}

// Prometheus textfile export for node_exporter.
mod textfile {
    use super::*;

    #[tokio::test]
    async fn textfile_holds_flow_and_task_statuses_and_measured_values() {
        let s = setup("textfile", Opts { app_mode: HealthMode::ServerError, ..Opts::default() }).await;
        let prom = s.dir.path().join("kyb-maint-daily.prom");
        let out = run(s.maint(&["daily", "--textfile", prom.to_str().unwrap()])).await;
        assert_eq!(out.status.code(), Some(1));
        let text = std::fs::read_to_string(&prom).unwrap();
        assert!(text.contains("kyb_maint_flow_status{flow=\"daily\"} 2\n"), "{text}");
        assert!(text.contains("kyb_maint_task_status{flow=\"daily\",task=\"health\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE kyb_maint_task_duration_seconds gauge"), "{text}");
        // A failed first run has no success to report yet.
        assert!(!text.contains("kyb_maint_flow_last_success_timestamp_seconds{"), "{text}");
        // The disk of every real mount, as a ratio; no label is a check's free-form name.
        let parsed = kyb_prom::parse_strict(&text).unwrap();
        let root = parsed
            .samples
            .iter()
            .find(|s| s.name == "kyb_maint_disk_used_ratio" && s.label("mount") == Some("/"));
        assert!(root.is_some_and(|s| (0.0..=1.0).contains(&s.value)), "{text}");
        assert!(parsed.samples.iter().all(|s| s.label("check").is_none()), "{text}");
        promtool_check(&prom);
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

// kyb-logrotate against live writers, crashes, concurrent runs and directories it may not read.
mod logrotate {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    fn ids() -> (u32, u32) {
        (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw())
    }

    /// A config rotating `log` whenever it is not empty.
    fn config(dir: &Path, log: &Path, extra: &str) -> PathBuf {
        let (uid, gid) = ids();
        let text = format!(
            "[paths]\nmaintenance_dir = \"maint\"\n\n[[logs]]\npath = \"{}\"\nsize_bytes = 1\nowner = \"{uid}\"\n\
             group = \"{gid}\"\nreopen_timeout_ms = 10000\n{extra}",
            log.display()
        );
        let path = dir.join("kyb-maint.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn logrotate(config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kyb-logrotate"));
        cmd.args(args).arg("--config").arg(config);
        cmd
    }

    /// Every line number in the rotated files (in rotation order, gzip or not) and then the live
    /// log; panics on a leftover `.tmp`.
    fn all_line_numbers(dir: &Path) -> Vec<u64> {
        let mut rotated: Vec<((u64, u64), PathBuf)> = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "leftover temporary file {name}");
            let Some(rest) = name.strip_prefix("app.log-") else { continue };
            let rest = rest.trim_end_matches(".gz");
            let parts: Vec<&str> = rest.split('-').collect();
            let stamp: u64 = format!("{}{}", parts[0], parts[1]).parse().unwrap();
            let counter: u64 = parts.get(2).map_or(0, |c| c.parse().unwrap());
            rotated.push(((stamp, counter), dir.join(&name)));
        }
        rotated.sort();
        let mut text = String::new();
        for (_, path) in &rotated {
            let file = std::fs::File::open(path).unwrap();
            if path.extension().is_some_and(|e| e == "gz") {
                flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text).unwrap();
            } else {
                std::io::BufReader::new(file).read_to_string(&mut text).unwrap();
            }
        }
        if let Ok(live) = std::fs::read_to_string(dir.join("app.log")) {
            text.push_str(&live);
        }
        text.lines()
            .map(|l| {
                let digits = l.strip_prefix("{\"n\":").unwrap_or_else(|| panic!("unexpected line {l:?}"));
                digits.split(',').next().unwrap().parse().unwrap()
            })
            .collect()
    }

    /// `kyb-log-writer` appending numbered lines to a log, reopening it on SIGHUP.
    struct Writer(std::process::Child);

    impl Writer {
        /// Starts it and waits until its pid file exists (its signal handlers are set by then).
        async fn start(log: &Path, pid_file: &Path) -> Writer {
            let child = Command::new(binary("kyb-log-writer"))
                .arg("--path")
                .arg(log)
                .arg("--pid-file")
                .arg(pid_file)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !pid_file.exists() {
                assert!(Instant::now() < deadline, "writer never started");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Writer(child)
        }

        /// Stops it with SIGTERM and returns how many lines it wrote.
        fn stop(mut self) -> u64 {
            let pid = rustix::process::Pid::from_raw(self.0.id() as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
            let mut count = String::new();
            self.0.stdout.take().unwrap().read_to_string(&mut count).unwrap();
            assert!(self.0.wait().unwrap().success());
            count.trim().parse().unwrap()
        }
    }

    fn assert_exactly_once_in_order(numbers: &[u64], count: u64) {
        assert_eq!(numbers.len() as u64, count, "line count differs: lost or duplicated lines");
        if let Some(i) = numbers.iter().enumerate().position(|(i, n)| *n != i as u64) {
            panic!("line {i} holds number {}: out of order, lost or duplicated", numbers[i]);
        }
    }

    #[tokio::test]
    async fn a_live_writer_loses_and_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let log = logs.join("app.log");
        let pid_file = dir.path().join("writer.pid");
        let writer = Writer::start(&log, &pid_file).await;
        let config = config(
            dir.path(),
            &log,
            &format!("pid_file = \"{}\"\nreopen_signal = \"HUP\"\n", pid_file.display()),
        );
        for round in 0..12 {
            let out = run(logrotate(&config, &["run", "--format", "json"])).await;
            assert_eq!(out.status.code(), Some(0), "round {round}: {}", text(&out.stdout));
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(task(&json, "log-rotation")["status"], "ok", "round {round}: {json}");
        }
        let count = writer.stop();
        assert!(count > 1_000, "the writer wrote only {count} lines");
        let gz = std::fs::read_dir(&logs)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "gz"))
            .count();
        assert!(gz >= 12, "expected a .gz per rotation, got {gz}");
        assert_exactly_once_in_order(&all_line_numbers(&logs), count);
    }

    #[tokio::test]
    async fn kill_9_at_random_points_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let log = logs.join("app.log");
        let config = config(dir.path(), &log, "");
        let mut next = 0u64;
        let mut append = |lines: u64| {
            let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&log).unwrap();
            let mut buf = String::new();
            for n in next..next + lines {
                buf.push_str(&format!(
                    "{{\"n\":{n},\"level\":\"info\",\"msg\":\"order {} accepted\",\"took_ms\":{}}}\n",
                    n * 7919 % 100_003,
                    n % 211
                ));
            }
            f.write_all(buf.as_bytes()).unwrap();
            next += lines;
        };
        // How long an undisturbed run takes (the fastest of three), to spread the kills over it.
        let mut span_us = u64::MAX;
        for _ in 0..3 {
            append(60_000);
            let started = Instant::now();
            assert_eq!(run(logrotate(&config, &["run"])).await.status.code(), Some(0));
            span_us = span_us.min(started.elapsed().as_micros() as u64);
        }
        let span_us = span_us.max(2_000);
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut killed = 0;
        for trial in 0..60 {
            append(60_000);
            let mut child = logrotate(&config, &["run"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            tokio::time::sleep(Duration::from_micros(seed % span_us)).await;
            if child.try_wait().unwrap().is_none() {
                killed += 1;
            }
            let _ = child.kill();
            let _ = child.wait();
            let out = run(logrotate(&config, &["run", "--format", "json"])).await;
            assert_eq!(out.status.code(), Some(0), "trial {trial}: {}", text(&out.stdout));
            for e in std::fs::read_dir(&logs).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                assert!(!name.ends_with(".tmp"), "trial {trial}: {name} left behind");
                assert!(
                    name == "app.log" || name.ends_with(".gz"),
                    "trial {trial}: {name} not compressed after the re-run"
                );
            }
        }
        assert!(killed >= 20, "only {killed} of 60 runs were killed mid-way; the kill window is too late");
        assert_exactly_once_in_order(&all_line_numbers(&logs), next);
    }

    #[tokio::test]
    async fn kill_9_with_a_live_writer_loses_and_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let log = logs.join("app.log");
        let pid_file = dir.path().join("writer.pid");
        let writer = Writer::start(&log, &pid_file).await;
        let config = config(dir.path(), &log, &format!("pid_file = \"{}\"\n", pid_file.display()));
        let mut seed: u64 = 0xD1B5_4A32_D192_ED03;
        for trial in 0..30 {
            let mut child = logrotate(&config, &["run"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            tokio::time::sleep(Duration::from_micros(seed % 40_000)).await;
            let _ = child.kill();
            let _ = child.wait();
            let out = run(logrotate(&config, &["run", "--format", "json"])).await;
            assert_eq!(out.status.code(), Some(0), "trial {trial}: {}", text(&out.stdout));
        }
        let count = writer.stop();
        // The last rotated file may still be plain (held by the writer until it stopped).
        assert_exactly_once_in_order(&all_line_numbers(&logs), count);
    }

    #[tokio::test]
    async fn a_second_run_refuses_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        // Incompressible data at level 9: slow enough to still be compressing when run 2 starts.
        let mut data = vec![0u8; 96 << 20];
        let mut x: u64 = 1;
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(&log, &data).unwrap();
        let config = config(dir.path(), &log, "compress_level = 9\n");
        let first = logrotate(&config, &["run"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lock = dir.path().join("maint/kyb-maint.lock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&lock).map(|t| t.trim().is_empty()).unwrap_or(true) {
            assert!(Instant::now() < deadline, "first run never took the lock");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let second = run(logrotate(&config, &["run"])).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(second.status.code(), Some(2), "{}", text(&second.stdout));
        assert!(text(&second.stderr).contains("already running"), "{}", text(&second.stderr));
        let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap()).await.unwrap();
        assert_eq!(first.status.code(), Some(0), "{}", text(&first.stdout));
    }

    #[tokio::test]
    async fn plan_prints_the_steps_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "{\"n\":0}\n").unwrap();
        let config = config(dir.path(), &log, "");
        let before = std::fs::metadata(&log).unwrap().modified().unwrap();
        // `run --dry-run` is `plan`.
        for args in [&["plan"][..], &["run", "--dry-run"]] {
            let out = run(logrotate(&config, args)).await;
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
            let stdout = text(&out.stdout);
            assert!(
                stdout.contains("would do:")
                    && stdout.contains(&format!("rename {} -> {}-", log.display(), log.display())),
                "{args:?}: {stdout}"
            );
            let names: Vec<_> =
                std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names.len(), 2, "{args:?} created files: {names:?}");
            assert_eq!(std::fs::metadata(&log).unwrap().modified().unwrap(), before);
        }
    }

    #[tokio::test]
    async fn an_unknown_owner_is_a_config_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kyb-maint.toml");
        std::fs::write(&path, "[paths]\nmaintenance_dir = \"m\"\n\n[[logs]]\npath = \"/var/log/x.log\"\nowner = \"no-such-user-kyb\"\n").unwrap();
        let out = run(logrotate(&path, &["run"])).await;
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(
            err.contains(":6:")
                && err.contains("no such user `no-such-user-kyb`")
                && err.contains("logs[0].owner"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_directory_it_may_not_read_is_reported_not_fatal() {
        let dir = tempfile::Builder::new().prefix("kyb-e2e-").tempdir_in("/tmp").unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let temp = d.join("temp");
        std::fs::create_dir_all(temp.join("kyb-closed")).unwrap();
        std::fs::write(temp.join("kyb-closed/file"), "x").unwrap();
        std::fs::create_dir_all(temp.join("kyb-open")).unwrap();
        std::fs::write(temp.join("kyb-open/file"), "x").unwrap();
        std::fs::create_dir(d.join("maint")).unwrap();
        // Copied so that the user running it can reach it wherever the checkout lives.
        let bin = d.join("kyb-logrotate");
        std::fs::copy(binary("kyb-logrotate"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = d.join("kyb-maint.toml");
        std::fs::write(
            &config,
            format!(
                "[paths]\nmaintenance_dir = \"maint\"\ntemp_dir = \"{}\"\n\n[cleanup]\ntemp_max_age_days = 0.00001\n",
                temp.display()
            ),
        )
        .unwrap();
        let mut cmd = if rustix::process::geteuid().is_root() {
            // Root reads everything: run as `nobody`, who owns the tree but not kyb-closed.
            let nobody = std::process::Command::new("id").args(["-u", "nobody"]).output().unwrap();
            let uid: u32 = String::from_utf8_lossy(&nobody.stdout).trim().parse().expect("a `nobody` user");
            for p in [&temp, &temp.join("kyb-open"), &temp.join("kyb-open/file"), &d.join("maint")] {
                rustix::fs::chown(p, Some(rustix::fs::Uid::from_raw(uid)), None).unwrap();
            }
            std::fs::set_permissions(temp.join("kyb-closed"), std::fs::Permissions::from_mode(0o700))
                .unwrap();
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(&bin);
            c
        } else {
            std::fs::set_permissions(temp.join("kyb-closed"), std::fs::Permissions::from_mode(0o000))
                .unwrap();
            Command::new(&bin)
        };
        // 0.00001 days is the shortest age, one second; ages are compared in whole seconds.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        cmd.args(["run", "--format", "json", "--config"]).arg(&config);
        let out = run(cmd).await;
        let _ = std::fs::set_permissions(temp.join("kyb-closed"), std::fs::Permissions::from_mode(0o755));
        assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let cleanup = task(&json, "temp-cleanup");
        let actions: Vec<&str> =
            cleanup["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(
            actions.iter().any(|a| a.contains("kyb-closed") && a.contains("Permission denied")),
            "{actions:?}"
        );
        assert!(!temp.join("kyb-open").exists(), "the readable entry should be gone: {actions:?}");
        assert!(temp.join("kyb-closed/file").exists());
    }
}

// Reports stay readable when a run removes thousands of files; a plan shows every step.
mod report_size {
    use super::*;

    #[tokio::test]
    async fn a_run_report_caps_its_action_lines_and_a_plan_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join("temp");
        std::fs::create_dir(&temp).unwrap();
        for i in 0..1_200 {
            std::fs::write(temp.join(format!("kyb-{i}")), "x").unwrap();
        }
        let config = dir.path().join("kyb-maint.toml");
        std::fs::write(
            &config,
            format!("[paths]\nmaintenance_dir = \"maint\"\ntemp_dir = \"{}\"\n\n[cleanup]\ntemp_max_age_days = 0.00001\n", temp.display()),
        )
        .unwrap();
        // 0.00001 days is the shortest age, one second; ages are compared in whole seconds.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let actions = |out: &Output| -> Vec<String> {
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            task(&json, "temp-cleanup")["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect()
        };
        let mut plan = Command::new(binary("kyb-logrotate"));
        plan.args(["plan", "--format", "json", "--config"]).arg(&config);
        let planned = actions(&run(plan).await);
        assert_eq!(planned.len(), 1_200, "a plan lists every step");
        let mut real = Command::new(binary("kyb-logrotate"));
        real.args(["run", "--format", "json", "--config"]).arg(&config);
        let out = run(real).await;
        assert_eq!(out.status.code(), Some(0));
        let done = actions(&out);
        assert_eq!(done.len(), 1_001);
        assert_eq!(done.last().unwrap(), "... and 200 more");
        assert_eq!(std::fs::read_dir(&temp).unwrap().count(), 0);
    }
}

// The daily flow's check of today's backup.
mod backup_verify {
    use super::*;

    #[tokio::test]
    async fn no_backup_today_is_crit_then_a_fresh_one_is_ok() {
        let s = setup("dailybackup", Opts::default()).await;
        let backups = s.dir.path().join("backups");
        let text = std::fs::read_to_string(&s.config).unwrap().replacen(
            "[paths]\n",
            &format!("[paths]\nbackup_dir = \"{}\"\n", backups.display()),
            1,
        );
        std::fs::write(&s.config, text).unwrap();
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(1));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let verify = task(&json, "backup-verify");
        assert_eq!(verify["status"], "crit");
        assert!(verify["summary"].as_str().unwrap().contains("no backup from today"), "{verify}");

        let cfg = kyb_flows_config(&s.config);
        kyb_backup::create(&cfg, &kyb_core::RunCtx::new(time::OffsetDateTime::now_utc())).await.unwrap();
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(task(&json, "backup-verify")["status"], "ok", "{json}");
        assert_eq!(out.status.code(), Some(0));
    }

    /// The create settings the config file describes, read the way the binaries read it.
    fn kyb_flows_config(path: &Path) -> kyb_backup::CreateConfig {
        kyb_flows::config::load(path).unwrap().backup.unwrap().create.unwrap()
    }
}

// The kyb-backup binary and the monthly flow, end to end.
mod backup_cli {
    use super::*;

    /// `setup` plus a backup directory, retention and one archive of `etc` in the test's tree.
    async fn with_backups(tag: &str, rows: u32) -> Setup {
        let s = setup(tag, Opts::default()).await;
        s.db.connect()
            .await
            .batch_execute(&format!(
                "CREATE TABLE companies (id bigint PRIMARY KEY, name text, meta jsonb);
                 INSERT INTO companies SELECT g, 'Company ' || g, jsonb_build_object('n', g) FROM generate_series(1, {rows}) g;
                 CREATE TABLE owners (id bigint PRIMARY KEY, company_id bigint REFERENCES companies(id));
                 INSERT INTO owners SELECT g, 1 + g % {rows} FROM generate_series(1, {rows}) g;"
            ))
            .await
            .unwrap();
        let etc = s.dir.path().join("etc/app");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("app.toml"), "listen = \"0.0.0.0:8080\"\n").unwrap();
        std::os::unix::fs::symlink("app.toml", etc.join("current.toml")).unwrap();
        let text = std::fs::read_to_string(&s.config).unwrap().replacen(
            "[paths]\n",
            "[paths]\nbackup_dir = \"backups\"\n",
            1,
        ) + "\n[backup]\nkeep_min = 1\nkeep_last = 2\n\n[[backup.archive]]\nname = \"application-config\"\npaths = [\"etc/app\"]\n";
        std::fs::write(&s.config, text).unwrap();
        s
    }

    impl Setup {
        fn backup(&self, args: &[&str]) -> Command {
            let mut cmd = Command::new(binary("kyb-backup"));
            cmd.args(args).arg("--config").arg(&self.config);
            cmd
        }
    }

    fn json(out: &Output) -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
    }

    #[tokio::test]
    async fn create_verify_list_drill_and_prune_through_the_binary() {
        let s = with_backups("clibackup", 20_000).await;
        for _ in 0..3 {
            let out = run(s.backup(&["create"])).await;
            assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
            // Backup directories are named to the second.
            std::thread::sleep(Duration::from_millis(1100));
        }
        let out = run(s.backup(&["verify", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let v = json(&out);
        assert_eq!(check(task(&v, "backup-verify"), "checksum")["status"], "ok");

        let out = run(s.backup(&["list", "--format", "json"])).await;
        let listed = json(&out);
        assert_eq!(listed.as_array().unwrap().len(), 3);
        assert!(listed.as_array().unwrap().iter().all(|b| b["state"] == "complete"), "{listed}");

        let out = run(s.backup(&["restore-drill", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let d = json(&out);
        assert_eq!(check(task(&d, "restore-drill"), "rows public.companies")["status"], "ok");

        // keep_last = 2: the plan names the oldest, the run removes it.
        let out = run(s.backup(&["prune", "--dry-run"])).await;
        assert_eq!(out.status.code(), Some(0));
        let plan = text(&out.stdout);
        assert!(plan.contains("would delete 1"), "{plan}");
        assert_eq!(std::fs::read_dir(s.dir.path().join("backups/full")).unwrap().count(), 3);
        let out = run(s.backup(&["prune"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert_eq!(std::fs::read_dir(s.dir.path().join("backups/full")).unwrap().count(), 2);

        // A damaged newest backup: verify exits 1 and says why.
        let newest = &json(&run(s.backup(&["list", "--format", "json"])).await)[0];
        let file = PathBuf::from(newest["dir"].as_str().unwrap()).join("database.dump.gz");
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&file, bytes).unwrap();
        let out = run(s.backup(&["verify", "--latest"])).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stdout).contains("checksum mismatch"), "{}", text(&out.stdout));
    }

    #[tokio::test]
    async fn the_monthly_flow_creates_archives_drills_and_prunes() {
        let s = with_backups("climonthly", 5_000).await;
        let out = run(s.maint(&["monthly", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
        let report = json(&out);
        for t in ["backup-create", "backup-archive", "restore-drill", "backup-prune"] {
            assert_eq!(task(&report, t)["status"], "ok", "{t}: {report}");
        }
        let monthly: Vec<PathBuf> = files_under(&s.dir.path().join("backups/monthly"));
        let manifest_path = monthly.iter().find(|p| p.ends_with("manifest.json")).expect("a manifest");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest_path).unwrap()).unwrap();
        let a = &manifest["archives"][0];
        let tgz = manifest_path.with_file_name(a["file"].as_str().unwrap());
        let bytes = std::fs::read(&tgz).unwrap();
        assert_eq!(a["size_bytes"], bytes.len());
        let sum: String = {
            use sha2::Digest;
            sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
        };
        assert_eq!(a["sha256"], sum);
        // The archive holds the file and the link as a link.
        let mut entries = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut seen = Vec::new();
        for e in entries.entries().unwrap() {
            let e = e.unwrap();
            seen.push((e.path().unwrap().to_string_lossy().into_owned(), e.header().entry_type()));
        }
        assert!(
            seen.iter().any(|(p, t)| p.ends_with("etc/app/app.toml") && *t == tar::EntryType::Regular),
            "{seen:?}"
        );
        assert!(
            seen.iter().any(|(p, t)| p.ends_with("etc/app/current.toml") && *t == tar::EntryType::Symlink),
            "{seen:?}"
        );

        // The dry run of the same flow changes nothing.
        let before = files_under(&s.dir.path().join("backups")).len();
        let out = run(s.maint(&["monthly", "--dry-run"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert!(text(&out.stdout).contains("would dump"), "{}", text(&out.stdout));
        assert_eq!(files_under(&s.dir.path().join("backups")).len(), before);
    }

    #[tokio::test]
    async fn unreadable_files_are_reported_never_skipped_silently() {
        let s = with_backups("cliunread", 10).await;
        let etc = s.dir.path().join("etc/app");
        std::fs::write(etc.join("tls.key"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
        std::fs::set_permissions(etc.join("tls.key"), std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
        let mut cmd = s.backup(&["archive", "--format", "json"]);
        if rustix::process::geteuid().is_root() {
            // Root reads everything: run as `nobody`, who may write the backups but not read the key.
            let nobody = kyb_core::users::uid("nobody").expect("a nobody user");
            let open = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(s.dir.path(), open).unwrap();
            let backups = s.dir.path().join("backups");
            std::fs::create_dir_all(&backups).unwrap();
            rustix::fs::chown(&backups, Some(rustix::fs::Uid::from_raw(nobody)), None).unwrap();
            std::fs::set_permissions(&s.config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
            let mut as_nobody = Command::new("runuser");
            as_nobody.args(["-u", "nobody", "--"]).arg(cmd.get_program()).args(cmd.get_args());
            cmd = as_nobody;
        }
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
        let report = json(&out);
        let c = check(task(&report, "backup-archive"), "archive application-config");
        assert_eq!(c["status"], "crit");
        assert!(c["summary"].as_str().unwrap().contains("tls.key"), "{c}");
        let manifest = files_under(&s.dir.path().join("backups/monthly"))
            .into_iter()
            .find(|p| p.ends_with("manifest.json"))
            .expect("a manifest");
        let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        let unreadable = &m["archives"][0]["unreadable"];
        assert!(unreadable[0]["path"].as_str().unwrap().ends_with("tls.key"), "{unreadable}");
        assert!(unreadable[0]["error"].as_str().unwrap().contains("ermission denied"), "{unreadable}");
        let entries = &m["archives"][0]["entries"];
        assert!(
            entries.as_array().unwrap().iter().any(|e| e["path"].as_str().unwrap().ends_with("app.toml"))
        );
    }

    /// Starts `cmd`, waits (a minute at most) until `ready(pid)` says `what`, presses Ctrl-C and
    /// returns what the run printed, and its pid.
    async fn ctrl_c_when<F, R>(mut cmd: Command, what: &str, ready: F) -> (std::process::Output, u32)
    where
        F: Fn(u32) -> R,
        R: std::future::Future<Output = bool>,
    {
        let child =
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(pid).await {
            assert!(Instant::now() < deadline, "never saw that {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let raw = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::kill_process(raw, rustix::process::Signal::INT).unwrap();
        (tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap(), pid)
    }

    #[tokio::test]
    async fn ctrl_c_during_a_drill_drops_the_scratch_database() {
        let s = with_backups("clisigint", 400_000).await;
        let out = run(s.backup(&["create"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        // The scratch database carries the drill's pid: once it is there, press Ctrl-C.
        let client = s.db.connect().await;
        let client = &client;
        let count = |pid: u32| async move {
            let pattern = format!("kyb\\_dr\\_%\\_{pid}\\_%");
            client
                .query_one("SELECT count(*) FROM pg_database WHERE datname LIKE $1", &[&pattern])
                .await
                .unwrap()
                .get::<_, i64>(0)
        };
        let cmd = s.backup(&["restore-drill", "--format", "json"]);
        let (out, pid) =
            ctrl_c_when(
                cmd,
                "the drill made its scratch database",
                |pid| async move { count(pid).await > 0 },
            )
            .await;
        assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
        let report = json(&out);
        let d = task(&report, "restore-drill");
        assert!(check(d, "restore")["summary"].as_str().unwrap().contains("cancelled"), "{d}");
        assert_eq!(check(d, "cleanup")["status"], "ok", "{d}");
        assert_eq!(count(pid).await, 0, "scratch database left behind");
    }

    #[tokio::test]
    async fn ctrl_c_in_a_flow_stops_the_backup_cleanly_and_starts_nothing_after_it() {
        let s = with_backups("cliflowcancel", 600_000).await;
        // Press Ctrl-C once the dump is being written.
        let full = s.dir.path().join("backups/full");
        let partial = || files_under(&full).into_iter().any(|p| p.to_string_lossy().ends_with(".partial"));
        let cmd = s.maint(&["monthly", "--format", "json"]);
        let (out, _) = ctrl_c_when(cmd, "the backup started writing", |_| async { partial() }).await;
        assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
        let report = json(&out);
        let created = task(&report, "backup-create");
        assert!(created["summary"].as_str().unwrap().contains("cancelled"), "{created}");
        for t in ["backup-archive", "restore-drill", "backup-prune", "db-vacuum"] {
            assert_eq!(task(&report, t)["summary"], "not started: the run was cancelled", "{t}: {report}");
        }
        assert!(!partial(), "a partial dump was left behind");
        assert!(
            files_under(&s.dir.path().join("backups")).iter().all(|p| !p.ends_with("backup_metadata.json"))
        );
    }

    #[tokio::test]
    async fn progress_shows_at_a_terminal_only() {
        let s = with_backups("cliprogress", 600_000).await;
        // `script` gives the binary a pseudo-terminal as its stdout and stderr.
        let line = format!("{} create --config {}", binary("kyb-backup").display(), s.config.display());
        let mut at_tty = Command::new("script");
        at_tty.args(["-qec", &line, "/dev/null"]);
        let out = run(at_tty).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let shown = text(&out.stdout);
        assert!(shown.contains("dumping:") && shown.contains("MiB/s"), "{shown}");
        std::thread::sleep(Duration::from_millis(1100));
        let out = run(s.backup(&["create"])).await;
        assert_eq!(out.status.code(), Some(0));
        assert!(!text(&out.stderr).contains("dumping:"), "{}", text(&out.stderr));
    }

    #[tokio::test]
    async fn ctrl_c_during_a_backup_leaves_no_partial_backup() {
        let s = with_backups("clicreateint", 400_000).await;
        let full = s.dir.path().join("backups/full");
        let partial = || files_under(&full).iter().any(|p| p.to_string_lossy().ends_with(".partial"));
        let (out, _) =
            ctrl_c_when(s.backup(&["create"]), "the backup started writing", |_| async { partial() }).await;
        assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stdout).contains("cancelled"), "{}", text(&out.stdout));
        assert!(files_under(&full).is_empty(), "left behind: {:?}", files_under(&full));
        let left: Vec<_> = std::fs::read_dir(&full).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

// The kyb-dbmaint binary.
mod dbmaint_cli {
    use super::*;

    fn dbmaint(s: &Setup, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kyb-dbmaint"));
        cmd.args(args).arg("--config").arg(&s.config);
        cmd
    }

    #[tokio::test]
    async fn analyze_plans_then_runs_and_a_dead_server_is_crit() {
        let s = setup("clidbmaint", Opts::default()).await;
        s.db.connect()
            .await
            .batch_execute("CREATE TABLE \"Mixed Case; t\" (id int); INSERT INTO \"Mixed Case; t\" SELECT generate_series(1, 100)")
            .await
            .unwrap();
        let analyzed = || async {
            s.db.connect()
                .await
                .query_one("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'Mixed Case; t'", &[])
                .await
                .unwrap()
                .get::<_, bool>(0)
        };
        let out = run(dbmaint(&s, &["analyze", "--dry-run"])).await;
        assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stdout).contains("ANALYZE public.\"Mixed Case; t\""), "{}", text(&out.stdout));
        assert!(!analyzed().await, "the dry run analyzed");

        let out = run(dbmaint(&s, &["analyze", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check(task(&json, "db-analyze"), "public.\"Mixed Case; t\"")["status"], "ok", "{json}");
        assert!(analyzed().await);

        let text_cfg = std::fs::read_to_string(&s.config).unwrap();
        let port = format!("port = {}", s.db.port);
        std::fs::write(&s.config, text_cfg.replacen(&port, &format!("port = {}", dead_port()), 1)).unwrap();
        let cmd = dbmaint(&s, &["vacuum", "--emergency", "--format", "json"]);
        let started = Instant::now();
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let db = check(task(&json, "db-vacuum"), "database");
        assert_eq!(db["status"], "crit", "{db}");
        assert!(db["summary"].as_str().unwrap().to_lowercase().contains("refused"), "{db}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    /// A `[window]` that is certainly closed now: three days from today.
    fn closed_window() -> String {
        let day = (time::OffsetDateTime::now_utc() + time::Duration::days(3)).weekday();
        format!("\n[window]\nallowed = [\"{} 02:00-03:00\"]\n", &day.to_string()[..3])
    }

    fn append(s: &Setup, toml: &str) {
        let mut text = std::fs::read_to_string(&s.config).unwrap();
        text.push_str(toml);
        std::fs::write(&s.config, text).unwrap();
    }

    async fn last_vacuum(s: &Setup) -> bool {
        s.db.connect()
            .await
            .query_one("SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'items'", &[])
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn vacuum_and_reindex_keep_to_the_window_unless_emergency() {
        let s = setup("clidbwindow", Opts::default()).await;
        s.db.connect()
            .await
            .batch_execute(
                "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 100)",
            )
            .await
            .unwrap();
        append(&s, &closed_window());
        let out = run(dbmaint(&s, &["vacuum", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let w = check(task(&json, "db-vacuum"), "window");
        assert_eq!(w["status"], "warn");
        assert!(w["summary"].as_str().unwrap().contains("not run: outside the maintenance windows"), "{w}");
        assert!(w["summary"].as_str().unwrap().contains("the next opens"), "{w}");
        assert!(!last_vacuum(&s).await, "vacuumed outside the window");

        let out = run(dbmaint(&s, &["reindex"])).await;
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("not run: outside"), "{}", text(&out.stdout));

        let out = run(dbmaint(&s, &["vacuum", "--emergency", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check(task(&json, "db-vacuum"), "public.items")["status"], "ok");
        assert!(last_vacuum(&s).await);

        // A window that cannot be read is a config error naming the key.
        let bad = std::fs::read_to_string(&s.config).unwrap().replace("02:00-03:00", "02:00-25:00");
        std::fs::write(&s.config, bad).unwrap();
        let out = run(dbmaint(&s, &["vacuum"])).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("window.allowed"), "{}", text(&out.stderr));
    }

    #[tokio::test]
    async fn each_report_is_a_subcommand_and_all_of_them_run_as_one() {
        let s = setup("clidbreports", Opts::default()).await;
        s.db.connect()
            .await
            .batch_execute(
                "CREATE TABLE orders (id serial PRIMARY KEY, customer int);
                 SELECT setval('orders_id_seq', 2100000000);
                 CREATE INDEX orders_customer_idx ON orders (customer);",
            )
            .await
            .unwrap();
        let out = run(dbmaint(&s, &["sequences"])).await;
        assert_eq!(out.status.code(), Some(1), "crit at 97.8%: {}", text(&out.stdout));
        assert!(text(&out.stdout).contains("public.orders_id_seq"), "{}", text(&out.stdout));

        let out = run(dbmaint(&s, &["unused-indexes", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check(task(&json, "db-unused-indexes"), "public.orders_customer_idx")["status"], "warn");

        let out = run(dbmaint(&s, &["reports", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(1), "the sequence is crit: {}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["tasks"].as_array().unwrap().len(), 14);
        assert_eq!(task(&json, "db-sequences")["status"], "crit");
        assert_eq!(task(&json, "db-connections")["status"], "ok");

        // Capacity: the dry run records nothing; the run records the size and writes the CSV.
        let csv = s.maint_dir().join("database-size-trend.csv");
        let out = run(dbmaint(&s, &["capacity", "--dry-run"])).await;
        assert!(out.status.code() == Some(0) || out.status.code() == Some(1), "{}", text(&out.stderr));
        assert!(!csv.exists());
        let out = run(dbmaint(&s, &["capacity", "--format", "json"])).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check(task(&json, "db-capacity"), "database size")["status"], "ok", "{json}");
        let lines = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(lines.lines().count(), 2, "header and one sample: {lines}");

        // --help explains the thresholds and the exit codes.
        let mut help = Command::new(binary("kyb-dbmaint"));
        help.arg("--help");
        let h = text(&run(help).await.stdout);
        assert!(
            h.contains("slow-queries") && h.contains("Exit codes") && h.contains("maintenance windows"),
            "{h}"
        );
        let mut help = Command::new(binary("kyb-dbmaint"));
        help.args(["vacuum", "--help"]);
        let h = text(&run(help).await.stdout);
        assert!(h.contains("--emergency") && h.contains("--dry-run"), "{h}");
    }

    #[tokio::test]
    async fn no_postgres_section_exits_2() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.toml");
        std::fs::write(&p, "[paths]\nmaintenance_dir = \"m\"\n").unwrap();
        let mut cmd = Command::new(binary("kyb-dbmaint"));
        cmd.args(["analyze", "--config"]).arg(&p);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("no [postgres] section"), "{}", text(&out.stderr));
    }
}

// The weekly look at the app's own metrics, and the kyb-mlcheck binary.
mod app_metrics {
    use super::*;

    fn mlcheck(s: &Setup, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kyb-mlcheck"));
        cmd.args(args).arg("--config").arg(&s.config);
        cmd
    }

    #[tokio::test]
    async fn weekly_reports_performance_and_models_from_the_app() {
        let s = setup("weeklyapp", Opts::default()).await;
        let out = run(s.maint(&["weekly", "--format", "json"])).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let perf = task(&json, "performance");
        // The fake app answers 1% of requests with a 5xx: at the 1% warn level.
        assert_eq!(check(perf, "error rate")["status"], "warn", "{perf}");
        assert_eq!(check(perf, "response time")["status"], "ok", "{perf}");
        assert!(
            check(perf, "endpoint /api/v1/search?q=acme, inc")["summary"].as_str().unwrap().contains("p95")
        );
        let ml = task(&json, "ml-models");
        assert_eq!(ml["status"], "ok", "{ml}");
        assert!(s.maint_dir().join("ml-accuracy-history.jsonl").exists());
        assert_eq!(task(&json, "monitoring")["summary"], "no [monitoring] URLs configured");
    }

    #[tokio::test]
    async fn mlcheck_warns_on_low_accuracy_and_is_unknown_on_a_missing_model() {
        let s = setup("climl", Opts::default()).await;
        s.app.set_metrics(MetricsMode::BertAccuracy(840));
        let out = run(mlcheck(&s, &["--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check(task(&json, "ml-models"), "accuracy bert")["status"], "warn");

        let mut cfg = std::fs::read_to_string(&s.config).unwrap();
        cfg.push_str("\n[[ml.models]]\nname = \"bert\"\nwarn_below = 0.9\ncrit_below = 0.85\n");
        std::fs::write(&s.config, &cfg).unwrap();
        let out = run(mlcheck(&s, &["--format", "json", "--dry-run"])).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check(task(&json, "ml-models"), "accuracy bert")["status"], "crit");

        s.app.set_metrics(MetricsMode::WithoutDistilbert);
        cfg.push_str("[[ml.models]]\nname = \"distilbert\"\nwarn_below = 0.8\n");
        std::fs::write(&s.config, &cfg).unwrap();
        let out = run(mlcheck(&s, &["--format", "json"])).await;
        assert_eq!(out.status.code(), Some(1));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check(task(&json, "ml-models"), "accuracy distilbert")["status"], "unknown");
    }

    #[tokio::test]
    async fn metrics_answering_500_is_crit_with_the_reason() {
        let s = setup("climl500", Opts::default()).await;
        s.app.set_metrics(MetricsMode::ServerError);
        let out = run(mlcheck(&s, &[])).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stdout).contains("HTTP 500"), "{}", text(&out.stdout));
        let out = run(s.maint(&["weekly", "--format", "json"])).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for t in ["performance", "ml-models"] {
            let c = check(task(&json, t), "metrics");
            assert_eq!(c["status"], "crit", "{t}: {c}");
            assert!(c["summary"].as_str().unwrap().contains("HTTP 500"), "{c}");
        }
    }

    #[tokio::test]
    async fn bad_ml_settings_exit_2_naming_the_key() {
        let s = setup("climlbad", Opts::default()).await;
        let mut cfg = std::fs::read_to_string(&s.config).unwrap();
        cfg.push_str("\n[[ml.models]]\nname = \"bert\"\nwarn_below = 85\n");
        std::fs::write(&s.config, &cfg).unwrap();
        let out = run(mlcheck(&s, &[])).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains("ml.models") && text(&out.stderr).contains("between 0 and 1"),
            "{}",
            text(&out.stderr)
        );
    }
}

// The kyb-secaudit binary and the audits in the flows.
mod secaudit_cli {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn secaudit(s: &Setup, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kyb-secaudit"));
        cmd.args(args).arg("--config").arg(&s.config);
        cmd
    }

    /// A planted host: a world-writable file under the audit root, an auth log with a burst,
    /// an expired certificate, a stand-in apt-get and an advisory database.
    fn plant(s: &Setup) {
        let d = s.dir.path();
        let root = d.join("opt/app");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("world.txt"), "x").unwrap();
        std::fs::set_permissions(root.join("world.txt"), std::fs::Permissions::from_mode(0o666)).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let fmt = time::macros::format_description!(
            "[month repr:short] [day padding:space] [hour]:[minute]:[second]"
        );
        let mut log = String::new();
        for i in 0..6 {
            let at =
                (now - time::Duration::minutes(30) + time::Duration::seconds(20 * i)).format(&fmt).unwrap();
            log.push_str(&format!(
                "{at} web sshd[{i}]: Failed password for root from 203.0.113.9 port 22 ssh2\n"
            ));
        }
        std::fs::write(d.join("auth.log"), log).unwrap();
        std::fs::write(
            d.join("apt-get"),
            "#!/bin/sh\necho 'Inst libssl3 [3.0.11-1] (3.0.17-1 Debian-Security:12/oldstable-security [amd64])'\n",
        )
        .unwrap();
        std::fs::set_permissions(d.join("apt-get"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("os-release"), "ID=debian\n").unwrap();
        std::fs::create_dir_all(d.join("advisory-db/crates/smallvec")).unwrap();
        std::fs::write(
            d.join("advisory-db/crates/smallvec/RUSTSEC-2021-0003.md"),
            "```toml\n[advisory]\nid = \"RUSTSEC-2021-0003\"\npackage = \"smallvec\"\n[versions]\npatched = [\">= 1.6.1\"]\n```\n# Buffer overflow\n",
        )
        .unwrap();
        std::fs::write(
            d.join("platform.lock"),
            "[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
        )
        .unwrap();
        let mut cfg = std::fs::read_to_string(&s.config).unwrap();
        cfg.push_str(&format!(
            "\n[security]\naudit_roots = [\"opt/app\"]\nauth_logs = [\"auth.log\"]\napt_get = \"{}\"\nos_release = \"{}\"\n\
             cargo_lock = \"platform.lock\"\nadvisory_db = \"advisory-db\"\n",
            d.join("apt-get").display(),
            d.join("os-release").display()
        ));
        std::fs::write(&s.config, cfg).unwrap();
    }

    #[tokio::test]
    async fn all_audits_with_nagios_exit_codes() {
        let s = setup("clisec", Opts::default()).await;
        plant(&s);
        let out = run(secaudit(&s, &["perms", "--format", "nagios"])).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
        assert!(text(&out.stdout).starts_with("KYB-SECAUDIT CRITICAL - "), "{}", text(&out.stdout));
        assert!(text(&out.stdout).contains("world-writable file"), "{}", text(&out.stdout));

        let out = run(secaudit(&s, &["logs", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(1), "a burst warns: {}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check(task(&json, "security-logs"), "burst from 203.0.113.9")["status"], "warn");

        let out = run(secaudit(&s, &["updates", "--apply", "--dry-run"])).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("would run") && text(&out.stdout).contains("install libssl3"),
            "{}",
            text(&out.stdout)
        );

        let out = run(secaudit(&s, &["all", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(2));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check(task(&json, "advisories"), "smallvec 1.6.0")["status"], "crit");
        assert_eq!(task(&json, "certificates")["status"], "ok", "not configured");

        // The monthly flow runs certificates, permissions and the log scan; the weekly one the
        // updates and advisories.
        let out = run(s.maint(&["monthly", "--format", "json"])).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(task(&json, "permissions")["status"], "crit");
        assert_eq!(task(&json, "security-logs")["status"], "warn");
        let out = run(s.maint(&["weekly", "--format", "json"])).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(task(&json, "os-updates")["status"], "warn");
        assert_eq!(task(&json, "advisories")["status"], "crit");
    }

    #[tokio::test]
    async fn a_bad_config_is_unknown_and_missing_sources_are_never_ok() {
        let s = setup("clisecbad", Opts::default()).await;
        let mut cfg = std::fs::read_to_string(&s.config).unwrap();
        cfg.push_str("\n[security]\nendpoints = [\"no-port-here\"]\n");
        std::fs::write(&s.config, &cfg).unwrap();
        let out = run(secaudit(&s, &["certs"])).await;
        assert_eq!(out.status.code(), Some(3));
        assert!(text(&out.stderr).contains("security.endpoints"), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with("KYB-SECAUDIT UNKNOWN - config: ") && stdout.contains("security.endpoints"),
            "{stdout}"
        );

        let cfg = cfg.replace(
            "endpoints = [\"no-port-here\"]",
            "auth_logs = [\"/nonexistent/auth.log\"]\ncargo_lock = \"x.lock\"\nadvisory_db = \"nowhere\"",
        );
        std::fs::write(&s.config, &cfg).unwrap();
        let out = run(secaudit(&s, &["logs", "--format", "nagios"])).await;
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
        assert!(text(&out.stdout).starts_with("KYB-SECAUDIT UNKNOWN - "), "{}", text(&out.stdout));
        let out = run(secaudit(&s, &["advisories", "--format", "nagios"])).await;
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
        assert!(text(&out.stdout).contains("no advisory database"), "{}", text(&out.stdout));
    }
}

// [alerting]: a real Alertmanager and Pushgateway hear about each run.
mod alerting {
    use super::*;
    use kyb_testkit::PromServer;

    fn add_alerting(s: &Setup, table: &str) {
        let mut text = std::fs::read_to_string(&s.config).unwrap();
        text.push_str(&format!("\n[alerting]\n{table}\n"));
        std::fs::write(&s.config, text).unwrap();
    }

    /// The KybMaintTaskFailed alerts an Alertmanager holds as active.
    fn active(am: &PromServer) -> Vec<serde_json::Value> {
        let body = am.get("/api/v2/alerts?filter=alertname%3D%22KybMaintTaskFailed%22");
        let alerts: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        alerts.into_iter().filter(|a| a["status"]["state"] == "active").collect()
    }

    /// The pushed sample `name` of the daily group, if the Pushgateway holds one.
    fn pushed(pg: &PromServer, name: &str, host: &str) -> Option<f64> {
        let text = pg.get("/metrics");
        let parsed = kyb_prom::parse(&text);
        parsed
            .samples
            .into_iter()
            .find(|s| {
                s.name == name
                    && s.label("job") == Some("kyb-maint")
                    && s.label("instance") == Some(host)
                    && s.label("flow") == Some("daily")
            })
            .map(|s| s.value)
    }

    /// The app fails: its task fires in Alertmanager and the metrics are in the Pushgateway;
    /// the next run finds it healthy and the alert resolves, the pushed status with it.
    #[tokio::test]
    async fn a_failed_task_fires_then_resolves_and_the_pushgateway_holds_each_run() {
        let (am, pg) = (PromServer::alertmanager(), PromServer::pushgateway());
        let s = setup("alerting", Opts { app_mode: HealthMode::ServerError, ..Opts::default() }).await;
        add_alerting(
            &s,
            &format!("alertmanager_urls = [\"{}\"]\npushgateway_url = \"{}\"", am.url(), pg.url()),
        );

        let out = run(s.maint(&["daily", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let host = json["host"].as_str().unwrap().to_owned();
        let alerting = task(&json, "alerting");
        assert_eq!(alerting["status"], "ok", "{alerting}");
        let alerts = active(&am);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let labels = &alerts[0]["labels"];
        assert_eq!(
            (&labels["flow"], &labels["task"], &labels["severity"]),
            (&"daily".into(), &"health".into(), &"critical".into())
        );
        assert_eq!(labels["host"], host.as_str());
        assert!(alerts[0]["annotations"]["summary"].as_str().unwrap().contains("app CRIT"), "{alerts:?}");
        assert_eq!(pushed(&pg, "kyb_maint_flow_status", &host), Some(2.0));
        assert_eq!(pushed(&pg, "kyb_maint_flow_last_success_timestamp_seconds", &host), None);
        // The saved report says the alert went out.
        let saved = files_under(&s.maint_dir().join("reports"));
        let json_file = saved.iter().find(|p| p.extension().is_some_and(|e| e == "json")).unwrap();
        assert!(std::fs::read_to_string(json_file).unwrap().contains("\"alerting\""));

        s.app.set_health(HealthMode::Healthy);
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert_eq!(active(&am), Vec::<serde_json::Value>::new(), "the alert resolved");
        assert_eq!(pushed(&pg, "kyb_maint_flow_status", &host), Some(0.0));
        assert!(pushed(&pg, "kyb_maint_flow_last_success_timestamp_seconds", &host).is_some());
        assert_eq!(pushed(&pg, "kyb_maint_task_status", &host), Some(0.0));
    }

    /// Alertmanager hung and the Pushgateway down: the run still ends within the timeouts, says
    /// what was not delivered (Warn, exit 0 for an otherwise healthy run) and saves its report.
    #[tokio::test]
    async fn endpoints_down_or_hung_are_a_warn_and_the_run_still_finishes() {
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = setup("alertingdown", Opts::default()).await;
        add_alerting(
            &s,
            &format!(
                "alertmanager_urls = [\"http://{}\"]\npushgateway_url = \"http://127.0.0.1:{}\"\ntimeout_ms = 500",
                hung.local_addr().unwrap(),
                dead_port()
            ),
        );
        let clock = Instant::now();
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        assert!(clock.elapsed() < Duration::from_secs(60), "took {:?}", clock.elapsed());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let alerting = task(&json, "alerting");
        assert_eq!(alerting["status"], "warn", "{alerting}");
        let summaries: Vec<&str> =
            alerting["checks"].as_array().unwrap().iter().map(|c| c["summary"].as_str().unwrap()).collect();
        assert_eq!(summaries[0], "alerts not delivered: no answer within 500 ms", "{summaries:?}");
        assert!(
            summaries[1].starts_with("metrics not pushed: cannot connect to 127.0.0.1:"),
            "{summaries:?}"
        );
        assert!(!json["report_files"].as_array().unwrap().is_empty(), "the report is saved");
        // The operator hears of it on stderr as well.
        assert!(text(&out.stderr).contains("alerts not delivered"), "{}", text(&out.stderr));
    }

    /// A binary's own run is delivered the same way, as its own group (a CronJob's pod has no
    /// node_exporter to read a textfile).
    #[tokio::test]
    async fn a_binary_pushes_its_run_under_its_task_name() {
        let pg = PromServer::pushgateway();
        let s = setup("alertingbin", Opts::default()).await;
        add_alerting(&s, &format!("pushgateway_url = \"{}\"", pg.url()));
        let mut cmd = Command::new(binary("kyb-health"));
        cmd.args(["app", "--format", "json", "--config"]).arg(&s.config);
        let out = run(cmd).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(task(&json, "alerting")["status"], "ok", "{json}");
        let metrics = pg.get("/metrics");
        assert!(
            metrics.contains("kyb_maint_task_status{flow=\"health\",instance=")
                && metrics.contains("job=\"kyb-maint\",task=\"health\"} 0"),
            "{metrics}"
        );
    }
}

// [flows] fleet: hosts sharing one database do its work once per period.
mod fleet {
    use super::*;

    /// Two hosts: two configs with their own directories and host names, one database and one
    /// backup directory (shared storage).
    async fn two_hosts() -> (Setup, tempfile::TempDir, PathBuf) {
        let a = setup("fleet", Opts::default()).await;
        let backups = a.dir.path().join("shared-backups");
        let b_dir = tempfile::tempdir().unwrap();
        let base = std::fs::read_to_string(&a.config).unwrap().replacen(
            "[paths]\n",
            &format!("[paths]\nbackup_dir = \"{}\"\n", backups.display()),
            1,
        );
        for (dir, host) in [(a.dir.path(), "host-a"), (b_dir.path(), "host-b")] {
            let text = format!("{base}\n[flows]\nfleet = true\nhost = \"{host}\"\n");
            std::fs::write(dir.join("kyb-maint.toml"), text).unwrap();
        }
        let b_config = b_dir.path().join("kyb-maint.toml");
        (a, b_dir, b_config)
    }

    /// Which of the two reports ran `task` itself (the other says who did).
    fn ran_on<'a>(task_name: &str, reports: &'a [(&'a str, serde_json::Value)]) -> Vec<&'a str> {
        reports
            .iter()
            .filter(|(_, json)| {
                let t = task(json, task_name);
                !t["summary"].as_str().unwrap().starts_with("done by host ")
            })
            .map(|(host, _)| *host)
            .collect()
    }

    /// Started together, the two hosts' weekly and then monthly runs do each database-wide
    /// task once between them: the other host reports "done by host X" (Ok), and the record
    /// table holds one row per task. Host-local tasks run on both.
    #[tokio::test]
    async fn two_hosts_started_together_run_each_database_wide_task_once() {
        let (a, _b_dir, b_config) = two_hosts().await;
        for (flow, tasks) in [
            (
                "weekly",
                &[
                    "db-analyze",
                    "db-unused-indexes",
                    "db-duplicate-indexes",
                    "db-invalid-indexes",
                    "db-table-sizes",
                    "db-bloat",
                    "db-vacuum-state",
                    "db-top-activity",
                    "db-wraparound",
                    "db-sequences",
                ][..],
            ),
            (
                "monthly",
                &[
                    "backup-create",
                    "restore-drill",
                    "db-slow-queries",
                    "db-index-recommendations",
                    "db-cache-hit",
                    "db-vacuum",
                    "db-capacity",
                ][..],
            ),
        ] {
            let args = [flow, "--emergency", "--format", "json", "--config"];
            let mut on_a = Command::new(binary("kyb-maint"));
            on_a.args(args).arg(&a.config);
            let mut on_b = Command::new(binary("kyb-maint"));
            on_b.args(args).arg(&b_config);
            let (out_a, out_b) = tokio::join!(run(on_a), run(on_b));
            let reports: Vec<(&str, serde_json::Value)> = [("host-a", &out_a), ("host-b", &out_b)]
                .into_iter()
                .map(|(host, out)| {
                    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
                        .unwrap_or_else(|e| panic!("{host} {flow}: {e}: {}", text(&out.stderr)));
                    assert_eq!(json["host"], host);
                    (host, json)
                })
                .collect();
            for name in tasks {
                let hosts = ran_on(name, &reports);
                assert_eq!(hosts.len(), 1, "{flow} {name} ran on {hosts:?}");
                let other = reports.iter().find(|(h, _)| *h != hosts[0]).unwrap();
                let t = task(&other.1, name);
                assert_eq!(t["status"], "ok", "{t}");
                assert!(
                    t["summary"].as_str().unwrap().starts_with(&format!("done by host {} at ", hosts[0])),
                    "{t}"
                );
                assert_ne!(
                    task(&reports.iter().find(|(h, _)| *h == hosts[0]).unwrap().1, name)["status"],
                    "crit"
                );
            }
            // Host-local work is done on each.
            let local = if flow == "weekly" { "performance" } else { "backup-archive" };
            assert!(ran_on(local, &reports).len() == 2, "{flow} {local}");
        }
        let rows =
            a.db.connect()
                .await
                .query("SELECT task, count(*) FROM kyb_maint.fleet_runs GROUP BY task", &[])
                .await
                .unwrap();
        assert_eq!(rows.len(), 17, "one record per database-wide task");
        assert!(rows.iter().all(|r| r.get::<_, i64>(1) == 1));
        // One dump in the shared backup directory, not two.
        let dumps = std::fs::read_dir(a.dir.path().join("shared-backups/full")).unwrap().count();
        assert_eq!(dumps, 1);
    }
}

// [history]: every flow run in the database, spooled when it is down, listed by `kyb-maint history`.
mod history {
    use super::*;

    /// The [postgres] table setup() wrote, for pointing a test at another server or role.
    fn postgres_block(db: &TestDb) -> String {
        format!(
            "[postgres]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndbname = \"{}\"\npassword = \"{}\"\n",
            db.host,
            db.port,
            db.user,
            db.dbname,
            db.password.clone().unwrap_or_default()
        )
    }

    fn repoint(s: &Setup, host: &str, port: u16, user: &str, dbname: &str, password: &str) {
        let text = std::fs::read_to_string(&s.config).unwrap().replace(
            &postgres_block(&s.db),
            &format!(
                "[postgres]\nhost = \"{host}\"\nport = {port}\nuser = \"{user}\"\ndbname = \"{dbname}\"\npassword = \"{password}\"\n"
            ),
        );
        assert!(text.contains(&format!("port = {port}\n")), "the [postgres] table was not found");
        std::fs::write(&s.config, text).unwrap();
    }

    async fn daily_json(s: &Setup) -> serde_json::Value {
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)))
    }

    fn history_json(s: &Setup, args: &[&str]) -> serde_json::Value {
        let mut cmd = s.maint(&["history", "--format", "json"]);
        cmd.args(args);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Two daily runs, then `kyb-maint history --flow daily` lists both, newest first; with
    /// `--task` each run carries that task's numbers, the gauges with their labels.
    #[tokio::test]
    async fn two_runs_are_listed_with_a_tasks_numbers() {
        let s = setup("history", Opts::default()).await;
        for _ in 0..2 {
            let json = daily_json(&s).await;
            assert_eq!(task(&json, "history")["status"], "ok", "{json}");
        }
        let runs = history_json(&s, &["--flow", "daily"]);
        let runs = runs.as_array().unwrap();
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert!(runs[0]["started_at"].as_str() > runs[1]["started_at"].as_str());
        assert!(runs.iter().all(|r| r["flow"] == "daily" && r["status"] == "OK"), "{runs:?}");
        let system = history_json(&s, &["--task", "system", "--limit", "1"]);
        let metrics = system[0]["task"]["metrics"].as_array().unwrap();
        let root =
            metrics.iter().find(|m| m["name"] == "kyb_maint_disk_used_ratio" && m["labels"]["mount"] == "/");
        assert!(root.is_some_and(|m| (0.0..=1.0).contains(&m["value"].as_f64().unwrap())), "{metrics:?}");
        assert!(history_json(&s, &["--flow", "weekly"]).as_array().unwrap().is_empty());
        let out = s.maint(&["history"]).output().unwrap();
        assert!(text(&out.stdout).starts_with("STARTED (UTC)"), "{}", text(&out.stdout));
        assert_eq!(text(&out.stdout).lines().count(), 3, "{}", text(&out.stdout));
    }

    /// With PostgreSQL down the runs wait in the spool (Warn); the first run after it is back
    /// records them, once: a spool left behind after a flush adds nothing a second time.
    #[tokio::test]
    async fn runs_spooled_while_postgres_is_down_are_recorded_once() {
        let server = tokio::task::spawn_blocking(|| kyb_testkit::ScratchServer::start("hist"))
            .await
            .unwrap()
            .expect("a scratch PostgreSQL server");
        let s = setup("historyspool", Opts::default()).await;
        let st = &server.stack;
        repoint(&s, "127.0.0.1", st.pg_port, &st.pg_user, "kyb", &st.password);
        let count = || st.psql("kyb", "SELECT count(*) FROM kyb_maint.runs").unwrap().trim().to_owned();
        assert_eq!(task(&daily_json(&s).await, "history")["status"], "ok");
        assert_eq!(count(), "1");

        server.stop_fast().unwrap();
        let spool = s.maint_dir().join("history-spool.jsonl");
        for waiting in 1..=2 {
            let json = daily_json(&s).await;
            let h = task(&json, "history");
            assert_eq!(h["status"], "warn", "{h}");
            let said = h["summary"].as_str().unwrap();
            assert!(
                said.contains(&format!("({waiting} run(s) waiting)")) && said.contains("history-spool.jsonl"),
                "{said}"
            );
        }
        let spooled = std::fs::read_to_string(&spool).unwrap();

        let server = tokio::task::spawn_blocking(move || {
            let mut server = server;
            server.restart().map(|()| server)
        })
        .await
        .unwrap()
        .expect("PostgreSQL back up");
        let json = daily_json(&s).await;
        assert_eq!(task(&json, "history")["summary"], "run recorded; 2 spooled run(s) flushed");
        assert!(!spool.exists());
        let st = &server.stack;
        let count = || st.psql("kyb", "SELECT count(*) FROM kyb_maint.runs").unwrap().trim().to_owned();
        assert_eq!(count(), "4");
        // A flush cut short after the inserts leaves the spool: flushing it again doubles nothing.
        std::fs::write(&spool, spooled).unwrap();
        let json = daily_json(&s).await;
        assert_eq!(task(&json, "history")["summary"], "run recorded");
        assert_eq!(count(), "5");
    }

    /// A role that may not create the history tables: one clear Warn (the run still exits 0),
    /// and the run waits in the spool for the grant.
    #[tokio::test]
    async fn a_role_without_create_gets_one_clear_warn() {
        let s = setup("historyplain", Opts::default()).await;
        let plain = s.db.plain_role().await;
        repoint(&s, &plain.host, plain.port, &plain.user, &plain.dbname, plain.password.as_deref().unwrap());
        let out = run(s.maint(&["daily", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let h = task(&json, "history");
        assert_eq!(h["status"], "warn", "{h}");
        assert!(h["summary"].as_str().unwrap().contains("GRANT CREATE ON DATABASE"), "{h}");
        s.db.drop_role(&plain).await;
    }

    /// Ten days of seeded history in which a disk grew 1% a day to 89%: the daily run's
    /// forecast gives it about 10 days (Warn, under warn_days 30), and writes the gauge.
    #[tokio::test]
    async fn the_daily_run_forecasts_a_growing_disk_from_the_history() {
        let s = setup("forecast", Opts::default()).await;
        let first = daily_json(&s).await;
        let host = first["host"].as_str().unwrap().to_owned();
        let c = s.db.connect().await;
        for day in 0..10 {
            let id: i64 = c
                .query_one(
                    "INSERT INTO kyb_maint.runs (flow, host, started_at, duration_ms, status, failed_tasks, version) \
                     VALUES ('daily', $1, now() - make_interval(days => $2), 1, 'OK', 0, 'seed') RETURNING id",
                    &[&host, &(10 - day)],
                )
                .await
                .unwrap()
                .get(0);
            let ratio = 0.80 + 0.01 * f64::from(day);
            c.batch_execute(&format!(
                "INSERT INTO kyb_maint.task_results VALUES ({id}, 'system', 'OK', 1, 'seeded'); \
                 INSERT INTO kyb_maint.check_results VALUES ({id}, 'system', 0, 'disk /seeded', 'OK', 'seeded'); \
                 INSERT INTO kyb_maint.metrics (run_id, task, position, name, labels, value, unit) \
                 VALUES ({id}, 'system', 0, 'kyb_maint_disk_used_ratio', '{{\"mount\": \"/seeded\"}}', {ratio}, '')"
            ))
            .await
            .unwrap();
        }
        let prom = s.dir.path().join("kyb-maint-daily.prom");
        let out = run(s.maint(&["daily", "--format", "json", "--textfile", prom.to_str().unwrap()])).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let forecast = task(&json, "forecast");
        let seeded = check(forecast, "disk /seeded");
        assert_eq!(seeded["status"], "warn", "{forecast}");
        let said = seeded["summary"].as_str().unwrap();
        assert!(said.starts_with("full in 1") && said.ends_with("days, Theil-Sen over 10 points"), "{said}");
        // The real disks have two runs minutes apart: too little to fit.
        assert!(check(forecast, "disk /")["summary"].as_str().unwrap().starts_with("not enough history"));
        let text = std::fs::read_to_string(&prom).unwrap();
        let parsed = kyb_prom::parse_strict(&text).unwrap();
        let gauge = parsed
            .samples
            .iter()
            .find(|g| g.name == "kyb_maint_forecast_seconds_left" && g.label("name") == Some("/seeded"))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(gauge.label("resource"), Some("disk"));
        assert!((9.0 * 86_400.0..11.0 * 86_400.0).contains(&gauge.value), "{}", gauge.value);
        promtool_check(&prom);
    }

    /// The monthly flow deletes runs older than [history] keep_days.
    #[tokio::test]
    async fn the_monthly_flow_prunes_old_runs() {
        let s = setup("historyprune", Opts::default()).await;
        daily_json(&s).await;
        let c = s.db.connect().await;
        c.batch_execute(
            "INSERT INTO kyb_maint.runs (flow, host, started_at, duration_ms, status, failed_tasks, version) \
             VALUES ('daily', 'old', now() - interval '500 days', 1, 'OK', 0, '0.0.1')",
        )
        .await
        .unwrap();
        let out = run(s.maint(&["monthly", "--format", "json"])).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let said = task(&json, "history")["summary"].as_str().unwrap().to_owned();
        assert!(said.ends_with("; 1 run(s) older than 400 days deleted"), "{said}");
        let left: i64 =
            c.query_one("SELECT count(*) FROM kyb_maint.runs WHERE host = 'old'", &[]).await.unwrap().get(0);
        assert_eq!(left, 0);
        let kept: i64 = c.query_one("SELECT count(*) FROM kyb_maint.runs", &[]).await.unwrap().get(0);
        assert_eq!(kept, 2, "the recent daily and this monthly run stay");
    }
}
