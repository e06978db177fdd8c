//! OS security updates from apt's simulation (a stand-in apt-get, and the machine's own), and
//! dependency advisories from a small advisory database the test writes.

use kyb_core::{RunCtx, Status, WindowState};
use kyb_secaudit::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn updates_cfg(apt: &Path, dir: &Path) -> UpdatesConfig {
    UpdatesConfig {
        apt_get: apt.to_owned(),
        os_release: dir.join("os-release"),
        lists_dir: dir.join("lists"),
        lists_max_age_days: 7,
        apply: false,
        timeout_ms: 60_000,
    }
}

/// A run now, inside a maintenance window (or with none enforced).
fn ctx() -> RunCtx {
    RunCtx::new(time::OffsetDateTime::now_utc())
}

/// A run now, outside the maintenance windows.
fn outside_window() -> RunCtx {
    ctx().with_window(WindowState::Closed { windows: "Sun 02:00-06:00 UTC".into(), next_open: None })
}

/// A stand-in apt-get: prints a simulation, and records any other call.
fn fake_apt(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("apt-get");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n\
             case \"$1\" in -s) ;; *) echo \"$@\" >> {}/installed; exit 0 ;; esac\n\
             echo 'Reading package lists...'\n\
             echo 'Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])'\n\
             echo 'Inst libssl3 [3.0.11-1~deb12u1] (3.0.17-1~deb12u3 Debian-Security:12/oldstable-security [amd64])'\n\
             echo 'Inst openssh-server [1:9.2p1-2+deb12u3] (1:9.2p1-2+deb12u7 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64]) []'\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[tokio::test]
async fn security_updates_are_listed_and_applied_only_when_asked_in_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("os-release"), "PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n").unwrap();
    std::fs::create_dir(d.join("lists")).unwrap();
    std::fs::write(d.join("lists/x_InRelease"), "").unwrap();
    let apt = fake_apt(d);
    let cfg = updates_cfg(&apt, d);
    let r = check_updates(&cfg, &outside_window()).await.unwrap();
    let sec = &r.findings.checks[0];
    assert_eq!(sec.status, Status::Warn);
    assert_eq!(
        sec.summary,
        "2 pending: libssl3 3.0.11-1~deb12u1 -> 3.0.17-1~deb12u3, openssh-server 1:9.2p1-2+deb12u3 -> 1:9.2p1-2+deb12u7"
    );
    assert_eq!(r.pending.len(), 3);
    assert_eq!(r.findings.checks[1].status, Status::Ok, "fresh lists: {:?}", r.findings.checks[1]);
    assert!(r.findings.actions.is_empty());
    assert!(!d.join("installed").exists(), "nothing applied without asking");

    let apply = UpdatesConfig { apply: true, ..cfg.clone() };
    // A dry run plans the install, inside a window or not, and installs nothing.
    for run in [ctx(), outside_window()] {
        let r = check_updates(&apply, &run.with_dry_run(true)).await.unwrap();
        assert_eq!(
            r.findings.actions,
            [format!("would run {} -y --only-upgrade install libssl3 openssh-server", apt.display())]
        );
        assert!(r.findings.checks.iter().all(|c| c.name != "install"), "{:#?}", r.findings.checks);
        assert!(!d.join("installed").exists());
    }
    let r = check_updates(&apply, &outside_window()).await.unwrap();
    assert!(
        r.findings
            .checks
            .iter()
            .any(|c| c.name == "install" && c.summary.starts_with("not installed: outside"))
    );
    assert!(r.findings.actions.is_empty());
    assert!(!d.join("installed").exists());
    let r = check_updates(&apply, &ctx()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(d.join("installed")).unwrap(),
        "-y --only-upgrade install libssl3 openssh-server\n"
    );
    assert!(r.findings.checks.iter().any(|c| c.name == "install" && c.status == Status::Ok));
    assert_eq!(
        r.findings.actions,
        [format!("ran {} -y --only-upgrade install libssl3 openssh-server", apt.display())]
    );
    // An emergency installs outside the windows too.
    std::fs::remove_file(d.join("installed")).unwrap();
    let r = check_updates(&apply, &outside_window().with_emergency(true)).await.unwrap();
    assert!(r.findings.checks.iter().any(|c| c.name == "install" && c.status == Status::Ok));
    assert!(d.join("installed").exists());

    // A simulation that fails is Unknown, never "no updates".
    std::fs::write(&apt, "#!/bin/sh\necho 'E: Could not open lock file' >&2\nexit 100\n").unwrap();
    let r = check_updates(&cfg, &ctx()).await.unwrap();
    assert_eq!(r.findings.checks[0].status, Status::Unknown);
    assert!(
        r.findings.checks[0].summary.contains("Could not open lock file"),
        "{}",
        r.findings.checks[0].summary
    );
    // Another distribution: Unknown, saying so.
    std::fs::write(d.join("os-release"), "ID=fedora\n").unwrap();
    let r = check_updates(&cfg, &ctx()).await.unwrap();
    assert_eq!(r.findings.checks[0].status, Status::Unknown);
    assert!(r.findings.checks[0].summary.contains("not a Debian-family system"));
}

