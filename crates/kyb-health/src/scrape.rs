//! One scrape of a Prometheus endpoint, parsed: shared by the snapshot, the performance analysis
//! and the model checks.

use crate::http;
use kyb_prom::Exposition;
use std::time::Duration;

/// Where to scrape and the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeConfig {
    /// Full URL of the metrics endpoint.
    pub url: String,
    /// Deadline for the whole scrape.
    pub timeout_ms: u64,
    /// Bytes read at most.
    pub max_body_bytes: u64,
    /// Redirects followed at most.
    pub max_redirects: u32,
}

/// A scrape that answered.
#[derive(Debug, Clone)]
pub struct Scraped {
    /// The body as served.
    pub body: bytes::Bytes,
    /// The body was cut at `max_body_bytes`.
    pub truncated: bool,
    /// The parsed exposition, malformed lines in its `errors`.
    pub exposition: Exposition,
}

/// A scrape that gave nothing to read.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// No complete answer in time.
    #[error("no response from {url} within {timeout_ms} ms")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The deadline.
        timeout_ms: u64,
    },
    /// The request failed.
    #[error("cannot scrape {url}")]
    Fetch {
        /// The endpoint.
        url: String,
        /// The cause.
        #[source]
        source: http::FetchError,
    },
    /// The endpoint answered with an error status.
    #[error("HTTP {status} from {url}")]
    Status {
        /// The endpoint.
        url: String,
        /// The status code.
        status: u16,
    },
}

/// Fetches and parses `cfg.url` under its deadline.
pub async fn scrape(cfg: &ScrapeConfig) -> Result<Scraped, ScrapeError> {
    let url = cfg.url.clone();
    let fetched = tokio::time::timeout(
        Duration::from_millis(cfg.timeout_ms),
        http::get(&cfg.url, cfg.max_redirects, cfg.max_body_bytes),
    )
    .await
    .map_err(|_| ScrapeError::Timeout { url: url.clone(), timeout_ms: cfg.timeout_ms })?
    .map_err(|source| ScrapeError::Fetch { url: url.clone(), source })?;
    if !fetched.status.is_success() {
        return Err(ScrapeError::Status { url, status: fetched.status.as_u16() });
    }
    let exposition = kyb_prom::parse(&String::from_utf8_lossy(&fetched.body));
    Ok(Scraped { body: fetched.body, truncated: fetched.truncated, exposition })
}
