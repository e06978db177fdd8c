//! Readings of `/metrics` that used to come out wrong: snapshots of garbage or of oversized
//! scrapes, and performance figures read from the wrong label.

use kyb_core::Status;
use kyb_health::*;
use kyb_testkit::{FakeApp, HealthMode, MetricsMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a [`RawServer`] sends after its response head.
#[derive(Clone)]
enum Body {
    /// These bytes, then the connection is closed (no Content-Length: the close ends the body).
    Fixed(Vec<u8>),
    /// This chunk again and again until the client hangs up.
    Endless(&'static [u8]),
}

/// An HTTP/1.1 server on loopback written byte by byte, to send what no well-behaved server
/// would; stops when dropped.
struct RawServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_server(body: Body) -> RawServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let body = body.clone();
            tokio::spawn(async move {
                // Read the request head; its content does not matter.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response_head =
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\nconnection: close\r\n\r\n";
                if stream.write_all(response_head.as_bytes()).await.is_err() {
                    return;
                }
                match body {
                    Body::Fixed(bytes) => {
                        let _ = stream.write_all(&bytes).await;
                        let _ = stream.shutdown().await;
                    }
                    // Ends when the client goes away and the write fails.
                    Body::Endless(chunk) => while stream.write_all(chunk).await.is_ok() {},
                }
            });
        }
    });
    RawServer { url, task }
}

mod snapshot {
    use super::*;

    fn cfg(url: &str, dir: &std::path::Path, max_snapshot_bytes: u64) -> SnapshotConfig {
        SnapshotConfig {
            metrics_url: url.to_owned(),
            reports_dir: dir.join("reports"),
            // Generous: the machine may be busy with other tests.
            timeout_ms: 30_000,
            max_body_bytes: 64 * 1024 * 1024,
            max_snapshot_bytes,
            max_redirects: 5,
        }
    }

    fn at_now() -> kyb_core::RunCtx {
        kyb_core::RunCtx::new(time::macros::datetime!(2026-11-26 02:00:05 UTC))
    }

    /// The one check of a snapshot report.
    fn check(r: &SnapshotReport) -> &kyb_core::Check {
        let [c] = r.findings.checks.as_slice() else { panic!("not one check: {r:#?}") };
        c
    }

    const GARBAGE: &[u8] = b"<html>\x00\x01\xff\xfe {{{ not metrics }}} === \xe2\x98\x83 ###\n";

    #[tokio::test]
    async fn endless_garbage_is_crit_and_saves_nothing() {
        let server = raw_server(Body::Endless(GARBAGE)).await;
        let dir = tempfile::tempdir().unwrap();
        let r = snapshot_metrics(&cfg(&server.url, dir.path(), 8 * 1024 * 1024), &at_now()).await.unwrap();
        assert_eq!(check(&r).status, Status::Crit, "{:?}", check(&r));
        let summary = &check(&r).summary;
        assert!(
            summary.starts_with("not saved: no valid sample in the first 8.0 MiB")
                && summary.contains("max_snapshot_bytes")
                && summary.contains(&server.url),
            "{summary}"
        );
        assert!(summary.contains("malformed line(s)); first: line 1: "), "{summary}");
        assert!(summary.len() < 600, "a short line, however long the garbage: {summary}");
        assert!(r.path.is_none() && r.samples == 0);
        assert!(!dir.path().join("reports").exists(), "nothing written");
    }

    #[tokio::test]
    async fn a_short_body_without_samples_is_not_saved_either() {
        let server =
            raw_server(Body::Fixed(b"<html><body>Service Unavailable</body></html>\n".to_vec())).await;
        let dir = tempfile::tempdir().unwrap();
        let r = snapshot_metrics(&cfg(&server.url, dir.path(), 8 * 1024 * 1024), &at_now()).await.unwrap();
        assert_eq!(check(&r).status, Status::Crit, "{:?}", check(&r));
        assert!(
            check(&r).summary.starts_with("not saved: no valid sample in the 46 B it sent"),
            "{}",
            check(&r).summary
        );
        assert!(!dir.path().join("reports").exists());
    }

