//! Out-of-date direct dependencies: each direct dependency of the platform's `Cargo.toml`, its
//! locked version, and the newest release in the registry's sparse index (the runbook's
//! `go list -u` step, for a Cargo project).

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kyb_core::{Check, Findings, RunCtx, Status};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use semver::Version;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// Which project, and which registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutdatedConfig {
    /// The platform's `Cargo.toml` (its direct dependencies).
    pub manifest: PathBuf,
    /// Its `Cargo.lock` (the versions in use).
    pub lockfile: PathBuf,
    /// The sparse index, e.g. `https://index.crates.io/`.
    pub index_url: String,
    /// CAs for an `https` index.
    pub ca_bundle: PathBuf,
    /// Deadline of each index request.
    pub timeout_ms: u64,
}

/// A direct dependency with a newer release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outdated {
    /// The crate.
    pub name: String,
    /// The locked version.
    pub locked: String,
    /// The newest non-yanked release (a pre-release only if the locked one is).
    pub newest: String,
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutdatedReport {
    /// Direct dependencies behind the newest release.
    pub outdated: Vec<Outdated>,
    /// Checks: `outdated`, and one Unknown per crate the index could not answer for.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(OutdatedReport);

/// Looks up every direct registry dependency in the index. It only reads: a dry run is the same
/// run.
pub async fn check_outdated(cfg: &OutdatedConfig, _ctx: &RunCtx) -> Result<OutdatedReport, Infallible> {
    let mut report = OutdatedReport { outdated: Vec::new(), findings: Findings::default() };
    let (direct, locked) = match read_project(&cfg.manifest, &cfg.lockfile) {
        Ok(p) => p,
        Err(why) => {
            report.findings.checks.push(Check::new(
                "outdated",
                Status::Unknown,
                format!("not checked: {why}"),
            ));
            return Ok(report);
        }
    };
    let lookups =
        direct.iter().filter_map(|name| Some((name, locked.get(name)?))).map(|(name, version)| async move {
            let answer = match index_path(name) {
                Some(path) => {
                    let url = format!("{}/{path}", cfg.index_url.trim_end_matches('/'));
                    fetch(&url, &cfg.ca_bundle, cfg.timeout_ms).await
                }
                None => Err(format!("`{name}` is not a crate name")),
            };
            (name, version, answer)
        });
    let mut problems = Vec::new();
    for (name, locked, answer) in futures_util::future::join_all(lookups).await {
        let body = match answer {
            Ok(b) => b,
            Err(why) => {
                problems.push(Check::new(
                    format!("outdated {name}"),
                    Status::Unknown,
                    format!("index lookup failed: {why}"),
                ));
                continue;
            }
        };
        let current = Version::parse(locked).ok();
        let allow_pre = current.as_ref().is_some_and(|v| !v.pre.is_empty());
        let newest = body
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
            .filter(|e| !e["yanked"].as_bool().unwrap_or(false))
            .filter_map(|e| Version::parse(e["vers"].as_str()?).ok())
            .filter(|v| allow_pre || v.pre.is_empty())
            .max();
        if let (Some(current), Some(newest)) = (current, newest)
            && newest > current
        {
            report.outdated.push(Outdated {
                name: name.clone(),
                locked: locked.clone(),
                newest: newest.to_string(),
            });
        }
    }
    let listed: Vec<String> =
        report.outdated.iter().map(|o| format!("{} {} -> {}", o.name, o.locked, o.newest)).collect();
    report.findings.checks.push(if listed.is_empty() {
        Check::new(
            "outdated",
            Status::Ok,
            format!("{} direct dependencies, all at their newest release", direct.len()),
        )
    } else {
        Check::new(
            "outdated",
            Status::Warn,
            format!("{} of {} direct dependencies behind: {}", listed.len(), direct.len(), listed.join(", ")),
        )
    });
    report.findings.checks.extend(problems);
    Ok(report)
}

/// Direct registry dependencies (renames resolved to the crate's name) and the locked version of
/// each crate (the highest, when several are locked).
fn read_project(manifest: &Path, lockfile: &Path) -> Result<(Vec<String>, BTreeMap<String, String>), String> {
    let read = |p: &Path| crate::read_text(p, crate::MANIFEST_LIMIT);
    let m: toml::Table =
        toml::from_str(&read(manifest)?).map_err(|e| format!("{}: {}", manifest.display(), e.message()))?;
    let mut direct = Vec::new();
    let tables = [
        m.get("dependencies"),
        m.get("build-dependencies"),
        m.get("workspace").and_then(|w| w.get("dependencies")),
    ];
    for table in tables.into_iter().flatten().filter_map(|t| t.as_table()) {
        for (key, spec) in table {
            let name = match spec {
                toml::Value::String(_) => key.clone(),
                // Path and git dependencies have no registry release to compare with.
                toml::Value::Table(t)
                    if t.contains_key("path") || t.contains_key("git") || t.get("workspace").is_some() =>
                {
                    continue;
                }
                toml::Value::Table(t) => t.get("package").and_then(|p| p.as_str()).unwrap_or(key).to_owned(),
                _ => continue,
            };
            if !direct.contains(&name) {
                direct.push(name);
            }
        }
    }
    let lock: toml::Table =
        toml::from_str(&read(lockfile)?).map_err(|e| format!("{}: {}", lockfile.display(), e.message()))?;
    let mut locked: BTreeMap<String, String> = BTreeMap::new();
    for p in lock.get("package").and_then(|p| p.as_array()).into_iter().flatten() {
        let (Some(name), Some(version)) =
            (p.get("name").and_then(|v| v.as_str()), p.get("version").and_then(|v| v.as_str()))
        else {
            continue;
        };
        let newer =
            locked.get(name).is_none_or(|old| Version::parse(version).ok() > Version::parse(old).ok());
        if newer {
            locked.insert(name.to_owned(), version.to_owned());
        }
    }
    direct.sort();
    Ok((direct, locked))
}

/// Where the sparse index keeps a crate: `1/a`, `2/ab`, `3/a/abc`, `se/rd/serde`; None for a
/// name no crate can have (the manifest is outside input: empty, or not ASCII).
fn index_path(name: &str) -> Option<String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    let n = name.to_ascii_lowercase();
    Some(match n.len() {
        1 => format!("1/{n}"),
        2 => format!("2/{n}"),
        3 => format!("3/{}/{n}", &n[..1]),
        _ => format!("{}/{}/{n}", &n[..2], &n[2..4]),
    })
}

