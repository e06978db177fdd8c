//! A fake platform app: `/health` in the modes tests need and realistic `/metrics`.

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How `/health` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthMode {
    /// 200 with `{"status":"healthy",...}`.
    Healthy,
    /// 200 with `{"status":"unhealthy",...}`: only the body tells.
    Unhealthy,
    /// 500 with an error body.
    ServerError,
    /// Healthy, after a delay.
    Slow(Duration),
    /// Accepts the request and never answers.
    Hang,
    /// 200 with a body that is not JSON.
    NotJson,
    /// 200 with a body of this many bytes.
    HugeBody {
        /// Body size.
        size_bytes: u64,
    },
    /// 302 back to itself, forever.
    RedirectLoop,
}

/// How a fake monitoring server (see [`FakeApp::start_monitoring`]) answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorMode {
    /// Healthy and ready, with a TSDB of 1.5 GiB in blocks and a 15-day retention.
    Healthy,
    /// 503 on every health endpoint.
    Unavailable,
    /// Accepts requests and never answers.
    Hang,
}

/// How `/metrics` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    /// Well-formed text exposition with the platform's `kyb_*` series.
    Realistic,
    /// The same with some malformed lines mixed in.
    Malformed,
    /// The same, with bert's accuracy at this many thousandths instead of 912.
    BertAccuracy(u32),
    /// The same without any series for the `distilbert` model.
    WithoutDistilbert,
    /// The same with bert exported per `version`: `1` at 0.912 and `2` at 0.710, which add up
    /// to 1.622.
    ModelVersions,
    /// The same with bert's accuracy NaN (no validation results yet).
    BertAccuracyNan,
    /// The same plus a tokio runtime section: worker and task gauges per worker, and a summary of
    /// task poll durations (quantiles 0.12, 0.52 and 1 s, which add up to 1.64).
    TokioRuntime,
    /// The same with the HTTP series labelled `path` instead of `endpoint`.
    PathLabel,
    /// 500 with an error body.
    ServerError,
}

#[derive(Debug)]
struct State {
    /// Some: this server plays Prometheus, Grafana and Alertmanager instead of the app.
    monitoring: Mutex<Option<MonitorMode>>,
    health: Mutex<HealthMode>,
    metrics: Mutex<MetricsMode>,
    scrapes: AtomicU64,
    access_log: Mutex<Option<AccessLog>>,
}

/// The app's own log, one JSON line per request, reopened on demand like a real service's.
#[derive(Debug)]
struct AccessLog {
    path: PathBuf,
    file: std::fs::File,
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().append(true).create(true).open(path)
}

/// A running fake app on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct FakeApp {
    addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeApp {
    /// Starts the app on an ephemeral port with `/health` in `mode`.
    pub async fn start(mode: HealthMode) -> FakeApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        FakeApp::serve(listener, mode)
    }

    /// Serves on `listener` (used by the sandbox binary to pick its address).
    pub fn serve(listener: TcpListener, mode: HealthMode) -> FakeApp {
        FakeApp::serve_as(listener, mode, None)
    }

    /// Starts a server that answers as Prometheus (`/-/healthy`, `/-/ready`,
    /// `/api/v1/status/runtimeinfo`, its own `/metrics`), Grafana (`/api/health`) and
    /// Alertmanager (`/-/healthy`, `/-/ready`) do, in `mode`. A request to `/_fake/start` makes it
    /// healthy, as starting the service would.
    pub async fn start_monitoring(mode: MonitorMode) -> FakeApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        FakeApp::serve_as(listener, HealthMode::Healthy, Some(mode))
    }

    /// Changes how the monitoring endpoints answer from now on.
    pub fn set_monitoring(&self, mode: MonitorMode) {
        *self.state.monitoring.lock().expect("monitoring mode lock") = Some(mode);
    }

    fn serve_as(listener: TcpListener, mode: HealthMode, monitoring: Option<MonitorMode>) -> FakeApp {
        let addr = listener.local_addr().expect("listener address");
        let state = Arc::new(State {
            monitoring: Mutex::new(monitoring),
            health: Mutex::new(mode),
            metrics: Mutex::new(MetricsMode::Realistic),
            scrapes: AtomicU64::new(0),
            access_log: Mutex::new(None),
        });
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        FakeApp { addr, state, server }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Changes how `/health` answers from now on.
    pub fn set_health(&self, mode: HealthMode) {
        *self.state.health.lock().expect("health mode lock") = mode;
    }

    /// Appends a JSON line per request to `path` from now on.
    pub fn log_requests_to(&self, path: &Path) -> std::io::Result<()> {
        let file = open_log(path)?;
        *self.state.access_log.lock().expect("access log lock") =
            Some(AccessLog { path: path.to_owned(), file });
        Ok(())
    }

    /// Reopens the request log by its path, as a service does on SIGHUP after rotation.
    pub fn reopen_log(&self) -> std::io::Result<()> {
        let mut guard = self.state.access_log.lock().expect("access log lock");
        if let Some(log) = guard.as_mut() {
            log.file = open_log(&log.path)?;
        }
        Ok(())
    }

    /// Changes how `/metrics` answers from now on.
    pub fn set_metrics(&self, mode: MetricsMode) {
        *self.state.metrics.lock().expect("metrics mode lock") = mode;
    }
}