    #[tokio::test]
    async fn valid_metrics_larger_than_the_cap_are_saved_cut_at_a_line_end() {
        // 40 scrapes' worth of the fake app's series, each copy under its own instance label.
        let text: String = (0..40)
            .map(|i| {
                kyb_testkit::metrics_text(i)
                    .lines()
                    .map(|l| match l.split_once('{') {
                        Some((name, rest)) if !l.starts_with('#') => {
                            format!("{name}{{instance=\"{i}\",{rest}\n")
                        }
                        None if !l.starts_with('#') => {
                            let (name, value) = l.split_once(' ').unwrap();
                            format!("{name}{{instance=\"{i}\"}} {value}\n")
                        }
                        _ => String::new(),
                    })
                    .collect::<String>()
            })
            .collect();
        assert!(kyb_prom::parse_strict(&text).is_ok(), "valid to start with");
        let cap = 64 * 1024;
        assert!(text.len() > 4 * cap, "{}", text.len());
        let server = raw_server(Body::Fixed(text.into_bytes())).await;
        let dir = tempfile::tempdir().unwrap();
        let r = snapshot_metrics(&cfg(&server.url, dir.path(), cap as u64), &at_now()).await.unwrap();
        assert_eq!(check(&r).status, Status::Warn, "{:?}", check(&r));
        assert!(
            check(&r)
                .summary
                .contains("1 problem(s): larger than the 64.0 KiB cap ([app] max_snapshot_bytes)"),
            "{}",
            check(&r).summary
        );
        let saved = std::fs::read_to_string(r.path.unwrap()).unwrap();
        assert!(saved.len() <= cap, "{}", saved.len());
        let (kept, marker) = saved.trim_end_matches('\n').rsplit_once('\n').unwrap();
        assert!(marker.starts_with(SNAPSHOT_CUT_MARKER), "{marker}");
        let parsed = kyb_prom::parse_strict(&saved).expect("every line kept is whole");
        assert_eq!(parsed.samples.len(), r.samples);
        assert_eq!(kept.lines().count(), r.samples);
        assert!(r.samples > 100, "{}", r.samples);
    }

    #[tokio::test]
    async fn a_scrape_within_the_cap_is_saved_whole() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        let dir = tempfile::tempdir().unwrap();
        let r = snapshot_metrics(&cfg(&app.url("/metrics"), dir.path(), 8 * 1024 * 1024), &at_now())
            .await
            .unwrap();
        assert_eq!(check(&r).status, Status::Ok, "{:?}", check(&r));
        let saved = std::fs::read_to_string(r.path.unwrap()).unwrap();
        assert_eq!(saved, kyb_testkit::metrics_text(0));
    }
}

mod performance {
    use super::*;

    async fn scraped(url: String) -> kyb_prom::Exposition {
        let sc = ScrapeConfig { url, timeout_ms: 10_000, max_body_bytes: 1 << 22, max_redirects: 3 };
        scrape(&sc).await.unwrap().exposition
    }

