//! The sandbox: private stack + sandbox app + a config file pointing at them.

use anyhow::{Context, Result};
use kyb_testkit::{Stack, sandbox_dir};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Brings everything up (or reuses it) and returns the sandbox config path.
pub fn up() -> Result<PathBuf> {
    crate::prereqs::ensure(&crate::prereqs::Host::this(), false)?;
    let stack = Stack::ensure().context("cannot start the private PostgreSQL/Redis stack")?;
    sandbox_bins()?;
    let dir = sandbox_dir();
    let root = dir.join("root");
    for sub in ["log", "backups", "maintenance", "tmp"] {
        std::fs::create_dir_all(root.join(sub))
            .with_context(|| format!("cannot create {}", root.join(sub).display()))?;
    }
    sample_configs(&root)?;
    seed_database(&stack)?;
    let app_bin = target_dir().join("debug/kyb-fake-app");
    let addr = stack
        .ensure_app(&app_bin, Some(&root.join("log/app.log")))
        .context("cannot start the sandbox app")?;
    write_private(&dir.join("password"), &format!("{}\n", stack.password))?;
    // The sandbox's logs belong to whoever runs it, not to a `kyb` user this machine may lack.
    let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    let text = SANDBOX_CONFIG
        .replace("{addr}", &addr.to_string())
        .replace("{pg_port}", &stack.pg_port.to_string())
        .replace("{pg_user}", &stack.pg_user)
        .replace("{redis_port}", &stack.redis_port.to_string())
        .replace("{uid}", &uid.to_string())
        .replace("{gid}", &gid.to_string());
    let config = dir.join("kyb-maint.toml");
    write_private(&config, &text)?;
    nightly_backup(&config)?;
    Ok(config)
}