impl Drop for FakeApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    // Connections live in this set so that aborting the server also drops hung requests.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(req, Arc::clone(&state)));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<AppBody>, Infallible> {
    let monitoring = *state.monitoring.lock().expect("monitoring mode lock");
    if let Some(mode) = monitoring {
        // What `systemctl start` would do to the real thing, for a test's stand-in systemctl.
        if req.uri().path() == "/_fake/start" {
            *state.monitoring.lock().expect("monitoring mode lock") = Some(MonitorMode::Healthy);
            return Ok(reply(StatusCode::OK, "text/plain", "started\n".to_owned()));
        }
        return Ok(monitor(mode, req.uri().path()).await);
    }
    let response = match req.uri().path() {
        "/health" => {
            let mode = state.health.lock().expect("health mode lock").clone();
            health(mode).await
        }
        "/metrics" => {
            let n = state.scrapes.fetch_add(1, Ordering::Relaxed);
            let mode = *state.metrics.lock().expect("metrics mode lock");
            let mut text = metrics_text(n);
            match mode {
                MetricsMode::Realistic => {}
                MetricsMode::Malformed => {
                    text.push_str("kyb_broken_metric{endpoint=\"/x\" 12\n");
                    text.push_str("this line is not a sample\n");
                    text.push_str("kyb_no_value{model=\"bert\"}\n");
                }
                MetricsMode::BertAccuracy(permille) => {
                    let line =
                        format!("kyb_ml_model_accuracy{{model=\"bert\"}} {}\n", f64::from(permille) / 1000.0);
                    text = text.replace("kyb_ml_model_accuracy{model=\"bert\"} 0.912\n", &line);
                }
                MetricsMode::WithoutDistilbert => {
                    text = text
                        .lines()
                        .filter(|l| !l.contains("\"distilbert\""))
                        .map(|l| format!("{l}\n"))
                        .collect();
                }
                MetricsMode::ServerError => {
                    text = "internal error: metrics registry unavailable\n".to_owned();
                }
                MetricsMode::ModelVersions => {
                    text = text.replace(
                        "kyb_ml_model_accuracy{model=\"bert\"} 0.912\n",
                        "kyb_ml_model_accuracy{model=\"bert\",version=\"1\"} 0.912\n\
                         kyb_ml_model_accuracy{model=\"bert\",version=\"2\"} 0.71\n",
                    );
                }
                MetricsMode::BertAccuracyNan => {
                    text = text.replace(
                        "kyb_ml_model_accuracy{model=\"bert\"} 0.912\n",
                        "kyb_ml_model_accuracy{model=\"bert\"} NaN\n",
                    );
                }
                MetricsMode::TokioRuntime => text.push_str(TOKIO_RUNTIME),
                MetricsMode::PathLabel => {
                    text = text
                        .lines()
                        .map(|l| match l.strip_prefix("kyb_http_") {
                            Some(_) => format!("{}\n", l.replacen("{endpoint=", "{path=", 1)),
                            None => format!("{l}\n"),
                        })
                        .collect();
                }
            }
            let status = if mode == MetricsMode::ServerError {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            reply(status, "text/plain; version=0.0.4", text)
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
    };
    if let Some(log) = state.access_log.lock().expect("access log lock").as_mut() {
        let line = format!(
            "{{\"ts\":{},\"method\":\"{}\",\"path\":{:?},\"status\":{}}}\n",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()),
            req.method(),
            req.uri().path(),
            response.status().as_u16()
        );
        // One write per line, O_APPEND: lines never interleave or tear.
        let _ = log.file.write_all(line.as_bytes());
    }
    Ok(response)
}