#[tokio::test]
async fn this_machines_apt_simulation_reads_without_changing_anything() {
    if !Path::new("/usr/bin/apt-get").exists() {
        panic!("this test needs Debian's apt-get, as CI's machine has");
    }
    let cfg = UpdatesConfig {
        apt_get: "/usr/bin/apt-get".into(),
        os_release: "/etc/os-release".into(),
        lists_dir: "/var/lib/apt/lists".into(),
        ..updates_cfg(Path::new("/usr/bin/apt-get"), Path::new("/"))
    };
    let r = check_updates(&cfg, &ctx()).await.unwrap();
    assert_ne!(r.findings.checks[0].status, Status::Unknown, "{:#?}", r.findings.checks);
    let security = r.pending.iter().filter(|p| p.security).count();
    assert!(r.findings.checks[0].summary.starts_with(&if security == 0 {
        "none pending".to_owned()
    } else {
        format!("{security} pending")
    }));
}

fn advisory(db: &Path, krate: &str, id: &str, body: &str) {
    std::fs::create_dir_all(db.join("crates").join(krate)).unwrap();
    std::fs::write(db.join("crates").join(krate).join(format!("{id}.md")), body).unwrap();
}

#[tokio::test]
async fn a_known_vulnerable_version_is_found_and_a_missing_database_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("advisory-db");
    advisory(
        &db,
        "smallvec",
        "RUSTSEC-2021-0003",
        "```toml\n[advisory]\nid = \"RUSTSEC-2021-0003\"\npackage = \"smallvec\"\ndate = \"2021-01-08\"\n\n\
         [versions]\npatched = [\">= 1.6.1\"]\nunaffected = [\"< 1.0.0\"]\n```\n\n# Buffer overflow in SmallVec::insert_many\n",
    );
    advisory(
        &db,
        "time",
        "RUSTSEC-2020-0071",
        "```toml\n[advisory]\nid = \"RUSTSEC-2020-0071\"\npackage = \"time\"\ndate = \"2020-11-18\"\n\n\
         [versions]\npatched = [\">= 0.2.23\"]\nunaffected = [\"=0.1.*\"]\n```\n\n# Potential segfault in the time crate\n",
    );
    advisory(
        &db,
        "ansi_term",
        "RUSTSEC-2021-0139",
        "```toml\n[advisory]\nid = \"RUSTSEC-2021-0139\"\npackage = \"ansi_term\"\ndate = \"2021-08-18\"\ninformational = \"unmaintained\"\n\n\
         [versions]\npatched = []\n```\n\n# ansi_term is Unmaintained\n",
    );
    advisory(&db, "smallvec", "RUSTSEC-9999-0001", "```toml\nnot toml at all\n");
    let lock = d.join("Cargo.lock");
    std::fs::write(
        &lock,
        "version = 3\n\n\
         [[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n\
         [[package]]\nname = \"time\"\nversion = \"0.3.36\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n\
         [[package]]\nname = \"time\"\nversion = \"0.1.45\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n\
         [[package]]\nname = \"ansi_term\"\nversion = \"0.12.1\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n\
         [[package]]\nname = \"platform\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let cfg = AdvisoryConfig { lockfile: lock.clone(), database: db.clone(), max_age_days: 7 };
    let r = scan_advisories(&cfg, &ctx()).await.unwrap();
    let found: Vec<(&str, &str, &str)> =
        r.applicable.iter().map(|f| (f.id.as_str(), f.package.as_str(), f.version.as_str())).collect();
    assert_eq!(
        found,
        [("RUSTSEC-2021-0139", "ansi_term", "0.12.1"), ("RUSTSEC-2021-0003", "smallvec", "1.6.0")]
    );
    let c = r.findings.checks.iter().find(|c| c.name == "smallvec 1.6.0").unwrap();
    assert_eq!(c.status, Status::Crit);
    assert_eq!(c.summary, "RUSTSEC-2021-0003: Buffer overflow in SmallVec::insert_many; fixed in >= 1.6.1");
    assert_eq!(r.findings.checks.iter().find(|c| c.name == "ansi_term 0.12.1").unwrap().status, Status::Warn);
    assert_eq!(r.packages, 4);
    let summary = r.findings.checks.iter().find(|c| c.name == "advisories").unwrap();
    assert_eq!(summary.status, Status::Crit);
    assert!(
        r.findings.checks.iter().any(|c| c.name == "database" && c.summary.contains("could not be read")),
        "{:#?}",
        r.findings.checks
    );

    // The database is missing: the scan could not run, and says so.
    let r = scan_advisories(&AdvisoryConfig { database: d.join("nowhere"), ..cfg.clone() }, &ctx())
        .await
        .unwrap();
    assert_eq!(r.findings.checks.len(), 1);
    assert_eq!(r.findings.checks[0].status, Status::Unknown);
    assert!(
        r.findings.checks[0].summary.contains("no advisory database"),
        "{}",
        r.findings.checks[0].summary
    );
    // A stale database is reported.
    let old = rustix::fs::Timespec { tv_sec: 1_600_000_000, tv_nsec: 0 };
    let times = rustix::fs::Timestamps { last_access: old, last_modification: old };
    for f in [
        "smallvec/RUSTSEC-2021-0003.md",
        "smallvec/RUSTSEC-9999-0001.md",
        "time/RUSTSEC-2020-0071.md",
        "ansi_term/RUSTSEC-2021-0139.md",
    ] {
        rustix::fs::utimensat(
            rustix::fs::CWD,
            db.join("crates").join(f),
            &times,
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }
    let r = scan_advisories(&cfg, &ctx()).await.unwrap();
    let age = r
        .findings
        .checks
        .iter()
        .find(|c| c.name == "database" && c.summary.contains("last updated"))
        .unwrap();
    assert_eq!(age.status, Status::Warn);
    // A lockfile that cannot be read is Unknown too.
    let r =
        scan_advisories(&AdvisoryConfig { lockfile: d.join("missing.lock"), ..cfg }, &ctx()).await.unwrap();
    assert_eq!(r.findings.checks[0].status, Status::Unknown);
}

/// A sparse index on loopback: answers `<path>` with the lines in `crates`, 404 otherwise.
fn fake_index(crates: Vec<(&'static str, String)>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let n = std::io::Read::read(&mut stream, &mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("").to_owned();
            let reply = match crates.iter().find(|(p, _)| path == format!("/{p}")) {
                Some((_, body)) => format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
            };
            let _ = std::io::Write::write_all(&mut stream, reply.as_bytes());
        }
    });
    port
}

