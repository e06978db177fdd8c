//! A platform service that embeds kyb-maint's health probes and backup check instead of
//! shelling out to the binaries.
//!
//! Its own TOML file has a `[maint]` table whose `[maint.health]` and `[maint.backup]` tables
//! deserialize straight into [`kyb_health::HealthSection`] and [`kyb_backup::BackupSection`]:
//! the same keys, defaults and checks as kyb-maint's `[app]`/`[postgres]`/`[redis]` and
//! `[backup]` sections.
//!
//! ```toml
//! listen = "127.0.0.1:8090"
//!
//! [maint]
//! backup_dir = "/backups/database"
//!
//! [maint.health.postgres]
//! host = "127.0.0.1"
//! user = "kyb"
//! dbname = "kyb"
//! password_env = "DB_PASSWORD"
//!
//! [maint.health.redis]
//! port = 6379
//!
//! [maint.backup]
//! max_age_hours = 26
//! ```
//!
//! It serves `GET /maint/health` (the probes' report) and `GET /maint/backup` (verification of
//! the latest backup), both as JSON: 200 when nothing is Crit, 503 when something is, so a
//! load balancer or a Kubernetes probe can read the status code alone.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kyb_backup::{BackupSection, VerifyConfig, Which};
use kyb_core::Status;
use kyb_core::config::FieldError;
use kyb_health::{HealthConfig, HealthSection};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

/// The service's config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Where the service listens.
    pub listen: SocketAddr,
    /// What kyb-maint's crates check on the service's behalf.
    #[serde(default)]
    pub maint: MaintConfig,
}

/// `[maint]`: the embedded crates' sections, as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintConfig {
    /// The backup directory verified by `GET /maint/backup`; left out, that endpoint says so.
    pub backup_dir: Option<PathBuf>,
    /// kyb-health's probes: `[maint.health.app]`, `[maint.health.postgres]`,
    /// `[maint.health.redis]`.
    #[serde(default)]
    pub health: HealthSection,
    /// kyb-backup's `[backup]` section.
    #[serde(default)]
    pub backup: BackupSection,
}

/// Why the config file was refused.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What the handlers need, derived once from the config.
#[derive(Debug)]
pub struct Maint {
    probes: HealthConfig,
    backup: Option<VerifyConfig>,
}

impl Maint {
    /// Reads `text` (the config file at `path`): relative paths under its directory, each section
    /// checked, passwords read.
    pub fn load(text: &str, path: &Path) -> Result<(SocketAddr, Maint), ConfigError> {
        let bad = |e: FieldError, table: &str| ConfigError(format!("{}: {}", path.display(), e.under(table)));
        let mut cfg: ServiceConfig =
            toml::from_str(text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.message())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let maint = &mut cfg.maint;
        maint.health.resolve_paths(base);
        maint.health.validate().map_err(|e| bad(e, "maint.health"))?;
        maint.backup.resolve_paths(base);
        maint.backup.validate().map_err(|e| bad(e, "maint.backup"))?;
        let probes = maint.health.probes().map_err(|e| bad(e, "maint.health"))?;
        let backup = maint.backup_dir.as_deref().map(|dir| {
            let mut verify = maint.backup.verify(&kyb_core::config::resolve_path(base, dir));
            verify.which = Which::Latest;
            verify
        });
        Ok((cfg.listen, Maint { probes, backup }))
    }
}

/// Answers on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, maint: Arc<Maint>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let maint = Arc::clone(&maint);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, Arc::clone(&maint)));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(req: Request<Incoming>, maint: Arc<Maint>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if req.method() != Method::GET {
        return Ok(json(StatusCode::METHOD_NOT_ALLOWED, &serde_json::json!({ "error": "only GET" })));
    }
    Ok(match req.uri().path() {
        "/maint/health" => {
            let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc());
            let Ok(report) = kyb_health::check_all(&maint.probes, &ctx).await;
            json(code(report.status), &report)
        }
        "/maint/backup" => match &maint.backup {
            None => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({ "error": "no [maint] backup_dir configured" }),
            ),
            Some(cfg) => {
                let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc());
                match kyb_backup::verify(cfg, &ctx).await {
                    Ok(report) => json(code(report.findings.status()), &report),
                    Err(e) => json(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &serde_json::json!({ "error": kyb_core::error_chain(&e) }),
                    ),
                }
            }
        },
        _ => {
            json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "try /maint/health or /maint/backup" }))
        }
    })
}

/// 503 when something is Crit (or could not be judged), else 200.
fn code(status: Status) -> StatusCode {
    match status {
        Status::Ok | Status::Warn => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(body).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    res
}
