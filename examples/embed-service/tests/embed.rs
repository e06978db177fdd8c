//! The embedding service against the private stack: its `[maint.*]` tables read into the crates'
//! section types, real probes of PostgreSQL and Redis, a real backup verified.

use embed_service::Maint;
use kyb_backup::BackupSection;
use kyb_testkit::{TestDb, fresh_database, redis};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The config text for `db`, Redis on `redis_port`, backups under `backup_dir`.
fn config(db: &TestDb, redis_port: u16, redis_password: Option<&str>, backup_dir: &Path) -> String {
    let pg_password = db.password.as_deref().map(|p| format!("password = {p:?}\n")).unwrap_or_default();
    let redis_password = redis_password.map(|p| format!("password = {p:?}\n")).unwrap_or_default();
    format!(
        "listen = \"127.0.0.1:0\"\n\n[maint]\nbackup_dir = {backup_dir:?}\n\n\
         [maint.health.postgres]\nhost = {host:?}\nport = {port}\nuser = {user:?}\ndbname = {dbname:?}\n{pg_password}\n\
         [maint.health.redis]\nhost = \"127.0.0.1\"\nport = {redis_port}\n{redis_password}\n\
         [maint.backup]\nmax_age_hours = 1\n",
        host = db.host,
        port = db.port,
        user = db.user,
        dbname = db.dbname,
    )
}

/// Starts the service on a free loopback port; its base URL's address.
async fn start(text: &str, dir: &Path) -> std::net::SocketAddr {
    let (_, maint) = Maint::load(text, &dir.join("service.toml")).unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(embed_service::serve(listener, Arc::new(maint)));
    addr
}

/// `GET path`: the status code and the JSON body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {raw:?}"));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    (code, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

/// The status of the check named `name` in a report's `checks`.
fn status_of<'a>(report: &'a serde_json::Value, name: &str) -> &'a str {
    let checks = report["checks"].as_array().unwrap_or_else(|| panic!("no checks: {report}"));
    let check =
        checks.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name} check: {report}"));
    check["status"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn it_serves_the_health_report_and_the_latest_backups_verification() {
    let db = fresh_database("embedservice").await;
    db.connect()
        .await
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 500);",
        )
        .await
        .unwrap();
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let text = config(&db, r.port, r.password.as_deref(), &backups);
    let addr = start(&text, dir.path()).await;

    let (code, health) = get(addr, "/maint/health").await;
    assert_eq!(code, 200, "{health}");
    assert_eq!((status_of(&health, "postgres"), status_of(&health, "redis")), ("ok", "ok"), "{health}");

    // No backup yet: the latest one is missing, and the endpoint says so with a 503.
    let (code, none) = get(addr, "/maint/backup").await;
    assert_eq!((code, status_of(&none, "backup")), (503, "crit"), "{none}");

    // A backup made with the same section's settings is then found and proven whole.
    let section: BackupSection = toml::from_str("max_age_hours = 1").unwrap();
    let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc());
    let made = kyb_backup::create(&section.create(&backups, db.pg_target()), &ctx).await.unwrap();
    let (code, verified) = get(addr, "/maint/backup").await;
    assert_eq!(code, 200, "{verified}");
    for check in ["backup", "age", "metadata", "size", "checksum", "archive"] {
        assert_eq!(status_of(&verified, check), "ok", "{check}: {verified}");
    }
    assert_eq!(verified["backup"], made.dir.display().to_string());
    assert_eq!(verified["metadata"]["database"], db.dbname);

    // A damaged file is Crit, and the status code says so without the body being read.
    let written = made.metadata.as_ref().expect("the metadata of the backup made");
    let file = made.dir.join(written.backup_file.as_str());
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let (code, damaged) = get(addr, "/maint/backup").await;
    assert_eq!((code, status_of(&damaged, "checksum")), (503, "crit"), "{damaged}");

    let (code, other) = get(addr, "/elsewhere").await;
    assert_eq!(code, 404, "{other}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_dependency_is_judged_on_its_own() {
    let db = fresh_database("embeddown").await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: Redis is down, PostgreSQL is not.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = start(&config(&db, dead, None, &dir.path().join("b")), dir.path()).await;
    let (code, health) = get(addr, "/maint/health").await;
    assert_eq!(code, 503, "{health}");
    assert_eq!((status_of(&health, "postgres"), status_of(&health, "redis")), ("ok", "crit"), "{health}");
}

#[test]
fn a_bad_maint_table_is_refused_with_its_key() {
    let path = Path::new("/etc/service/service.toml");
    let err = |text: &str| Maint::load(text, path).unwrap_err().to_string();
    let base = "listen = \"127.0.0.1:8090\"\n";
    let e = err(&format!("{base}[maint.backup]\nkeep_min = 0\n"));
    assert!(e.contains("/etc/service/service.toml") && e.contains("maint.backup.keep_min"), "{e}");
    let e = err(&format!("{base}[maint.health.postgres]\nuser = \"kyb\"\ndbname = \"kyb\"\nhots = \"db\"\n"));
    assert!(e.contains("unknown field `hots`"), "{e}");
    let e = err(&format!(
        "{base}[maint.health.postgres]\nuser = \"kyb\"\ndbname = \"kyb\"\npassword_env = \"KYB_EMBED_TEST_UNSET\"\n"
    ));
    assert!(e.contains("maint.health.postgres.password_env") && e.contains("KYB_EMBED_TEST_UNSET"), "{e}");
    let e = err(&format!("{base}[maint.backup]\ntimeout_ms = 0\n"));
    assert!(e.contains("between 1 and"), "{e}");
    // Every section may be left out: nothing is probed, no backup is looked for.
    let (listen, _) = Maint::load(base, path).unwrap();
    assert_eq!(listen.port(), 8090);
}