#[tokio::test]
async fn direct_dependencies_behind_the_newest_release_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("Cargo.toml"),
        "[package]\nname = \"platform\"\nversion = \"0.1.0\"\n\n[dependencies]\nserde = \"1\"\nlog = { version = \"0.4\" }\n\
         json = { package = \"serde_json\", version = \"1\" }\nlocal = { path = \"../local\" }\nmissing-one = \"1\"\n",
    )
    .unwrap();
    let reg = "source = \"registry+https://github.com/rust-lang/crates.io-index\"";
    std::fs::write(
        d.join("Cargo.lock"),
        format!(
            "[[package]]\nname = \"serde\"\nversion = \"1.0.100\"\n{reg}\n\n[[package]]\nname = \"log\"\nversion = \"0.4.22\"\n{reg}\n\n\
             [[package]]\nname = \"serde_json\"\nversion = \"1.0.120\"\n{reg}\n\n[[package]]\nname = \"missing-one\"\nversion = \"1.0.0\"\n{reg}\n"
        ),
    )
    .unwrap();
    let line = |name: &str, v: &str, yanked: bool| {
        format!("{{\"name\":\"{name}\",\"vers\":\"{v}\",\"yanked\":{yanked}}}\n")
    };
    let port = fake_index(vec![
        (
            "se/rd/serde",
            [
                line("serde", "1.0.100", false),
                line("serde", "1.0.210", false),
                line("serde", "2.0.0-alpha.1", false),
            ]
            .concat(),
        ),
        ("3/l/log", [line("log", "0.4.22", false), line("log", "0.4.23", true)].concat()),
        (
            "se/rd/serde_json",
            [line("serde_json", "1.0.120", false), line("serde_json", "1.0.128", false)].concat(),
        ),
    ]);
    let cfg = OutdatedConfig {
        manifest: d.join("Cargo.toml"),
        lockfile: d.join("Cargo.lock"),
        index_url: format!("http://127.0.0.1:{port}/"),
        ca_bundle: "/nonexistent".into(),
        timeout_ms: 2_000,
    };
    let r = check_outdated(&cfg, &ctx()).await.unwrap();
    let found: Vec<(&str, &str, &str)> =
        r.outdated.iter().map(|o| (o.name.as_str(), o.locked.as_str(), o.newest.as_str())).collect();
    // log's newer release is yanked; serde's 2.0 is a pre-release; the renamed serde_json counts.
    assert_eq!(found, [("serde", "1.0.100", "1.0.210"), ("serde_json", "1.0.120", "1.0.128")]);
    assert_eq!(r.findings.checks[0].status, Status::Warn);
    assert!(
        r.findings.checks[0].summary.starts_with("2 of 4 direct dependencies behind"),
        "{}",
        r.findings.checks[0].summary
    );
    let missing = r.findings.checks.iter().find(|c| c.name == "outdated missing-one").unwrap();
    assert_eq!(missing.status, Status::Unknown, "an index that cannot answer is never a pass");
    assert!(missing.summary.contains("HTTP 404"), "{}", missing.summary);

    // An unreachable index: every lookup is Unknown, and quickly.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = check_outdated(&OutdatedConfig { index_url: format!("http://127.0.0.1:{dead}"), ..cfg }, &ctx())
        .await
        .unwrap();
    assert_eq!(r.findings.checks.iter().filter(|c| c.status == Status::Unknown).count(), 4);
}

