//! The permission audit on a planted tree: exactly the planted findings, symlinks never
//! followed, no crash on loops or unreadable directories.

use kyb_core::Status;
use kyb_secaudit::*;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn ctx() -> kyb_core::RunCtx {
    kyb_core::RunCtx::new(time::OffsetDateTime::now_utc())
}

fn uid_of(p: &Path) -> u32 {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).unwrap())
}

#[tokio::test]
async fn exactly_the_planted_findings() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    std::fs::create_dir_all(root.join("conf/tls")).unwrap();
    std::fs::create_dir_all(root.join("shared")).unwrap();
    std::fs::create_dir_all(root.join("locked")).unwrap();
    let f = |rel: &str, body: &str, mode: u32| {
        let p = root.join(rel);
        std::fs::write(&p, body).unwrap();
        chmod(&p, mode);
        p
    };
    f("conf/app.toml", "ok = true\n", 0o640);
    f("conf/tls/server.crt", "-----BEGIN CERTIFICATE-----\n", 0o644);
    f("conf/tls/server.key", "-----BEGIN PRIVATE KEY-----\n", 0o600);
    f("conf/world.txt", "anyone may write this\n", 0o666);
    f("conf/tls/leaked.key", "-----BEGIN PRIVATE KEY-----\n", 0o644);
    f("conf/tls/bundle.pem", "-----BEGIN RSA PRIVATE KEY-----\n", 0o604);
    f("bin-helper", "#!/bin/sh\n", 0o4755);
    f("wrong-owner.txt", "x\n", 0o644);
    chmod(&root.join("shared"), 0o1777);
    std::fs::create_dir(root.join("open")).unwrap();
    chmod(&root.join("open"), 0o777);
    symlink("/etc/shadow", root.join("conf/shadow-link")).unwrap();
    symlink(root.join("loop-b"), root.join("loop-a")).unwrap();
    symlink(root.join("loop-a"), root.join("loop-b")).unwrap();
    symlink("/", root.join("to-root")).unwrap();
    f("locked/secret.txt", "x\n", 0o644);
    chmod(&root.join("locked"), 0o000);
    let me = uid_of(&root);
    // The one file owned by someone else.
    rustix::fs::chown(root.join("wrong-owner.txt"), Some(rustix::fs::Uid::from_raw(me + 4242)), None).ok();
    let chowned = uid_of(&root.join("wrong-owner.txt")) != me;

    let cfg =
        PermConfig { roots: vec![root.clone()], owner_uid: Some(me), group_gid: None, time_limit_ms: 10_000 };
    let r = audit_permissions(&cfg, &ctx()).await.unwrap();
    chmod(&root.join("locked"), 0o755);
    let mut found: Vec<(String, Status, String)> = r
        .findings
        .checks
        .iter()
        .map(|c| {
            (
                c.name.strip_prefix(&root.display().to_string()).unwrap_or(&c.name).to_owned(),
                c.status,
                c.summary.clone(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
    let mut want = vec![
        "/bin-helper",
        "/conf/tls/bundle.pem",
        "/conf/tls/leaked.key",
        "/conf/world.txt",
        "/open",
        "/shared",
    ];
    let running_as_root = rustix::process::geteuid().is_root();
    if !running_as_root {
        // Root reads a 0000 directory; anyone else is refused, and that is a finding.
        want.push("/locked");
    }
    if chowned {
        want.push("/wrong-owner.txt");
    }
    want.sort_unstable();
    assert_eq!(names, want, "{found:#?}");
    let get = |n: &str| found.iter().find(|f| f.0 == n).unwrap();
    assert_eq!(get("/conf/world.txt").1, Status::Crit);
    assert!(get("/conf/world.txt").2.contains("found mode 0666"), "{:?}", get("/conf/world.txt"));
    assert_eq!(get("/shared").1, Status::Warn, "sticky directories are reported apart");
    assert!(get("/shared").2.contains("sticky"));
    assert_eq!(get("/open").1, Status::Crit);
    assert!(get("/bin-helper").2.starts_with("setuid file"));
    assert!(get("/conf/tls/leaked.key").2.contains("private key readable by others"));
    assert!(get("/conf/tls/bundle.pem").2.contains("private key readable by others"), "found by content");
    if chowned {
        assert!(
            get("/wrong-owner.txt").2.contains(&format!("expected uid {me}")),
            "{:?}",
            get("/wrong-owner.txt")
        );
    }
    // Nothing outside the tree was looked at: /etc/shadow and / stay out of the report.
    assert!(r.findings.checks.iter().all(|c| c.name.starts_with(&root.display().to_string())));
}

#[tokio::test]
async fn the_walk_stops_at_its_time_limit_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..200 {
        std::fs::create_dir_all(dir.path().join(format!("d{i}/e"))).unwrap();
    }
    let cfg =
        PermConfig { roots: vec![dir.path().to_owned()], owner_uid: None, group_gid: None, time_limit_ms: 0 };
    let r = audit_permissions(&cfg, &ctx()).await.unwrap();
    let walk = r.findings.checks.iter().find(|c| c.name == "walk").expect("a cut-off finding");
    assert_eq!(walk.status, Status::Warn);
    assert!(walk.summary.contains("not audited"), "{}", walk.summary);
}

#[tokio::test]
async fn a_clean_tree_is_one_ok_row_and_pseudo_filesystems_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), "x").unwrap();
    chmod(&dir.path().join("a"), 0o644);
    chmod(dir.path(), 0o755);
    let cfg = PermConfig {
        roots: vec![dir.path().to_owned(), "/proc".into()],
        owner_uid: None,
        group_gid: None,
        time_limit_ms: 5_000,
    };
    let r = audit_permissions(&cfg, &ctx()).await.unwrap();
    assert_eq!(r.findings.checks.len(), 1, "{:#?}", r.findings.checks);
    assert!(r.findings.checks[0].summary.contains("kernel pseudo filesystem"));
    let cfg = PermConfig { roots: vec![dir.path().to_owned()], ..cfg };
    let r = audit_permissions(&cfg, &ctx()).await.unwrap();
    assert_eq!((r.findings.checks.len(), r.findings.checks[0].status), (1, Status::Ok));
    assert_eq!(r.entries, 1);
    assert_eq!(r.findings.notes, ["1 entries looked at"], "the count goes into the report as a note");
    // The findings sit at the top level of the report's JSON, beside its own fields.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!((json["entries"].as_u64(), json["checks"][0]["status"].as_str()), (Some(1), Some("ok")));
    assert_eq!(json["notes"][0], "1 entries looked at");
}

