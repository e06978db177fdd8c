//! Certificates made by the test: files of every kind, and a TLS server on loopback asked with
//! the right and the wrong SNI.

use kyb_core::{RunCtx, Status};
use kyb_secaudit::*;
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};
use std::path::Path;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use tokio_rustls::rustls;

struct Made {
    cert: Certificate,
    key: KeyPair,
}

fn make(
    cn: &str,
    sans: &[&str],
    from: OffsetDateTime,
    until: OffsetDateTime,
    ca: bool,
    issuer: Option<&Made>,
) -> Made {
    let mut p = CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = from;
    p.not_after = until;
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let key = KeyPair::generate().unwrap();
    let cert = match issuer {
        Some(i) => p.signed_by(&key, &i.cert, &i.key).unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    Made { cert, key }
}

fn days(n: f64) -> Duration {
    Duration::seconds_f64(n * 86_400.0)
}

fn cfg(paths: Vec<std::path::PathBuf>, endpoints: Vec<Endpoint>, bundle: &Path) -> CertConfig {
    CertConfig {
        paths,
        endpoints,
        warn_days: 30.0,
        crit_days: 7.0,
        ca_bundle: bundle.to_owned(),
        timeout_ms: 2_000,
    }
}

fn check<'a>(r: &'a CertReport, name: &str) -> &'a kyb_core::Check {
    r.findings
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:#?}", r.findings.checks))
}

#[tokio::test]
async fn each_file_gets_its_status_days_and_reason() {
    let now = OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = make("Test Root", &[], now - days(400.0), now + days(3000.0), true, None);
    let write = |name: &str, pem: String| std::fs::write(d.join(name), pem).unwrap();
    let leaf = |from: f64, until: f64| {
        make(
            "app.kyb.test",
            &["app.kyb.test", "127.0.0.1"],
            now + days(from),
            now + days(until),
            false,
            Some(&root),
        )
    };
    write("valid.pem", leaf(-10.0, 200.0).cert.pem());
    write("expiring.crt", leaf(-80.0, 10.0).cert.pem());
    write("expired.pem", leaf(-100.0, -0.5).cert.pem());
    write("notyet.pem", leaf(2.0, 300.0).cert.pem());
    // A chain whose intermediate ends first: the leaf is fine, the intermediate is not.
    let inter = make("Test Intermediate", &[], now - days(300.0), now + days(5.0), true, Some(&root));
    let chained =
        make("api.kyb.test", &["api.kyb.test"], now - days(10.0), now + days(250.0), false, Some(&inter));
    write("chain.pem", format!("{}{}", chained.cert.pem(), inter.cert.pem()));
    write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==!!\n-----END CERTIFICATE-----\n".to_owned(),
    );
    write("nocert.pem", "just some notes, no certificate here\n".to_owned());
    write("key.txt", "ignored: not a certificate file name\n".to_owned());
    std::os::unix::fs::symlink("/etc/shadow", d.join("shadow.pem")).unwrap();

    let r = check_certs(&cfg(vec![d.to_owned()], vec![], Path::new("/nonexistent")), &RunCtx::new(now))
        .await
        .unwrap();
    let at = |f: &str| format!("{}", d.join(f).display());
    let c = check(&r, &format!("{} #0", at("valid.pem")));
    assert_eq!(c.status, Status::Ok, "{c:?}");
    assert!(
        c.summary.contains("valid for 200.0 more days")
            && c.summary.contains("DNS:app.kyb.test")
            && c.summary.contains("IP:127.0.0.1"),
        "{}",
        c.summary
    );
    assert!(c.summary.contains("CN=app.kyb.test issued by CN=Test Root"), "{}", c.summary);
    let c = check(&r, &format!("{} #0", at("expiring.crt")));
    assert_eq!(c.status, Status::Warn);
    assert!(c.summary.contains("expires in 10.0 days"), "{}", c.summary);
    // Fewer days is worse: the perfdata thresholds are floors, in range syntax.
    assert_eq!(c.metrics[0].perfdata(), "'days_left'=10;30:;7:");
    // For the textfile: the time left in seconds, labelled with the configured certificate.
    let g = &c.gauges[0];
    let want = ("kyb_maint_certificate_seconds_left", 864_000.0, &c.name);
    assert_eq!((g.name.as_str(), g.value, &g.labels[0].1), want, "{g:?}");
    let c = check(&r, &format!("{} #0", at("expired.pem")));
    assert_eq!(c.status, Status::Crit);
    assert!(c.summary.contains("EXPIRED 0.5 days ago"), "time of day counts: {}", c.summary);
    let days_left = r.certs.iter().find(|x| x.source == at("expired.pem")).unwrap().days_left;
    assert!((days_left + 0.5).abs() < 0.01, "{days_left}");
    let c = check(&r, &format!("{} #0", at("notyet.pem")));
    assert_eq!(c.status, Status::Crit);
    assert!(c.summary.contains("not valid before"), "{}", c.summary);
    assert_eq!(check(&r, &format!("{} #0", at("chain.pem"))).status, Status::Ok);
    let c = check(&r, &format!("{} #1", at("chain.pem")));
    assert_eq!(c.status, Status::Crit, "the intermediate expires in 5 days: {c:?}");
    assert!(c.summary.contains("CN=Test Intermediate"), "{}", c.summary);
    let c = check(&r, &at("garbage.pem"));
    assert_eq!(c.status, Status::Crit);
    assert!(c.summary.contains("damaged PEM") || c.summary.contains("cannot parse"), "{}", c.summary);
    let c = check(&r, &at("nocert.pem"));
    assert_eq!(c.status, Status::Unknown);
    assert!(c.summary.contains("no certificate"), "{}", c.summary);
    assert!(
        r.findings.checks.iter().all(|c| !c.name.contains("key.txt") && !c.name.contains("shadow")),
        "{:#?}",
        r.findings.checks
    );

    // A single file given directly, and one that is not there.
    let r = check_certs(
        &cfg(vec![d.join("expiring.crt"), d.join("gone.pem")], vec![], Path::new("/x")),
        &RunCtx::new(now),
    )
    .await
    .unwrap();
    assert_eq!(r.findings.checks.len(), 2);
    assert_eq!(check(&r, &at("gone.pem")).status, Status::Crit);
}