/// The flows' and `kyb-secaudit advisories`' task: the scan's checks, then the out-of-date
/// check's when a manifest is configured.
#[tokio::test]
async fn the_advisories_task_is_the_scan_then_the_out_of_date_check() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("advisory-db");
    advisory(
        &db,
        "smallvec",
        "RUSTSEC-2021-0003",
        "```toml\n[advisory]\nid = \"RUSTSEC-2021-0003\"\npackage = \"smallvec\"\n\n\
         [versions]\npatched = [\">= 1.6.1\"]\n```\n\n# Buffer overflow in SmallVec::insert_many\n",
    );
    let reg = "source = \"registry+https://github.com/rust-lang/crates.io-index\"";
    std::fs::write(
        d.join("Cargo.lock"),
        format!("[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\n{reg}\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("Cargo.toml"),
        "[package]\nname = \"platform\"\n\n[dependencies]\nsmallvec = \"1\"\n",
    )
    .unwrap();
    let port = fake_index(vec![(
        "sm/al/smallvec",
        "{\"name\":\"smallvec\",\"vers\":\"1.13.2\",\"yanked\":false}\n".to_owned(),
    )]);
    let scan = AdvisoryConfig { lockfile: d.join("Cargo.lock"), database: db, max_age_days: 7 };
    let outdated = OutdatedConfig {
        manifest: d.join("Cargo.toml"),
        lockfile: d.join("Cargo.lock"),
        index_url: format!("http://127.0.0.1:{port}/"),
        ca_bundle: "/nonexistent".into(),
        timeout_ms: 2_000,
    };
    let alone = scan_advisories(&scan, &ctx()).await.unwrap();
    let Ok(behind) = check_outdated(&outdated, &ctx()).await;
    let task = AdvisoriesTask { advisories: scan.clone(), outdated: Some(outdated) };
    let r = advisories(&task, &ctx()).await.unwrap();
    assert_eq!((&r.applicable, r.packages, r.advisories), (&alone.applicable, 1, 1));
    assert_eq!(r.outdated.as_deref(), Some(behind.outdated.as_slice()));
    let names: Vec<&str> = r.findings.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["smallvec 1.6.0", "database", "advisories", "outdated"]);
    assert_eq!(r.findings.checks[..3], alone.findings.checks[..]);
    assert_eq!(r.findings.checks[3], behind.findings.checks[0]);
    assert_eq!((r.findings.checks[2].status, r.findings.checks[3].status), (Status::Crit, Status::Warn));
    assert_eq!(r.findings.status(), Status::Crit);

    // Without a manifest: the scan alone.
    let r = advisories(&AdvisoriesTask { advisories: scan, outdated: None }, &ctx()).await.unwrap();
    assert_eq!((r.findings.checks, r.outdated), (alone.findings.checks, None));
}

