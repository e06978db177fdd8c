//! A small HTTP/1.1 GET client: plain `http://` only, redirects followed up to a limit, the body
//! read up to a size limit. The caller puts the whole exchange under one deadline.

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

/// Why a GET failed before a final response was read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse.
    #[error("invalid URL {url:?}")]
    InvalidUrl {
        /// The text given.
        url: String,
        /// The parser's reason.
        #[source]
        source: url::ParseError,
    },
    /// The scheme is not `http`.
    #[error("unsupported URL scheme `{scheme}` in {url} (only http:// is supported)")]
    UnsupportedScheme {
        /// The scheme.
        scheme: String,
        /// The URL.
        url: String,
    },
    /// The URL has no host.
    #[error("URL {url} has no host")]
    NoHost {
        /// The URL.
        url: String,
    },
    /// TCP connect (or name resolution) failed.
    #[error("cannot connect to {host}:{port}")]
    Connect {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP error from {url}")]
    Http {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
    /// More redirects than allowed.
    #[error("more than {max} redirects (last: {last})")]
    TooManyRedirects {
        /// The limit.
        max: u32,
        /// The last Location followed.
        last: String,
    },
    /// A redirect without a usable Location.
    #[error("redirect {status} from {url} has no valid Location")]
    BadRedirect {
        /// The redirect status.
        status: StatusCode,
        /// The URL that answered.
        url: String,
    },
}

/// A final (non-redirect) response.
#[derive(Debug)]
pub struct Fetched {
    /// Its status.
    pub status: StatusCode,
    /// The body, at most the limit.
    pub body: Bytes,
    /// The body was longer than the limit and was cut.
    pub truncated: bool,
    /// Redirects followed to get here.
    pub redirects: u32,
}

/// Parses `url` and checks it is one this client can fetch.
pub fn parse_url(url: &str) -> Result<Url, FetchError> {
    let parsed = Url::parse(url).map_err(|source| FetchError::InvalidUrl { url: url.to_owned(), source })?;
    if parsed.scheme() != "http" {
        return Err(FetchError::UnsupportedScheme {
            scheme: parsed.scheme().to_owned(),
            url: url.to_owned(),
        });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(FetchError::NoHost { url: url.to_owned() });
    }
    Ok(parsed)
}

/// GETs `url`, following up to `max_redirects` redirects, reading at most `max_body_bytes` of the
/// final body.
pub async fn get(url: &str, max_redirects: u32, max_body_bytes: u64) -> Result<Fetched, FetchError> {
    let mut current = parse_url(url)?;
    let mut redirects = 0;
    loop {
        let (status, location, body) = exchange(&current, max_body_bytes).await?;
        if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
            let (body, truncated) = body;
            return Ok(Fetched { status, body, truncated, redirects });
        }
        let bad = || FetchError::BadRedirect { status, url: current.to_string() };
        let next = location.and_then(|l| current.join(&l).ok()).ok_or_else(bad)?;
        if redirects >= max_redirects {
            return Err(FetchError::TooManyRedirects { max: max_redirects, last: next.to_string() });
        }
        if next.scheme() != "http" {
            return Err(FetchError::UnsupportedScheme {
                scheme: next.scheme().to_owned(),
                url: next.to_string(),
            });
        }
        redirects += 1;
        current = next;
    }
}

type Exchange = (StatusCode, Option<String>, (Bytes, bool));

async fn exchange(url: &Url, max_body_bytes: u64) -> Result<Exchange, FetchError> {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port)).await.map_err(|source| FetchError::Connect {
        host: host.clone(),
        port,
        source,
    })?;
    let http_err = |source| FetchError::Http { url: url.to_string(), source };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http_err)?;
    // The connection task ends when the response body is dropped or fully read.
    let conn = tokio::spawn(conn);
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let request = Request::get(if path.is_empty() { "/" } else { path })
        .header(header::HOST, authority)
        .header(header::USER_AGENT, concat!("kyb-health/", env!("CARGO_PKG_VERSION")))
        .header(header::ACCEPT, "application/json, text/plain;q=0.9, */*;q=0.5")
        .body(Empty::<Bytes>::new())
        .expect("request parts are valid");
    let response = sender.send_request(request).await.map_err(http_err)?;
    let status = response.status();
    let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut body = response.into_body();
    let mut buf = BytesMut::new();
    let mut truncated = false;
    let limit = usize::try_from(max_body_bytes).unwrap_or(usize::MAX);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(http_err)?;
        if let Ok(data) = frame.into_data() {
            let room = limit - buf.len();
            if data.len() > room {
                buf.extend_from_slice(&data[..room]);
                truncated = true;
                break;
            }
            buf.extend_from_slice(&data);
        }
    }
    drop(body);
    conn.abort();
    Ok((status, location, (buf.freeze(), truncated)))
}