/// One GET of an `http` or `https` URL, at most 16 MiB, under one deadline.
async fn fetch(url: &str, ca_bundle: &Path, timeout_ms: u64) -> Result<Bytes, String> {
    let attempt = async {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let host =
            parsed.host_str().ok_or_else(|| format!("{url}: no host"))?.trim_matches(['[', ']']).to_owned();
        let port = parsed.port_or_known_default().ok_or_else(|| format!("{url}: no port"))?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let path = &parsed[url::Position::BeforePath..url::Position::AfterQuery];
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, parsed.host_str().unwrap_or_default())
            .header(hyper::header::USER_AGENT, concat!("kyb-secaudit/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = match parsed.scheme() {
            "http" => send(TokioIo::new(tcp), request).await?,
            "https" => {
                let mut roots = rustls::RootCertStore::empty();
                let pem = crate::read_file(ca_bundle, crate::MANIFEST_LIMIT)?;
                for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem).flatten() {
                    let _ = roots.add(cert);
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
                let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {host}: {e}"))?;
                send(TokioIo::new(tls), request).await?
            }
            other => return Err(format!("{url}: unsupported scheme {other}")),
        };
        if !response.status().is_success() {
            return Err(format!("HTTP {} from {url}", response.status().as_u16()));
        }
        let body = http_body_util::Limited::new(response.into_body(), 16 << 20);
        body.collect().await.map(|b| b.to_bytes()).map_err(|e| format!("reading {url}: {e}"))
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {url} within {timeout_ms} ms")))
}

async fn send<T>(
    io: TokioIo<T>,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    sender.send_request(request).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_index_paths() {
        assert_eq!(index_path("a").as_deref(), Some("1/a"));
        assert_eq!(index_path("ab").as_deref(), Some("2/ab"));
        assert_eq!(index_path("abc").as_deref(), Some("3/a/abc"));
        assert_eq!(index_path("Serde").as_deref(), Some("se/rd/serde"));
        for name in ["", "é", "aé", "abé", "a/b", "../x"] {
            assert_eq!(index_path(name), None, "{name:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn version() -> impl Strategy<Value = Version> {
            (
                0..4_u64,
                0..4_u64,
                0..4_u64,
                prop::option::of("(alpha|beta|rc)(\\.[0-9])?"),
                prop::option::of("[a-z0-9]{1,4}"),
            )
                .prop_map(|(major, minor, patch, pre, build)| {
                    let mut v = Version::new(major, minor, patch);
                    if let Some(pre) = pre {
                        v.pre = semver::Prerelease::new(&pre).unwrap();
                    }
                    if let Some(build) = build {
                        v.build = semver::BuildMetadata::new(&build).unwrap();
                    }
                    v
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(50))]

            /// A crate name is whatever the manifest says; the path is the sparse index's for a
            /// name Cargo accepts.
            #[test]
            fn index_paths(name in any::<String>(), valid in "[A-Za-z][A-Za-z0-9_-]{0,20}") {
                if let Some(path) = index_path(&name) {
                    prop_assert!(path.is_ascii() && !path.contains(".."), "{}", path);
                }
                let path = index_path(&valid).unwrap();
                let lower = valid.to_ascii_lowercase();
                prop_assert!(path.ends_with(&format!("/{lower}")), "{}", path);
                let want = match lower.len() {
                    1 => "1".to_owned(),
                    2 => "2".to_owned(),
                    3 => format!("3/{}", &lower[..1]),
                    _ => format!("{}/{}", &lower[..2], &lower[2..4]),
                };
                prop_assert_eq!(path, format!("{want}/{lower}"));
            }

            /// With several versions of a crate locked, the highest is the one compared, in
            /// whatever order `Cargo.lock` lists them; a version that is not semver never wins
            /// over one that is.
            #[test]
            fn the_highest_locked_version_counts(
                packages in prop::collection::vec(
                    (prop::sample::select(vec!["serde", "tokio", "rand"]), prop_oneof![
                        4 => version().prop_map(|v| v.to_string()),
                        1 => "[0-9.x]{1,6}",
                    ]),
                    1..8,
                ).prop_shuffle(),
            ) {
                let dir = tempfile::tempdir().unwrap();
                let (manifest, lockfile) = (dir.path().join("Cargo.toml"), dir.path().join("Cargo.lock"));
                std::fs::write(&manifest, "[dependencies]\nserde = \"1\"\ntokio = \"1\"\nrand = \"0.8\"\n").unwrap();
                let mut lock = String::from("version = 4\n");
                for (name, version) in &packages {
                    lock.push_str(&format!("\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\n"));
                }
                std::fs::write(&lockfile, lock).unwrap();
                let (direct, locked) = read_project(&manifest, &lockfile).unwrap();
                prop_assert_eq!(direct, ["rand", "serde", "tokio"]);
                for (name, chosen) in &locked {
                    let candidates: Vec<&String> = packages.iter().filter(|(n, _)| n == name).map(|(_, v)| v).collect();
                    prop_assert!(candidates.contains(&chosen));
                    let highest = candidates.iter().filter_map(|v| Version::parse(v).ok()).max();
                    if let Some(highest) = highest {
                        prop_assert_eq!(Version::parse(chosen).ok(), Some(highest));
                    }
                }
                let names: std::collections::BTreeSet<&str> = packages.iter().map(|(n, _)| *n).collect();
                prop_assert!(locked.keys().map(String::as_str).eq(names));
            }
        }
    }
}
