//! Dry runs: each task's plan, as its one check and its actions, with nothing written or touched.

use kyb_backup::*;
use kyb_core::{RunCtx, Status};
use std::path::Path;
use time::OffsetDateTime;
use time::macros::datetime;

/// A server nothing listens on: a dry run must not even try to connect.
fn nowhere() -> PgTarget {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    PgTarget { host: "127.0.0.1".into(), port, user: "kyb".into(), password: None, dbname: "kyb".into() }
}

fn plan_ctx() -> (OffsetDateTime, RunCtx) {
    let now = datetime!(2026-03-01 02:00:07 UTC);
    (now, RunCtx::new(now).with_dry_run(true))
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[tokio::test]
async fn a_dry_run_of_create_plans_the_dump_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (_, ctx) = plan_ctx();
    let cfg = CreateConfig {
        backup_dir: root.path().to_owned(),
        postgres: nowhere(),
        format: Format::Plain,
        compression_level: 6,
        // Not even looked for.
        pg_bindir: Some(root.path().join("no-such-bin")),
        timeout_ms: 60_000,
        lock_wait_timeout_ms: 5_000,
    };
    let r = create(&cfg, &ctx).await.unwrap();
    let plan = format!(
        "would dump 127.0.0.1/kyb with pg_dump (plain, gzip level 6) into {}/full/backup_<time>/",
        root.path().display()
    );
    assert_eq!(r.findings.actions, [plan.as_str()]);
    assert_eq!(r.findings.checks.len(), 1, "{:?}", r.findings.checks);
    let c = &r.findings.checks[0];
    assert_eq!((c.name.as_str(), c.status, c.summary.as_str()), ("backup", Status::Ok, plan.as_str()));
    assert!(r.findings.artifacts.is_empty());
    assert_eq!(r.dir, root.path().join("full/backup_20260301_020007"), "the directory it would make");
    assert_eq!(r.metadata, None);
    assert!(is_empty(root.path()), "a dry run wrote something");
}

#[tokio::test]
async fn a_dry_run_of_archive_plans_each_archive_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (_, ctx) = plan_ctx();
    let backups = root.path().join("backups");
    let source = |name: &str, paths: &[&str]| ArchiveSource {
        name: name.into(),
        paths: paths.iter().map(|p| root.path().join(p)).collect(),
    };
    let cfg = ArchiveConfig {
        backup_dir: backups.clone(),
        sources: vec![source("app", &["etc/app", "etc/app.d"]), source("tls", &["etc/tls"])],
        compression_level: 6,
        timeout_ms: 60_000,
    };
    let r = archive(&cfg, &ctx).await.unwrap();
    let at = |p: &str| root.path().join(p).display().to_string();
    assert_eq!(
        r.findings.actions,
        [
            format!("would archive {} {} into app.tar.gz", at("etc/app"), at("etc/app.d")),
            format!("would archive {} into tls.tar.gz", at("etc/tls")),
        ]
    );
    let c = &r.findings.checks[..];
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!((c[0].name.as_str(), c[0].status), ("archive", Status::Ok));
    assert_eq!(
        c[0].summary,
        format!("would write 2 archives to {}/monthly/monthly_<time>/", backups.display())
    );
    assert_eq!((r.dir, r.manifest), (backups.join("monthly/monthly_20260301_020007"), None));
    assert!(r.findings.artifacts.is_empty());
    assert!(!backups.exists(), "a dry run wrote something");

    let one = ArchiveConfig { sources: vec![source("tls", &["etc/tls"])], ..cfg };
    let r = archive(&one, &ctx).await.unwrap();
    assert!(r.findings.checks[0].summary.starts_with("would write 1 archive to "), "{:?}", r.findings.checks);
}

#[tokio::test]
async fn a_dry_run_of_the_drill_plans_it_and_touches_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (_, ctx) = plan_ctx();
    let t = nowhere();
    let cfg = DrillConfig {
        backup_dir: root.path().to_owned(),
        which: Which::Latest,
        postgres: t.clone(),
        pg_bindir: Some(root.path().join("no-such-bin")),
        max_age_hours: 26,
        timeout_ms: 60_000,
    };
    let r = restore_drill(&cfg, &ctx).await.unwrap();
    let plan = format!(
        "would restore the latest backup in {} into a scratch database kyb_dr_<time> on 127.0.0.1:{}, then drop it",
        root.path().display(),
        t.port
    );
    assert_eq!(r.findings.actions, [plan.as_str()]);
    let c = &r.findings.checks[..];
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(
        (c[0].name.as_str(), c[0].status, c[0].summary.as_str()),
        ("drill", Status::Ok, plan.as_str())
    );
    assert_eq!((r.backup, r.scratch_db.as_str(), r.restore_ms, r.findings.headline), (None, "", 0, None));
    assert!(is_empty(root.path()));
}