/// Something mounted inside the tree, unmounted on drop. Needs root (CI runs as root).
struct Mounted(std::path::PathBuf);

impl Mounted {
    /// `mount ARGS… AT`.
    fn new(args: &[&std::ffi::OsStr], at: &Path) -> Mounted {
        let out = std::process::Command::new("mount").args(args).arg(at).output().unwrap();
        assert!(
            out.status.success(),
            "this test mounts and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mounted(at.to_owned())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn the_walk_does_not_cross_into_another_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let tmpfs: Vec<&std::ffi::OsStr> =
        ["-t", "tmpfs", "-o", "size=1024k", "tmpfs"].map(std::ffi::OsStr::new).into();
    let mounted = Mounted::new(&tmpfs, &mnt);
    std::fs::write(mnt.join("world.txt"), "x").unwrap();
    chmod(&mnt.join("world.txt"), 0o666);
    chmod(&mnt, 0o755);
    chmod(dir.path(), 0o755);
    let cfg = PermConfig {
        roots: vec![dir.path().to_owned()],
        owner_uid: None,
        group_gid: None,
        time_limit_ms: 5_000,
    };
    let r = audit_permissions(&cfg, &ctx()).await.unwrap();
    assert!(
        r.findings.checks.iter().all(|c| !c.name.contains("world.txt")),
        "walked into the tmpfs: {:#?}",
        r.findings.checks
    );
    // Audited as a root of its own, the same file is found.
    let r = audit_permissions(&PermConfig { roots: vec![mnt.clone()], ..cfg }, &ctx()).await.unwrap();
    assert!(r.findings.checks.iter().any(|c| c.name.ends_with("world.txt")), "{:#?}", r.findings.checks);
    drop(mounted);
}

#[tokio::test]
async fn the_walk_does_not_follow_a_bind_mount_of_the_same_filesystem() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("world.txt"), "x").unwrap();
    chmod(&outside.path().join("world.txt"), 0o666);
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    // A bind mount of another directory, and one of the audited root itself (a loop).
    let (bind, lp) = (dir.path().join("bind"), dir.path().join("loop"));
    std::fs::create_dir(&bind).unwrap();
    std::fs::create_dir(&lp).unwrap();
    let bind_mount = |from: &Path, to: &Path| Mounted::new(&["--bind".as_ref(), from.as_os_str()], to);
    let mounts = [bind_mount(outside.path(), &bind), bind_mount(dir.path(), &lp)];
    let cfg = PermConfig {
        roots: vec![dir.path().to_owned()],
        owner_uid: None,
        group_gid: None,
        time_limit_ms: 5_000,
    };
    let r = audit_permissions(&cfg, &ctx()).await.unwrap();
    assert!(
        r.findings.checks.iter().all(|c| !c.name.contains("world.txt")),
        "walked into the bind mount: {:#?}",
        r.findings.checks
    );
    assert!(r.entries < 10, "walked the loop: {} entries", r.entries);
    assert!(r.findings.checks.iter().all(|c| c.status == kyb_core::Status::Ok), "{:#?}", r.findings.checks);
    drop(mounts);
}