async fn monitor(mode: MonitorMode, path: &str) -> Response<AppBody> {
    const JSON: &str = "application/json";
    match (mode, path) {
        (MonitorMode::Hang, _) => std::future::pending().await,
        (MonitorMode::Unavailable, "/-/healthy" | "/-/ready" | "/api/health") => {
            reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "Service Unavailable\n".to_owned())
        }
        (_, "/-/healthy") => reply(StatusCode::OK, "text/plain", "Prometheus Server is Healthy.\n".to_owned()),
        (_, "/-/ready") => reply(StatusCode::OK, "text/plain", "Prometheus Server is Ready.\n".to_owned()),
        (_, "/api/health") => {
            reply(StatusCode::OK, JSON, r#"{"commit":"abc123","database":"ok","version":"10.4.2"}"#.to_owned())
        }
        (_, "/api/v1/status/runtimeinfo") => reply(
            StatusCode::OK,
            JSON,
            r#"{"status":"success","data":{"startTime":"2026-11-01T00:00:00Z","storageRetention":"15d","goroutineCount":40}}"#
                .to_owned(),
        ),
        (_, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            "# TYPE prometheus_tsdb_storage_blocks_bytes gauge\n\
             prometheus_tsdb_storage_blocks_bytes 1.610612736e+09\n\
             # TYPE prometheus_tsdb_wal_storage_size_bytes gauge\n\
             prometheus_tsdb_wal_storage_size_bytes 2.097152e+08\n\
             # TYPE prometheus_tsdb_head_series gauge\n\
             prometheus_tsdb_head_series 48213\n"
                .to_owned(),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
    }
}

async fn health(mode: HealthMode) -> Response<AppBody> {
    const JSON: &str = "application/json";
    match mode {
        HealthMode::Healthy => reply(StatusCode::OK, JSON, healthy_body()),
        HealthMode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            reply(StatusCode::OK, JSON, healthy_body())
        }
        HealthMode::Unhealthy => reply(
            StatusCode::OK,
            JSON,
            r#"{"status":"unhealthy","checks":{"database":"failing: connection refused","redis":"ok"}}"#
                .to_owned(),
        ),
        HealthMode::ServerError => {
            reply(StatusCode::INTERNAL_SERVER_ERROR, JSON, r#"{"error":"internal server error"}"#.to_owned())
        }
        HealthMode::Hang => std::future::pending().await,
        HealthMode::NotJson => reply(StatusCode::OK, "text/html", "<html><body>OK</body></html>".to_owned()),
        HealthMode::HugeBody { size_bytes } => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, JSON)
            .header(header::CONTENT_LENGTH, size_bytes)
            .body(AppBody::Repeat { remaining: size_bytes })
            .expect("valid response"),
        HealthMode::RedirectLoop => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "/health")
            .body(AppBody::Full(None))
            .expect("valid response"),
    }
}

fn healthy_body() -> String {
    r#"{"status":"healthy","version":"1.8.3","checks":{"database":"ok","redis":"ok","models":"ok"}}"#
        .to_owned()
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<AppBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(AppBody::Full(Some(Bytes::from(body))))
        .expect("valid response")
}

/// A response body: a whole buffer, or `remaining` bytes of filler streamed in chunks.
#[derive(Debug)]
enum AppBody {
    Full(Option<Bytes>),
    Repeat { remaining: u64 },
}

static FILLER: [u8; 64 * 1024] = [b' '; 64 * 1024];

impl Body for AppBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.get_mut() {
            AppBody::Full(data) => data.take().map(Frame::data),
            AppBody::Repeat { remaining } if *remaining == 0 => None,
            AppBody::Repeat { remaining } => {
                let n = (*remaining).min(FILLER.len() as u64);
                *remaining -= n;
                Some(Frame::data(Bytes::from_static(&FILLER[..n as usize])))
            }
        };
        Poll::Ready(frame.map(Ok))
    }
}