/// The platform takes a database backup every night; the sandbox makes today's if it has none,
/// so that the daily flow's backup check finds what it would find in production.
fn nightly_backup(config: &Path) -> Result<()> {
    let cfg = kyb_flows::config::load(config).context("the sandbox config does not load")?;
    let Some(backup) = cfg.backup else { return Ok(()) };
    let now = time::OffsetDateTime::now_utc();
    let today = format!("backup_{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day());
    let full = backup.verify.backup_dir.join("full");
    let have = std::fs::read_dir(&full).into_iter().flatten().flatten().any(|e| {
        e.file_name().to_string_lossy().starts_with(&today) && e.path().join("backup_metadata.json").exists()
    });
    if have {
        return Ok(());
    }
    let create = backup.create.context("the sandbox config has [paths] backup_dir but no [postgres]")?;
    let rt = tokio::runtime::Runtime::new()?;
    let made = rt
        .block_on(kyb_backup::create(&create, &kyb_core::RunCtx::new(now)))
        .context("cannot make the sandbox's nightly backup")?;
    eprintln!("sandbox: made today's backup in {}", made.dir.display());
    Ok(())
}

/// The platform's database holds companies, their owners and their checks; the sandbox gets a
/// small one of the same shape, once, so that backups and drills have something to prove.
fn seed_database(stack: &Stack) -> Result<()> {
    stack
        .psql(
            "kyb",
            "DO $$ BEGIN
               IF to_regclass('public.companies') IS NULL THEN
                 CREATE TABLE companies (id bigint PRIMARY KEY, name text NOT NULL, country text, meta jsonb);
                 CREATE TABLE owners (id bigint PRIMARY KEY, company_id bigint REFERENCES companies(id), name text);
                 CREATE TABLE checks (id bigserial PRIMARY KEY, company_id bigint, status text,
                                      checked_at timestamptz DEFAULT now());
                 CREATE INDEX owners_company ON owners (company_id);
                 INSERT INTO companies SELECT g, 'Company ' || g, (ARRAY['DE','FR','NL','US'])[1 + g % 4],
                   jsonb_build_object('employees', g % 500) FROM generate_series(1, 5000) g;
                 INSERT INTO owners SELECT g, 1 + g % 5000, 'Owner ' || g FROM generate_series(1, 8000) g;
                 INSERT INTO checks (company_id, status) SELECT 1 + g % 5000,
                   (ARRAY['ok','review','rejected'])[1 + g % 3] FROM generate_series(1, 10000) g;
               END IF;
             END $$",
        )
        .context("cannot seed the sandbox database")?;
    Ok(())
}

/// What the monthly archive packs in the sandbox: stand-ins for the platform's configuration
/// directories, written once.
fn sample_configs(root: &Path) -> Result<()> {
    let files = [
        ("etc/kyb-platform/configs/app.toml", "listen = \"0.0.0.0:8080\"\nlog_level = \"info\"\n"),
        (
            "etc/prometheus/prometheus.yml",
            "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: kyb\n",
        ),
        ("etc/alertmanager/alertmanager.yml", "route:\n  receiver: ops\nreceivers:\n  - name: ops\n"),
        ("etc/ssl/kyb-platform/README", "The platform's certificate and key live here.\n"),
    ];
    for (path, text) in files {
        let path = root.join(path);
        if path.exists() {
            continue;
        }
        let parent = path.parent().expect("has a parent");
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The sandbox config; relative paths are relative to the sandbox directory.
const SANDBOX_CONFIG: &str = r#"# Sandbox config written by `cargo xtask sandbox up`; rewritten on every run.
[paths]
maintenance_dir = "root/maintenance"
log_dir = "root/log"
backup_dir = "root/backups"
temp_dir = "root/tmp"

[app]
base_url = "http://{addr}"
timeout_ms = 5000

[postgres]
host = "127.0.0.1"
port = {pg_port}
user = "{pg_user}"
dbname = "kyb"
password_file = "password"
timeout_ms = 5000

[redis]
host = "127.0.0.1"
port = {redis_port}
password_file = "password"
timeout_ms = 5000

# The sandbox app's request log: rotated daily (or past 10 MB); the app reopens it on SIGHUP.
[[logs]]
path = "app.log"
size_bytes = 10485760
every = "daily"
keep_days = 30
owner = "{uid}"
group = "{gid}"
mode = "0640"
pid_file = "app/app.pid"
reopen_signal = "HUP"

[cleanup]
temp_prefix = "kyb-"
temp_max_age_days = 1
reports_max_age_days = 30

# Nightly database backups: keep a week, never fewer than 3 good ones.
[backup]
format = "custom"
keep_min = 3
keep_last = 7
max_age_days = 30

# The monthly archive of configuration directories.
[[backup.archive]]
name = "application-config"
paths = ["root/etc/kyb-platform/configs"]

[[backup.archive]]
name = "monitoring-config"
paths = ["root/etc/prometheus", "root/etc/alertmanager"]

[[backup.archive]]
name = "ssl-certificates"
paths = ["root/etc/ssl/kyb-platform"]
"#;

/// Owner-only, and atomic: a concurrent `maint` run reads the old file or the new one, never a
/// half-written one.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    kyb_core::fs::atomic_write(path, text.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn down() -> Result<()> {
    Stack::down().context("cannot stop the sandbox")?;
    eprintln!("sandbox stopped (data kept under {})", sandbox_dir().display());
    Ok(())
}

pub fn status() -> Result<ExitCode> {
    let Some((stack, status)) = Stack::status() else {
        println!("sandbox: not set up (run `cargo xtask sandbox up`)");
        return Ok(ExitCode::from(1));
    };
    let word = |up: bool| if up { "up" } else { "down" };
    println!("sandbox:    {}", stack.dir.display());
    println!("config:     {}", stack.dir.join("kyb-maint.toml").display());
    println!("postgres:   {} (127.0.0.1:{})", word(status.postgres), stack.pg_port);
    println!("redis:      {} (127.0.0.1:{})", word(status.redis), stack.redis_port);
    match status.app {
        Some(addr) => println!("app:        up (http://{addr})"),
        None => println!("app:        down"),
    }
    let all = status.postgres && status.redis && status.app.is_some();
    Ok(if all { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Builds the sandbox app and kyb-maint in one cargo call (one lock wait, one fingerprint pass).
fn sandbox_bins() -> Result<()> {
    build(&["kyb-fake-app", "kyb-maint"])
}

/// Builds the named binaries of the workspace (debug profile).
pub fn build(bins: &[&str]) -> Result<()> {
    let mut cmd = crate::cargo();
    cmd.args(["build", "--quiet"]);
    for b in bins {
        cmd.args(["--bin", b]);
    }
    let status = cmd.status().context("cannot run cargo build")?;
    anyhow::ensure!(status.success(), "building {} failed", bins.join(", "));
    Ok(())
}

pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => kyb_testkit::workspace_root().join(t),
        None => kyb_testkit::workspace_root().join("target"),
    }
}