/// A TLS server on loopback presenting `chain`, until the test ends.
async fn serve(chain: Vec<&Certificate>, key: &KeyPair) -> u16 {
    let certs = chain.iter().map(|c| c.der().clone()).collect();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_live_endpoint_records_its_chain_and_verifies_it_against_the_sni() {
    let now = OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();
    let root = make("Live Root", &[], now - days(10.0), now + days(1000.0), true, None);
    let inter = make("Live Intermediate", &[], now - days(10.0), now + days(20.0), true, Some(&root));
    let leaf = make("localhost", &["localhost"], now - days(1.0), now + days(90.0), false, Some(&inter));
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, root.cert.pem()).unwrap();
    let port = serve(vec![&leaf.cert, &inter.cert], &leaf.key).await;
    let ep = |sni: &str| Endpoint { host: "127.0.0.1".into(), port, server_name: Some(sni.into()) };

    let r = check_certs(&cfg(vec![], vec![ep("localhost")], &bundle), &RunCtx::new(now)).await.unwrap();
    let src = format!("127.0.0.1:{port} (SNI localhost)");
    assert_eq!(check(&r, &format!("{src} verify")).status, Status::Ok, "{:#?}", r.findings.checks);
    assert_eq!(check(&r, &format!("{src} #0")).status, Status::Ok);
    let c = check(&r, &format!("{src} #1"));
    assert_eq!(c.status, Status::Warn, "the intermediate ends in 20 days: {c:?}");

    // The wrong name: the chain is still read and judged, and the failure is its own finding.
    let r = check_certs(&cfg(vec![], vec![ep("wrong.kyb.test")], &bundle), &RunCtx::new(now)).await.unwrap();
    let src = format!("127.0.0.1:{port} (SNI wrong.kyb.test)");
    let v = check(&r, &format!("{src} verify"));
    assert_eq!(v.status, Status::Crit);
    assert!(v.summary.contains("does not verify for wrong.kyb.test"), "{}", v.summary);
    assert_eq!(check(&r, &format!("{src} #0")).status, Status::Ok);
    assert_eq!(r.certs.len(), 2);

    // No CA bundle: the chain is read; verification fails, saying why.
    let r =
        check_certs(&cfg(vec![], vec![ep("localhost")], Path::new("/nonexistent/ca.pem")), &RunCtx::new(now))
            .await
            .unwrap();
    let v = check(&r, &format!("127.0.0.1:{port} (SNI localhost) verify"));
    assert!(v.summary.contains("no trusted CA"), "{}", v.summary);
}

#[tokio::test]
async fn an_endpoint_that_refuses_or_hangs_is_crit_without_a_hang() {
    let now = OffsetDateTime::now_utc();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let ep = |port| Endpoint { host: "127.0.0.1".into(), port, server_name: Some("localhost".into()) };
    let started = std::time::Instant::now();
    let r = check_certs(&cfg(vec![], vec![ep(closed), ep(hung_port)], Path::new("/x")), &RunCtx::new(now))
        .await
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "endpoints are probed concurrently under the deadline"
    );
    assert_eq!(r.findings.checks.len(), 2, "{:#?}", r.findings.checks);
    assert!(
        r.findings.checks[0].status == Status::Crit
            && r.findings.checks[0].summary.contains("cannot connect"),
        "{:?}",
        r.findings.checks[0]
    );
    assert!(
        r.findings.checks[1].status == Status::Crit
            && r.findings.checks[1].summary.contains("within 2000 ms"),
        "{:?}",
        r.findings.checks[1]
    );
    drop(hung);
}

#[tokio::test]
async fn a_certificate_path_that_is_a_fifo_or_a_device_is_crit_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("tls.crt");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let zero = dir.path().join("zero.pem");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let r = check_certs(
        &cfg(vec![fifo.clone(), zero.clone()], vec![], &dir.path().join("none.pem")),
        &RunCtx::new(time::OffsetDateTime::now_utc()),
    )
    .await
    .unwrap();
    for (path, kind) in [(&fifo, "FIFO"), (&zero, "character device")] {
        let c = check(&r, &path.display().to_string());
        assert_ne!(c.status, kyb_core::Status::Ok, "{c:?}");
        assert!(c.summary.contains(&format!("it is a {kind}, not a regular file")), "{}", c.summary);
    }
}
