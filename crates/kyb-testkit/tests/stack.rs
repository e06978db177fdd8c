//! The private stack and the fake app, exercised for real.

use kyb_testkit::{FakeApp, HealthMode, fresh_database, redis};
use std::io::{Read, Write};

#[tokio::test]
async fn fresh_databases_are_distinct_and_have_pg_stat_statements() {
    let a = fresh_database("alpha").await;
    let b = fresh_database("beta").await;
    assert_ne!(a.dbname, b.dbname);
    let client = a.connect().await;
    let row = client.query_one("SELECT current_database()", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), a.dbname);
    let ext = client
        .query_one("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'", &[])
        .await
        .unwrap();
    if std::env::var_os("KYB_TEST_DATABASE_URL").is_none() {
        assert_eq!(ext.get::<_, i64>(0), 1, "the private cluster creates pg_stat_statements");
        let preload = client.query_one("SHOW shared_preload_libraries", &[]).await.unwrap();
        assert!(preload.get::<_, String>(0).contains("pg_stat_statements"));
        let calls = client.query_one("SELECT count(*) FROM pg_stat_statements", &[]).await.unwrap();
        assert!(calls.get::<_, i64>(0) > 0, "statements are being tracked");
    }
}

#[test]
fn redis_answers_with_its_password() {
    let r = redis();
    let mut s = std::net::TcpStream::connect((r.host.as_str(), r.port)).unwrap();
    let pw = r.password.unwrap_or_default();
    write!(s, "*2\r\n$4\r\nAUTH\r\n${}\r\n{}\r\n*1\r\n$4\r\nPING\r\n", pw.len(), pw).unwrap();
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("+PONG") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "redis closed the connection: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

async fn get(url: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let path = format!("/{}", url.trim_start_matches("http://").split_once('/').unwrap().1);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let code = text[9..12].parse().unwrap();
    (code, text)
}

#[tokio::test]
async fn fake_app_modes() {
    let app = FakeApp::start(HealthMode::Healthy).await;
    let (code, body) = get(&app.url("/health")).await;
    assert_eq!(code, 200);
    assert!(body.contains("\"healthy\""));
    app.set_health(HealthMode::ServerError);
    assert_eq!(get(&app.url("/health")).await.0, 500);
    app.set_health(HealthMode::RedirectLoop);
    let (code, text) = get(&app.url("/health")).await;
    assert_eq!(code, 302);
    assert!(text.to_lowercase().contains("location: /health"));
    let (code, metrics) = get(&app.url("/metrics")).await;
    assert_eq!(code, 200);
    assert!(metrics.contains("kyb_ml_model_accuracy{model=\"bert\"}"));
    assert!(metrics.contains("kyb_http_request_duration_seconds_bucket{"));
}
