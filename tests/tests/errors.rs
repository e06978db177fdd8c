//! End-to-end tests of what the binaries say when something is wrong: a database that cannot be
//! reached, and the server's chatter kept out of the logs.

use kyb_e2e::{binary, text};
use kyb_testkit::{TestDb, fresh_database};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A config file pointing `[postgres]` at `db`, on `port` when given.
fn config(dir: &tempfile::TempDir, db: &TestDb, port: Option<u16>) -> PathBuf {
    let path = dir.path().join("kyb-maint.toml");
    let text = format!(
        "[paths]\nmaintenance_dir = \"{}\"\n\n\
         [postgres]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndbname = \"{}\"\npassword = \"{}\"\ntimeout_ms = 3000\n",
        dir.path().join("maint").display(),
        db.host,
        port.unwrap_or(db.port),
        db.user,
        db.dbname,
        db.password.clone().unwrap_or_default(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `kyb-dbmaint` with stderr not a terminal (JSON log lines), off the async runtime.
async fn dbmaint(config: &PathBuf, args: &[&str], log: Option<&str>) -> Output {
    let mut cmd = Command::new(binary("kyb-dbmaint"));
    cmd.args(args).arg("--config").arg(config).env_remove("KYB_LOG");
    if let Some(level) = log {
        cmd.env("KYB_LOG", level);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("spawn kyb-dbmaint")).await.unwrap()
}

// kyb-dbmaint against a database that is not there.
mod connection {
    use super::*;

    #[tokio::test]
    async fn every_report_against_a_dead_port_is_one_finding_naming_the_cause() {
        let db = fresh_database("errdead").await;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = config(&dir, &db, Some(port));
        let out = dbmaint(&config, &["reports", "--format", "json"], None).await;
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let tasks = json["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 1, "{json:#}");
        let checks = tasks[0]["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 1, "{json:#}");
        assert_eq!(checks[0]["status"], "crit");
        let summary = checks[0]["summary"].as_str().unwrap();
        let cause = format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused; check ");
        assert!(summary.starts_with(&cause), "{summary}");
        assert!(summary.contains("listens on that address"), "{summary}");

        // The text report says it once as the task and once as its finding, nothing more.
        let out = dbmaint(&config, &["reports"], None).await;
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert_eq!(stdout.matches("cannot connect to PostgreSQL").count(), 2, "{stdout}");
        assert!(!stdout.contains("Error occurred"), "{stdout}");
    }
}

// Migrations against a database that is not there say the same.
mod migrations {
    #[tokio::test]
    async fn a_dead_port_names_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = kyb_update::MigrateConfig {
            postgres: kyb_core::PgTarget {
                host: "127.0.0.1".into(),
                port,
                user: "kyb".into(),
                password: None,
                dbname: "kyb".into(),
            },
            dir: dir.path().to_owned(),
            connect_timeout_ms: 5_000,
            lock_wait_ms: 500,
            lock_timeout_ms: 1_000,
            statement_timeout_ms: 0,
        };
        let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc()).with_dry_run(true);
        let err = kyb_update::migrate(&cfg, &ctx).await.unwrap_err();
        let text = kyb_core::error_chain(&err);
        let cause = format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused; check ");
        assert!(text.starts_with(&cause), "{text}");
    }
}

// The server's notices and the client library's source paths stay out of the logs.
mod notices {
    use super::*;

    #[tokio::test]
    async fn a_repeated_capacity_run_logs_no_notice_and_no_source_path() {
        let db = fresh_database("errnotice").await;
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir, &db, None);
        // The second run's CREATE ... IF NOT EXISTS draws "already exists, skipping" notices.
        for _ in 0..2 {
            for log in [None, Some("info")] {
                let out = dbmaint(&config, &["capacity"], log).await;
                let stderr = text(&out.stderr);
                assert_eq!(out.status.code(), Some(0), "{}{stderr}", text(&out.stdout));
                assert!(!stderr.contains("already exists, skipping"), "{log:?}: {stderr}");
                assert!(!stderr.contains(".cargo/registry"), "{log:?}: {stderr}");
                assert!(!stderr.contains(".rs\"") && !stderr.contains(".rs:"), "{log:?}: {stderr}");
            }
        }
        // Asked for, they are there, at debug level.
        let out = dbmaint(&config, &["capacity"], Some("kyb_dbmaint=debug")).await;
        let stderr = text(&out.stderr);
        let notices: Vec<serde_json::Value> = stderr
            .lines()
            .filter(|l| l.contains("already exists, skipping"))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!notices.is_empty(), "{stderr}");
        assert!(notices.iter().all(|n| n["level"] == "DEBUG"), "{notices:?}");
    }
}
