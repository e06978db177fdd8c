//! One HTTP/1.1 request with an optional body, for the alerting endpoints: plain `http://`, no
//! redirects (an API that redirects is misconfigured), the answer read up to a limit. The caller
//! puts each endpoint's requests under one deadline.

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

/// Why a request got no answer, or an answer that is not a success.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// TCP connect (or name resolution) failed.
    #[error("cannot connect to {addr}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The exchange broke off.
    #[error("{method} {url} failed")]
    Exchange {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
    /// The answer was longer than the limit.
    #[error("{method} {url}: the answer is longer than {limit} bytes")]
    TooLong {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The server answered with an error status.
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The start of the answer, which says why.
        body: String,
    },
}

/// Checks that `url` is a base URL this client can reach: `http://host[:port][/prefix]`.
pub fn base_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "{url} must start with http:// (put a TLS-terminating proxy in front for https)"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url} has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{url} must not have a query or fragment: give the base URL"));
    }
    Ok(parsed)
}

/// `base`'s path with `segments` appended, e.g. `http://am:9093/prefix` + `api/v2/alerts`.
pub fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Sends `method url` with `body` (a content type and the bytes) and returns the answer's body
/// when the status is a success, at most `limit` bytes.
pub async fn send(
    method: Method,
    url: &Url,
    body: Option<(&'static str, Vec<u8>)>,
    limit: usize,
) -> Result<Bytes, HttpError> {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = format!("{host}:{port}");
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|source| HttpError::Connect { addr: addr.clone(), source })?;
    let broke = |source| HttpError::Exchange { method: method.clone(), url: url.to_string(), source };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(broke)?;
    let conn = tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method.clone())
        .uri(&url[url::Position::BeforePath..url::Position::AfterQuery])
        .header(header::HOST, &url[url::Position::BeforeHost..url::Position::BeforePath])
        .header(header::USER_AGENT, concat!("kyb-alert/", env!("CARGO_PKG_VERSION")))
        .header(header::ACCEPT, "application/json, text/plain;q=0.9");
    let bytes = match body {
        Some((content_type, bytes)) => {
            request = request.header(header::CONTENT_TYPE, content_type);
            bytes
        }
        None => Vec::new(),
    };
    let request = request.body(Full::new(Bytes::from(bytes))).expect("request parts are valid");
    let response = sender.send_request(request).await.map_err(broke)?;
    let status = response.status();
    let collected = Limited::new(response.into_body(), limit).collect().await;
    conn.abort();
    let answer = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) => match e.downcast::<hyper::Error>() {
            Ok(source) => return Err(broke(*source)),
            Err(_) => return Err(HttpError::TooLong { method, url: url.to_string(), limit }),
        },
    };
    if !status.is_success() {
        let text = String::from_utf8_lossy(&answer);
        let body = text.trim().chars().take(300).collect();
        return Err(HttpError::Status { method, url: url.to_string(), status, body });
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_http_without_query() {
        assert!(base_url("http://127.0.0.1:9093").is_ok());
        assert_eq!(
            join(&base_url("http://am:9093/").unwrap(), &["api", "v2"]).as_str(),
            "http://am:9093/api/v2"
        );
        assert_eq!(join(&base_url("http://am/x/").unwrap(), &["api"]).as_str(), "http://am/x/api");
        for (url, says) in [
            ("https://am:9093", "must start with http://"),
            ("am:9093", "must start with http://"),
            ("not a url", "is not a URL"),
            ("http://am:9093/?a=b", "query or fragment"),
            ("http://", "is not a URL"),
        ] {
            let err = base_url(url).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