/// What a service built on tokio with a runtime-metrics exporter adds to its `/metrics`.
const TOKIO_RUNTIME: &str = "\
# HELP tokio_workers_count Worker threads of the runtime.
# TYPE tokio_workers_count gauge
tokio_workers_count 4
# HELP tokio_worker_local_queue_depth Tasks queued on each worker.
# TYPE tokio_worker_local_queue_depth gauge
tokio_worker_local_queue_depth{worker=\"0\"} 3
tokio_worker_local_queue_depth{worker=\"1\"} 7
# HELP tokio_worker_polls_total Tasks polled by each worker.
# TYPE tokio_worker_polls_total counter
tokio_worker_polls_total{worker=\"0\"} 120000
tokio_worker_polls_total{worker=\"1\"} 80000
# HELP tokio_task_poll_duration_seconds Time a task poll takes.
# TYPE tokio_task_poll_duration_seconds summary
tokio_task_poll_duration_seconds{quantile=\"0.5\"} 0.12
tokio_task_poll_duration_seconds{quantile=\"0.9\"} 0.52
tokio_task_poll_duration_seconds{quantile=\"0.99\"} 1
tokio_task_poll_duration_seconds_sum 25000
tokio_task_poll_duration_seconds_count 200000
";

const ENDPOINTS: [(&str, &str, u64); 6] = [
    ("/api/v1/verify", "POST", 9),
    ("/api/v1/companies/{id}", "GET", 14),
    ("/api/v1/companies", "POST", 5),
    ("/api/v1/documents/upload", "POST", 3),
    ("/api/v1/search?q=acme, inc", "GET", 4),
    ("/health", "GET", 2),
];
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The `/metrics` text the app serves at its `scrape`-th scrape: counters grow between scrapes,
/// label values include braces, commas and spaces as real route templates do.
pub fn metrics_text(scrape: u64) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let t = scrape + 1;
    out.push_str("# HELP kyb_http_requests_total Total HTTP requests by endpoint, method and status.\n");
    out.push_str("# TYPE kyb_http_requests_total counter\n");
    for (i, (endpoint, method, weight)) in ENDPOINTS.iter().enumerate() {
        for (status, share) in [("200", 90u64), ("400", 6), ("404", 3), ("500", 1)] {
            let count = weight * share * 100 * t + i as u64;
            let _ = writeln!(
                out,
                "kyb_http_requests_total{{endpoint=\"{endpoint}\",method=\"{method}\",status=\"{status}\"}} {count}"
            );
        }
    }
    out.push_str("# HELP kyb_http_request_duration_seconds HTTP request latency.\n");
    out.push_str("# TYPE kyb_http_request_duration_seconds histogram\n");
    for (i, (endpoint, method, weight)) in ENDPOINTS.iter().enumerate() {
        let total = weight * 10_000 * t;
        // Each endpoint has its own typical latency: later buckets fill faster for slow routes.
        let slowness = (i as f64 + 1.0) * 0.6;
        let mut sum = 0.0;
        let mut prev_le = 0.0;
        let mut prev_count = 0u64;
        for le in BUCKETS {
            let fraction = 1.0 - (-le * 40.0 / slowness).exp();
            let count = ((total as f64) * fraction) as u64;
            sum += (count - prev_count) as f64 * (le + prev_le) / 2.0;
            let _ = writeln!(
                out,
                "kyb_http_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",method=\"{method}\",le=\"{le}\"}} {count}"
            );
            prev_le = le;
            prev_count = count;
        }
        sum += (total - prev_count) as f64 * 12.0;
        let _ = writeln!(
            out,
            "kyb_http_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",method=\"{method}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "kyb_http_request_duration_seconds_sum{{endpoint=\"{endpoint}\",method=\"{method}\"}} {sum:.3}"
        );
        let _ = writeln!(
            out,
            "kyb_http_request_duration_seconds_count{{endpoint=\"{endpoint}\",method=\"{method}\"}} {total}"
        );
    }
    out.push_str("# HELP kyb_ml_model_accuracy Accuracy of each model on the rolling validation set.\n");
    out.push_str("# TYPE kyb_ml_model_accuracy gauge\n");
    out.push_str("kyb_ml_model_accuracy{model=\"bert\"} 0.912\n");
    out.push_str("kyb_ml_model_accuracy{model=\"distilbert\"} 0.864\n");
    out.push_str("# HELP kyb_ml_model_requests_total Inference requests by model.\n");
    out.push_str("# TYPE kyb_ml_model_requests_total counter\n");
    let _ = writeln!(out, "kyb_ml_model_requests_total{{model=\"bert\"}} {}", 52_000 * t);
    let _ = writeln!(out, "kyb_ml_model_requests_total{{model=\"distilbert\"}} {}", 87_000 * t);
    out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
    out.push_str("# TYPE process_resident_memory_bytes gauge\n");
    let _ = writeln!(out, "process_resident_memory_bytes {}", 412_000_000 + 1_000 * t);
    out.push_str("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n");
    out.push_str("# TYPE process_cpu_seconds_total counter\n");
    let _ = writeln!(out, "process_cpu_seconds_total {:.2}", 1830.5 + 0.25 * t as f64);
    out.push_str("# HELP process_open_fds Number of open file descriptors.\n");
    out.push_str("# TYPE process_open_fds gauge\n");
    out.push_str("process_open_fds 57\n");
    out.push_str(
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n",
    );
    out.push_str("# TYPE process_start_time_seconds gauge\n");
    out.push_str("process_start_time_seconds 1.7640e+09\n");
    out
}