#[tokio::test]
async fn special_files_and_path_like_names_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("advisory-db");
    advisory(&db, "smallvec", "RUSTSEC-2021-0003", "```toml\n[advisory]\nid = \"RUSTSEC-2021-0003\"\n```\n");
    // An advisory directory outside crates/ that a package named `../outside` would reach.
    advisory(&db, "../outside", "RUSTSEC-0000-0000", "```toml\nnot read\n```\n");
    let fifo = d.join("Cargo.lock");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let cfg = AdvisoryConfig { lockfile: fifo.clone(), database: db.clone(), max_age_days: 7 };
    // Nobody writes the FIFO: reading it would wait for ever.
    let r = scan_advisories(&cfg, &ctx()).await.unwrap();
    assert_eq!(r.findings.checks[0].status, Status::Unknown);
    assert!(
        r.findings.checks[0].summary.contains("it is a FIFO, not a regular file"),
        "{}",
        r.findings.checks[0].summary
    );
    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(
        &fifo,
        "version = 3\n\n[[package]]\nname = \"../outside\"\nversion = \"1.0.0\"\n\
         source = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
    )
    .unwrap();
    let r = scan_advisories(&cfg, &ctx()).await.unwrap();
    assert_eq!(r.advisories, 0, "nothing outside crates/ is read: {:#?}", r.findings.checks);
    assert!(
        r.findings.checks.iter().any(|c| c.summary.contains("is not a crate name")),
        "{:#?}",
        r.findings.checks
    );
}
