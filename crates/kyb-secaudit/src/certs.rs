//! Certificate expiry: every certificate of every PEM chain in the configured files and
//! directories, and the chain each live TLS endpoint presents.

use kyb_core::{Check, Findings, Gauge, Metric, RunCtx, Status, Unit};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use x509_parser::extensions::GeneralName;

/// A live endpoint: `host:port`, with the name sent as SNI and checked against the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The server name to ask for (SNI) and verify; None: `host`.
    pub server_name: Option<String>,
}

/// What to look at and when to worry.
#[derive(Debug, Clone, PartialEq)]
pub struct CertConfig {
    /// PEM files, or directories whose `.pem`, `.crt` and `.cer` files are read (symlinks not
    /// followed).
    pub paths: Vec<PathBuf>,
    /// Live endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Warn when a certificate expires within this many days.
    pub warn_days: f64,
    /// Crit when within this many days (and when expired or not yet valid).
    pub crit_days: f64,
    /// PEM bundle of the CAs endpoints are verified against.
    pub ca_bundle: PathBuf,
    /// Deadline of each connection and handshake.
    pub timeout_ms: u64,
}

/// One certificate as read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CertInfo {
    /// The file or `host:port` it came from.
    pub source: String,
    /// Its place in the chain: 0 for the first (the leaf, in a served chain).
    pub position: usize,
    /// Subject, RFC 4514 style.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Subject alternative names (DNS, IP, e-mail, URI).
    pub sans: Vec<String>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Days (with fractions) from now to `not_after`: negative once expired.
    pub days_left: f64,
}

/// Every certificate found and the checks made of them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CertReport {
    /// The certificates, in source and chain order.
    pub certs: Vec<CertInfo>,
    /// Checks: one per certificate, one per source that could not be read, one `verify` per
    /// endpoint.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(CertReport);

/// Reads every configured file and endpoint (endpoints concurrently, each under its deadline),
/// judging each certificate's days left at `ctx.now`. It only reads: a dry run is the same run.
pub async fn check_certs(cfg: &CertConfig, ctx: &RunCtx) -> Result<CertReport, Infallible> {
    let now = ctx.now;
    let mut report = CertReport { certs: Vec::new(), findings: Findings::default() };
    for path in &cfg.paths {
        for (source, read) in read_path(path) {
            add_source(&mut report, cfg, now, &source, read);
        }
    }
    let roots = load_roots(&cfg.ca_bundle);
    let bundle = cfg.ca_bundle.display().to_string();
    let live = cfg.endpoints.iter().map(|e| fetch_chain(e, roots.clone(), &bundle, cfg.timeout_ms));
    for (endpoint, (source, chain, verified)) in
        cfg.endpoints.iter().zip(futures_util::future::join_all(live).await)
    {
        let got_chain = matches!(&chain, Ok(c) if !c.is_empty());
        add_source(&mut report, cfg, now, &source, chain);
        if got_chain {
            let name = endpoint.server_name.as_deref().unwrap_or(&endpoint.host);
            report.findings.checks.push(match verified {
                Ok(()) => {
                    Check::new(format!("{source} verify"), Status::Ok, format!("chain verifies for {name}"))
                }
                Err(why) => Check::new(
                    format!("{source} verify"),
                    Status::Crit,
                    format!("does not verify for {name}: {why}"),
                ),
            });
        }
    }
    Ok(report)
}

fn add_source(
    report: &mut CertReport,
    cfg: &CertConfig,
    now: OffsetDateTime,
    source: &str,
    read: Result<Vec<Vec<u8>>, String>,
) {
    let ders = match read {
        Ok(d) if d.is_empty() => {
            report.findings.checks.push(Check::new(source, Status::Unknown, "no certificate in it"));
            return;
        }
        Ok(d) => d,
        Err(why) => {
            report.findings.checks.push(Check::new(source, Status::Crit, why));
            return;
        }
    };
    for (position, der) in ders.iter().enumerate() {
        let name = format!("{source} #{position}");
        match describe(source, position, der, now) {
            Ok(info) => {
                report.findings.checks.push(judge(cfg, &name, &info, now));
                report.certs.push(info);
            }
            Err(why) => report.findings.checks.push(Check::new(
                name,
                Status::Crit,
                format!("cannot parse the certificate: {why}"),
            )),
        }
    }
}

fn judge(cfg: &CertConfig, name: &str, c: &CertInfo, now: OffsetDateTime) -> Check {
    let until = stamp(c.not_after);
    let (status, state) = if c.days_left < 0.0 {
        (Status::Crit, format!("EXPIRED {:.1} days ago ({until})", -c.days_left))
    } else if c.not_before > now {
        (Status::Crit, format!("not valid before {}", stamp(c.not_before)))
    } else if c.days_left < cfg.crit_days {
        (Status::Crit, format!("expires in {:.1} days ({until})", c.days_left))
    } else if c.days_left < cfg.warn_days {
        (Status::Warn, format!("expires in {:.1} days ({until})", c.days_left))
    } else {
        (Status::Ok, format!("valid for {:.1} more days ({until})", c.days_left))
    };
    let sans = if c.sans.is_empty() { String::new() } else { format!("; SANs {}", c.sans.join(", ")) };
    let days_left = (c.days_left * 100.0).round() / 100.0;
    Check::new(name, status, format!("{state}: {} issued by {}{sans}", c.subject, c.issuer))
        .with_metric(
            Metric::new("days_left", days_left, Unit::None)
                .with_floor_thresholds(cfg.warn_days, cfg.crit_days),
        )
        // Seconds in the metric name and value (Prometheus's base unit), of the days the
        // perfdata shows, so the two agree.
        .with_gauge(
            Gauge::new("kyb_maint_certificate_seconds_left", (days_left * 86_400.0).round())
                .label("certificate", name),
        )
}

