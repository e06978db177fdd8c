//! End-to-end tests of readings that used to come out wrong: the memory task's RSS from the
//! app's own `/metrics`, and the weekly analysis of a snapshot cut at its size cap.

use kyb_e2e::{binary, run, text};
use kyb_testkit::{FakeApp, HealthMode};
use std::path::Path;
use std::process::Command;

fn check<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["tasks"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {json}"))
}

// `kyb-update memory` with no [update] section: a read-only check of the app's own figures.
mod memory {
    use super::*;

    fn update(config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kyb-update"));
        cmd.args(args).arg("--config").arg(config).env("KYB_LOG", "warn");
        cmd
    }

    #[tokio::test]
    async fn the_apps_own_rss_is_judged_with_only_app_and_a_threshold() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kyb-maint.toml");
        let write = |extra: &str| {
            let text = format!(
                "[paths]\nmaintenance_dir = \"maint\"\n\n[app]\nbase_url = \"{}\"\n\n\
                 [tuning.memory]\nrss_warn_bytes = 268435456\n{extra}",
                app.url("")
            );
            std::fs::write(&config, text).unwrap();
        };
        // The fake app reports 412,001,000 bytes resident: over 256 MiB, under 1 GiB.
        write("rss_crit_bytes = 1073741824\n");
        let out = run(update(&config, &["memory", "--format", "json"])).await;
        assert_eq!(out.status.code(), Some(0), "Warn: {}{}", text(&out.stdout), text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rss = check(&json, "app rss");
        assert_eq!(rss["status"], "warn", "{rss}");
        assert_eq!(
            rss["summary"],
            "the app reports 392.9 MiB resident in process_resident_memory_bytes (warn above 256.0 MiB)"
        );
        assert_eq!(rss["metrics"][0]["unit"], "bytes");
        assert_eq!(rss["metrics"][0]["warn"], 268435456.0);
        let runtime = check(&json, "runtime")["summary"].as_str().unwrap();
        assert!(runtime.contains("process_open_fds 57"), "{runtime}");
        assert!(!runtime.contains("process_resident_memory_bytes"), "judged, not listed: {runtime}");

        write("rss_crit_bytes = 314572800\n");
        let out = run(update(&config, &["memory"])).await;
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "Crit: {stdout}{}", text(&out.stderr));
        assert!(stdout.contains("app rss") && stdout.contains("crit above 300.0 MiB"), "{stdout}");

        // A restart needs [update]: asked for without it, the report says so.
        write("rss_crit_bytes = 1073741824\nrestart = true\n");
        let out = run(update(&config, &["memory", "--format", "json", "--emergency"])).await;
        assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let restart = check(&json, "restart");
        assert_eq!(restart["status"], "warn");
        let why = restart["summary"].as_str().unwrap();
        assert!(why.contains("no [update] section") && why.contains("not restarted"), "{why}");
    }

    #[tokio::test]
    async fn without_app_or_update_it_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kyb-maint.toml");
        std::fs::write(&config, "[tuning.memory]\nrss_warn_bytes = 268435456\n").unwrap();
        let out = run(update(&config, &["memory"])).await;
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("has neither [app] nor [update]"), "{stderr}");
    }
}

// The daily snapshot at its cap, and the weekly analysis that would count from it.
mod snapshot {
    use super::*;
    use kyb_flows::{RunOptions, Task, run_tasks};

    /// The snapshots in `reports`, moved back a week, as the daily flow would have left them.
    fn age_snapshots_a_week(reports: &Path) {
        let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
        let week_ago = (time::OffsetDateTime::now_utc() - time::Duration::days(7)).format(&format).unwrap();
        for e in std::fs::read_dir(reports).unwrap().flatten() {
            let name = e.file_name().into_string().unwrap();
            if name.starts_with("app-metrics-") {
                std::fs::rename(e.path(), reports.join(format!("app-metrics-{week_ago}.prom"))).unwrap();
            }
        }
    }

    async fn weekly_note(cfg: &kyb_flows::Config) -> String {
        let r = run_tasks("weekly", &[Task::Performance], cfg, RunOptions::default()).await.unwrap();
        r.tasks[0].notes.join("; ")
    }

    #[tokio::test]
    async fn a_snapshot_cut_at_the_cap_is_not_the_weeks_baseline() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kyb-maint.toml");
        let config = |cap: &str| {
            let text = format!(
                "[paths]\nmaintenance_dir = \"maint\"\n\n[app]\nbase_url = \"{}\"\n{cap}",
                app.url("")
            );
            std::fs::write(&path, text).unwrap();
            kyb_flows::config::load(&path).unwrap()
        };
        let reports = dir.path().join("maint/reports");

        // The fake app's /metrics is about 16 KiB: a 4 KiB cap cuts it.
        let small = config("max_snapshot_bytes = 4096\n");
        let r = run_tasks("daily", &[Task::MetricsSnapshot], &small, RunOptions::default()).await.unwrap();
        let c = &r.tasks[0].checks[0];
        assert_eq!(c.status, kyb_core::Status::Warn, "{c:?}");
        assert!(c.summary.contains("larger than the 4.0 KiB cap"), "{}", c.summary);
        age_snapshots_a_week(&reports);
        let note = weekly_note(&small).await;
        assert!(
            note.contains("was cut at [app] max_snapshot_bytes: counts run since the app started"),
            "{note}"
        );

        // Within the default 8 MiB cap the snapshot is whole, and the week counts from it.
        for e in std::fs::read_dir(&reports).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("app-metrics-") {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        let whole = config("");
        let r = run_tasks("daily", &[Task::MetricsSnapshot], &whole, RunOptions::default()).await.unwrap();
        assert_eq!(r.tasks[0].status, kyb_core::Status::Ok, "{:?}", r.tasks[0]);
        age_snapshots_a_week(&reports);
        let note = weekly_note(&whole).await;
        assert!(note.starts_with("counts are the change since "), "{note}");
    }

    #[tokio::test]
    async fn a_fifo_or_an_oversized_file_where_last_weeks_snapshot_is_is_no_baseline_and_no_hang() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kyb-maint.toml");
        let text = format!(
            "[paths]\nmaintenance_dir = \"maint\"\n\n[app]\nbase_url = \"{}\"\nmax_snapshot_bytes = 4096\n",
            app.url("")
        );
        std::fs::write(&path, text).unwrap();
        let cfg = kyb_flows::config::load(&path).unwrap();
        let reports = dir.path().join("maint/reports");
        std::fs::create_dir_all(&reports).unwrap();
        let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
        let week_ago = (time::OffsetDateTime::now_utc() - time::Duration::days(7)).format(&format).unwrap();
        let snapshot = reports.join(format!("app-metrics-{week_ago}.prom"));
        for (what, want) in [("fifo", "it is a FIFO"), ("big", "larger than the")] {
            if what == "fifo" {
                assert!(std::process::Command::new("mkfifo").arg(&snapshot).status().unwrap().success());
            } else {
                std::fs::write(&snapshot, "x 1\n".repeat(100_000)).unwrap();
            }
            let note = tokio::time::timeout(std::time::Duration::from_secs(60), weekly_note(&cfg))
                .await
                .expect("the weekly analysis must not wait on a FIFO");
            assert!(note.contains("cannot be used") && note.contains(want), "{what}: {note}");
            std::fs::remove_file(&snapshot).unwrap();
        }
    }
}