    fn check<'a>(r: &'a PerfReport, name: &str) -> &'a kyb_core::Check {
        r.findings
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} in {:#?}", r.findings.checks))
    }

    #[tokio::test]
    async fn an_app_labelled_by_path_is_read_by_path_with_a_warn() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        app.set_metrics(MetricsMode::PathLabel);
        let r = analyze_performance(&PerfConfig::default(), &scraped(app.url("/metrics")).await, None);
        let label = check(&r, "endpoint label");
        assert_eq!(label.status, Status::Warn);
        assert!(
            label.summary.contains("no `endpoint` label")
                && label.summary.contains("set [performance] endpoint_label = \"path\""),
            "{}",
            label.summary
        );
        assert_eq!(r.endpoint_label.as_deref(), Some("path"));
        assert_eq!(r.endpoints.len(), 6, "{:#?}", r.endpoints);
        let verify = check(&r, "endpoint /api/v1/verify");
        // The JSON carries the mean beside the quantiles.
        let json = serde_json::to_value(verify).unwrap();
        let labels: Vec<&str> =
            json["metrics"].as_array().unwrap().iter().map(|m| m["label"].as_str().unwrap()).collect();
        for want in ["p95 /api/v1/verify", "mean /api/v1/verify", "p50 /api/v1/verify", "p99 /api/v1/verify"]
        {
            assert!(labels.contains(&want), "{want} in {labels:?}");
        }
        let mean = verify.metrics.iter().find(|m| m.label == "mean /api/v1/verify").unwrap();
        let e = r.endpoints.iter().find(|e| e.endpoint == "/api/v1/verify").unwrap();
        assert!((mean.value - e.avg_s).abs() < 1e-6 && e.avg_s > 0.0, "{mean:?} {e:?}");
        // The status label is the configured one: no row about it.
        assert!(r.findings.checks.iter().all(|c| c.name != "status label"));
    }

    #[tokio::test]
    async fn the_configured_label_gives_no_warning() {
        let app = FakeApp::start(HealthMode::Healthy).await;
        let r = analyze_performance(&PerfConfig::default(), &scraped(app.url("/metrics")).await, None);
        assert!(r.findings.checks.iter().all(|c| !c.name.ends_with(" label")), "{:#?}", r.findings.checks);
        assert_eq!(r.endpoints.len(), 6);
    }

    const UNLABELLED: &str = "\
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method=\"GET\",le=\"0.1\"} 90
http_request_duration_seconds_bucket{method=\"GET\",le=\"+Inf\"} 100
http_request_duration_seconds_sum{method=\"GET\"} 8
http_request_duration_seconds_count{method=\"GET\"} 100
# TYPE http_requests_total counter
http_requests_total{method=\"GET\",code=\"200\"} 95
http_requests_total{method=\"GET\",code=\"503\"} 5
";

    fn cfg() -> PerfConfig {
        let mut cfg = PerfConfig::default();
        cfg.requests_metric = "http_requests_total".into();
        cfg.duration_metric = "http_request_duration_seconds".into();
        cfg
    }

    #[tokio::test]
    async fn without_any_endpoint_label_it_says_so_and_lists_no_nameless_endpoint() {
        let server = raw_server(Body::Fixed(UNLABELLED.as_bytes().to_vec())).await;
        let r = analyze_performance(&cfg(), &scraped(server.url.clone()).await, None);
        let label = check(&r, "endpoint label");
        assert_eq!(label.status, Status::Warn);
        assert!(
            label.summary.contains("no `endpoint` label, nor a common one")
                && label.summary.contains("its labels: method"),
            "{}",
            label.summary
        );
        assert!(r.endpoints.is_empty() && r.endpoint_label.is_none());
        assert!(
            r.findings.checks.iter().all(|c| !c.name.starts_with("endpoint ") || c.name == "endpoint label")
        );
        // The totals do not need the label.
        assert_eq!(check(&r, "response time").status, Status::Ok);
        // The status codes are under `code`: read from there, with a Warn; 5% answered 5xx.
        let status = check(&r, "status label");
        assert_eq!(status.status, Status::Warn);
        assert!(status.summary.contains("status_label = \"code\""), "{}", status.summary);
        let errors = check(&r, "error rate");
        assert_eq!(errors.status, Status::Crit, "{}", errors.summary);
        assert!(errors.summary.starts_with("5.00% answered 5xx"), "{}", errors.summary);
    }

    #[tokio::test]
    async fn without_any_status_label_the_error_rate_is_unknown_not_zero() {
        let text = UNLABELLED.replace(",code=\"200\"", "").replace(",code=\"503\"", ",outcome=\"x\"");
        let server = raw_server(Body::Fixed(text.into_bytes())).await;
        let r = analyze_performance(&cfg(), &scraped(server.url.clone()).await, None);
        let errors = check(&r, "error rate");
        assert_eq!(errors.status, Status::Unknown);
        assert!(
            errors.summary.contains("no `status` label")
                && errors.summary.contains("its labels: method, outcome"),
            "{}",
            errors.summary
        );
    }
}