fn describe(source: &str, position: usize, der: &[u8], now: OffsetDateTime) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let time = |t: x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| e.to_string())
    };
    let not_before = time(cert.validity().not_before)?;
    let not_after = time(cert.validity().not_after)?;
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
                GeneralName::RFC822Name(e) => Some(format!("email:{e}")),
                GeneralName::URI(u) => Some(format!("URI:{u}")),
                GeneralName::IPAddress(ip) => ip_text(ip).map(|ip| format!("IP:{ip}")),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(CertInfo {
        source: source.to_owned(),
        position,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before,
        not_after,
        // The whole timestamp counts: a certificate ending at 08:00 is gone by 09:00 that day.
        days_left: (not_after - now).as_seconds_f64() / 86_400.0,
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// The certificate files under `path` (itself when a file), each with its DER certificates or why
/// they could not be read.
fn read_path(path: &Path) -> Vec<(String, Read)> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return vec![(path.display().to_string(), Err(format!("cannot read: {e}")))],
    };
    if !meta.is_dir() {
        return vec![(path.display().to_string(), read_pem(path))];
    }
    let mut found = Vec::new();
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                found.push((dir.display().to_string(), Err(format!("cannot list: {e}"))));
                continue;
            }
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(kind) = e.file_type() else { continue };
            let p = e.path();
            if kind.is_dir() {
                stack.push(p);
            } else if kind.is_file()
                && p.extension()
                    .is_some_and(|x| ["pem", "crt", "cer"].iter().any(|c| x.eq_ignore_ascii_case(c)))
            {
                found.push((p.display().to_string(), read_pem(&p)));
            }
        }
    }
    found
}

fn read_pem(path: &Path) -> Read {
    // The row is named after the file already: the reason alone.
    let bytes = kyb_core::fs::read_regular(path, crate::FILE_LIMIT)
        .map(|(bytes, _)| bytes)
        .map_err(|e| format!("cannot read: {}", kyb_core::error_chain(&e)))?;
    CertificateDer::pem_slice_iter(&bytes)
        .map(|c| c.map(|c| c.as_ref().to_vec()).map_err(|e| format!("damaged PEM: {e}")))
        .collect()
}

fn load_roots(bundle: &Path) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    if let Ok(bytes) = crate::read_file(bundle, crate::MANIFEST_LIMIT) {
        for cert in CertificateDer::pem_slice_iter(&bytes).flatten() {
            let _ = roots.add(cert);
        }
    }
    Arc::new(roots)
}

/// Records the chain the server presents, then verifies it: the chain is kept when the
/// verification fails.
#[derive(Debug)]
struct Recorder {
    /// None when no CA could be loaded: every chain then fails verification, saying so.
    inner: Option<Arc<WebPkiServerVerifier>>,
    no_roots: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    chain: Mutex<Vec<Vec<u8>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity).chain(intermediates).map(|c| c.as_ref().to_vec()).collect();
        *self.chain.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = chain;
        match &self.inner {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(rustls::Error::General(self.no_roots.clone())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A source's DER certificates, or why they could not be read.
type Read = Result<Vec<Vec<u8>>, String>;

type Fetched = (String, Read, Result<(), String>);

/// Connects, handshakes, and returns the presented chain and whether it verified.
async fn fetch_chain(
    e: &Endpoint,
    roots: Arc<rustls::RootCertStore>,
    bundle: &str,
    timeout_ms: u64,
) -> Fetched {
    let source = match &e.server_name {
        Some(sni) if sni != &e.host => format!("{}:{} (SNI {sni})", e.host, e.port),
        _ => format!("{}:{}", e.host, e.port),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build().ok();
    let recorder = Arc::new(Recorder {
        inner,
        no_roots: format!("no trusted CA could be loaded from {bundle}"),
        provider: provider.clone(),
        chain: Mutex::new(Vec::new()),
    });
    let config =
        match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(b) => b.dangerous().with_custom_certificate_verifier(recorder.clone()).with_no_client_auth(),
            Err(err) => return (source, Err(format!("cannot set up TLS: {err}")), Err(String::new())),
        };
    let name = e.server_name.clone().unwrap_or_else(|| e.host.clone());
    let server_name = match ServerName::try_from(name.clone()) {
        Ok(n) => n,
        Err(err) => {
            return (source, Err(format!("`{name}` is not a server name: {err}")), Err(String::new()));
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let deadline = Duration::from_millis(timeout_ms);
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((e.host.as_str(), e.port))
            .await
            .map_err(|err| format!("cannot connect: {err}"))?;
        connector.connect(server_name, tcp).await.map(|_| ()).map_err(|err| err.to_string())
    };
    let outcome = tokio::time::timeout(deadline, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no TLS handshake within {timeout_ms} ms")));
    let chain =
        std::mem::take(&mut *recorder.chain.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    match (chain.is_empty(), outcome) {
        (true, Err(why)) => (source, Err(why), Err(String::new())),
        (_, outcome) => (source, Ok(chain), outcome),
    }
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
        .unwrap_or_default()
}
