//! The `[security]` section of the config file: its keys, their defaults and checks, and the
//! config of each audit derived from it.

use crate::{
    AdvisoriesTask, AdvisoryConfig, CertConfig, Endpoint, LogScanConfig, OutdatedConfig, PermConfig,
    UpdatesConfig,
};
use kyb_core::Thresholds;
use kyb_core::config::{FieldError, TimeoutMs, resolve_path};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[security]`: the security audit, as `kyb-secaudit`, the weekly flow (OS updates, advisories)
/// and the monthly flow (certificates, permissions, security logs) run it.
///
/// Each part runs only when what it reads is configured; the OS-update check runs unless
/// `os_updates = false` (on a non-Debian host it is Unknown, saying so).
///
/// ```toml
/// [security]
/// cert_paths = ["/etc/ssl/kyb-platform"]
/// endpoints = ["127.0.0.1:443=app.kyb.example"]
/// audit_roots = ["/opt/kyb-platform", "/etc/kyb-platform"]
/// service_user = "kyb"
/// auth_logs = ["/var/log/auth.log"]
/// cargo_lock = "/opt/kyb-platform/Cargo.lock"
/// advisory_db = "/var/lib/kyb-maint/advisory-db"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SecuritySection {
    /// PEM files, or directories whose `.pem`, `.crt` and `.cer` files are read (every
    /// certificate of each chain; symlinks inside a directory are not followed). Leave empty,
    /// with no `endpoints` either, and no certificate is checked.
    pub cert_paths: Vec<PathBuf>,
    /// Live TLS endpoints whose certificate chain is fetched and verified: `"host:port"`, or
    /// `"host:port=sni"` to ask for and verify another name than the host; an IPv6 host in
    /// brackets (`"[::1]:443"`).
    pub endpoints: Vec<String>,
    /// Days left before a certificate expires at which it is Warn and Crit; lower is worse, so
    /// `warn` is at or above `crit`, and neither is negative. An expired or not yet valid
    /// certificate is always Crit.
    pub cert_days: Thresholds,
    /// A PEM bundle of the CAs that endpoint chains (and an `https` `crate_index`) are verified
    /// against.
    pub ca_bundle: PathBuf,
    /// Deadline of each TLS connection and handshake, of `journalctl`, and of each
    /// `crate_index` request, in milliseconds (1 to 86400000).
    pub timeout_ms: TimeoutMs,
    /// Trees the permission audit walks. Leave empty and permissions are not audited.
    pub audit_roots: Vec<PathBuf>,
    /// Files under `audit_roots` not owned by this user (a name, or a uid) are reported. Leave
    /// out and owners are not checked.
    pub service_user: Option<String>,
    /// Files under `audit_roots` not owned by this group (a name, or a gid) are reported. Leave
    /// out and groups are not checked.
    pub service_group: Option<String>,
    /// The permission walk stops after this many milliseconds (1 to 86400000), and says so.
    pub audit_time_limit_ms: TimeoutMs,
    /// `auth.log`-style files to scan; their rotated parts beside them (`.1`, `.2.gz`...) are
    /// read too. Leave empty, with no `journalctl` either, and no log is scanned.
    pub auth_logs: Vec<PathBuf>,
    /// The `journalctl` to run to scan the journal too, e.g. `"journalctl"` (looked up in
    /// `PATH`). Leave out and the journal is not read.
    pub journalctl: Option<PathBuf>,
    /// How far back the log scan looks, in hours (1 to 8784, a leap year).
    pub log_window_hours: u64,
    /// Failed logins from one address within `burst_seconds` that make a burst (at least 1).
    pub burst_count: usize,
    /// The span, in seconds, that `burst_count` failures must fall in to make a burst (at
    /// least 1).
    pub burst_seconds: i64,
    /// Case-insensitive substrings that mark a log line as suspicious.
    pub suspicious_patterns: Vec<String>,
    /// `false` switches the OS-update check off: the weekly flow and `kyb-secaudit updates`
    /// report it Ok, "switched off", and run no `apt-get` (for hosts whose updates another tool
    /// manages).
    pub os_updates: bool,
    /// The `apt-get` to run, as `apt-get -s upgrade` (a simulation); a bare name is looked up in
    /// `PATH`.
    pub apt_get: PathBuf,
    /// The `os-release` file that tells a Debian-family host.
    pub os_release: PathBuf,
    /// apt's package lists directory, whose age says how fresh the simulation is.
    pub apt_lists: PathBuf,
    /// Package lists older than this many days make the result a Warn: run `apt-get update`.
    pub apt_lists_max_age_days: u64,
    /// The weekly flow installs pending security updates (`apt-get install --only-upgrade`),
    /// inside a `[window]`.
    pub apply_updates: bool,
    /// Deadline of the `apt-get` simulation and of an install, in milliseconds (1 to 86400000).
    pub apt_timeout_ms: TimeoutMs,
    /// The platform's `Cargo.lock`, whose crates are looked up in `advisory_db`. Set both or
    /// neither; leave both out and no advisory is checked.
    pub cargo_lock: Option<PathBuf>,
    /// A checkout of the RustSec advisory database. Set together with `cargo_lock`.
    pub advisory_db: Option<PathBuf>,
    /// An advisory database not updated in this many days is reported stale: its silence proves
    /// little.
    pub advisory_max_age_days: u64,
    /// The platform's `Cargo.toml`: its direct dependencies are compared with the newest release
    /// in `crate_index`. Needs `cargo_lock` (and so `advisory_db`); leave out and nothing is
    /// compared.
    pub cargo_manifest: Option<PathBuf>,
    /// A Cargo sparse index, an `http` or `https` URL with a host; an `https` one is verified
    /// against `ca_bundle`.
    pub crate_index: String,
}

impl Default for SecuritySection {
    fn default() -> SecuritySection {
        SecuritySection {
            cert_paths: Vec::new(),
            endpoints: Vec::new(),
            // check_ssl_cert's defaults: warn 30 days ahead, crit 7; lower is worse.
            cert_days: Thresholds::new(30.0, 7.0),
            ca_bundle: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            timeout_ms: TimeoutMs::ms(10_000),
            audit_roots: Vec::new(),
            service_user: None,
            service_group: None,
            audit_time_limit_ms: TimeoutMs::ms(300_000),
            auth_logs: Vec::new(),
            journalctl: None,
            log_window_hours: 24,
            // fail2ban's sshd defaults: 5 failures within 10 minutes.
            burst_count: 5,
            burst_seconds: 600,
            suspicious_patterns: vec![
                "POSSIBLE BREAK-IN ATTEMPT".into(),
                "Did not receive identification string".into(),
            ],
            os_updates: true,
            apt_get: PathBuf::from("apt-get"),
            os_release: PathBuf::from("/etc/os-release"),
            apt_lists: PathBuf::from("/var/lib/apt/lists"),
            apt_lists_max_age_days: 7,
            apply_updates: false,
            apt_timeout_ms: TimeoutMs::ms(600_000),
            cargo_lock: None,
            advisory_db: None,
            advisory_max_age_days: 7,
            cargo_manifest: None,
            crate_index: "https://index.crates.io/".into(),
        }
    }
}

/// The longest `log_window_hours`: a leap year.
const MAX_LOG_WINDOW_HOURS: u64 = 24 * 366;

impl SecuritySection {
    /// Checks what the types do not: falling `cert_days`, `endpoints` that parse, the log scan's
    /// ranges, and the advisory keys that go together.
    pub fn validate(&self) -> Result<(), FieldError> {
        let t = self.cert_days;
        // Today's wording, not validate_falling()'s: "fewer days left" says which way is worse.
        Thresholds::new(t.crit, t.warn).validate().map_err(|_| {
            FieldError::new(
                "cert_days",
                format!("warn ({}) must not be below crit ({}): fewer days left is worse", t.warn, t.crit),
            )
        })?;
        if t.crit < 0.0 {
            return Err(FieldError::new("cert_days", "must not be negative"));
        }
        if let Some(e) = self.endpoints.iter().find(|e| parse_endpoint(e).is_none()) {
            return Err(FieldError::new("endpoints", format!("`{e}` is not `host:port` or `host:port=sni`")));
        }
        if self.log_window_hours == 0 || self.log_window_hours > MAX_LOG_WINDOW_HOURS {
            return Err(FieldError::new("log_window_hours", "must be between 1 and 8784"));
        }
        if self.burst_count == 0 || self.burst_seconds <= 0 {
            return Err(FieldError::new("burst_count", "burst_count and burst_seconds must be at least 1"));
        }
        if self.cargo_lock.is_some() != self.advisory_db.is_some() {
            return Err(FieldError::new(
                "cargo_lock",
                "cargo_lock and advisory_db go together: set both or neither",
            ));
        }
        if self.cargo_manifest.is_some() {
            if self.cargo_lock.is_none() {
                return Err(FieldError::new("cargo_manifest", "needs cargo_lock (and advisory_db) too"));
            }
            let index = &self.crate_index;
            let host = index.strip_prefix("https://").or_else(|| index.strip_prefix("http://"));
            if host.is_none_or(|h| h.split('/').next().is_none_or(str::is_empty)) {
                return Err(FieldError::new("crate_index", format!("`{index}` is not an http(s) URL")));
            }
        }
        Ok(())
    }

    /// Makes the relative files the audits read absolute against `base`: `cert_paths`,
    /// `ca_bundle`, `audit_roots`, `auth_logs`, `cargo_lock`, `advisory_db`, `cargo_manifest`.
    /// The programs (`apt_get`, `journalctl`) and the system's own files (`os_release`,
    /// `apt_lists`) are left as given.
    pub fn resolve_paths(&mut self, base: &Path) {
        for paths in [&mut self.cert_paths, &mut self.audit_roots, &mut self.auth_logs] {
            for p in paths.iter_mut() {
                *p = resolve_path(base, p);
            }
        }
        self.ca_bundle = resolve_path(base, &self.ca_bundle);
        for path in [&mut self.cargo_lock, &mut self.advisory_db, &mut self.cargo_manifest] {
            *path = path.take().map(|p| resolve_path(base, &p));
        }
    }

    /// The certificate check; None without `cert_paths` and `endpoints`.
    pub fn certs(&self) -> Option<CertConfig> {
        (!self.cert_paths.is_empty() || !self.endpoints.is_empty()).then(|| CertConfig {
            paths: self.cert_paths.clone(),
            endpoints: self.endpoints.iter().filter_map(|e| parse_endpoint(e)).collect(),
            warn_days: self.cert_days.warn,
            crit_days: self.cert_days.crit,
            ca_bundle: self.ca_bundle.clone(),
            timeout_ms: self.timeout_ms.get(),
        })
    }

    /// The permission audit, with `service_user` and `service_group` looked up in `/etc/passwd`
    /// and `/etc/group`; None without `audit_roots`. `Err` (key `service_user` or
    /// `service_group`) names one that does not exist.
    pub fn perms(&self) -> Result<Option<PermConfig>, FieldError> {
        if self.audit_roots.is_empty() {
            return Ok(None);
        }
        let lookup =
            |key: &str, name: &Option<String>, id: fn(&str) -> Result<u32, kyb_core::users::LookupError>| {
                name.as_deref().map(|n| id(n).map_err(|e| FieldError::new(key, e.to_string()))).transpose()
            };
        Ok(Some(PermConfig {
            roots: self.audit_roots.clone(),
            owner_uid: lookup("service_user", &self.service_user, kyb_core::users::uid)?,
            group_gid: lookup("service_group", &self.service_group, kyb_core::users::gid)?,
            time_limit_ms: self.audit_time_limit_ms.get(),
        }))
    }

    /// The log scan; None without `auth_logs` and `journalctl`.
    pub fn log_scan(&self) -> Option<LogScanConfig> {
        (!self.auth_logs.is_empty() || self.journalctl.is_some()).then(|| LogScanConfig {
            files: self.auth_logs.clone(),
            journalctl: self.journalctl.clone(),
            window_hours: self.log_window_hours,
            burst_count: self.burst_count,
            burst_seconds: self.burst_seconds,
            patterns: self.suspicious_patterns.clone(),
            timeout_ms: self.timeout_ms.get(),
        })
    }

    /// The OS-update check; None when switched off (`os_updates = false`). Whether it may
    /// install, and whether it is a dry run, the run says.
    pub fn updates(&self) -> Option<UpdatesConfig> {
        self.os_updates.then(|| UpdatesConfig {
            apt_get: self.apt_get.clone(),
            os_release: self.os_release.clone(),
            lists_dir: self.apt_lists.clone(),
            lists_max_age_days: self.apt_lists_max_age_days,
            apply: self.apply_updates,
            timeout_ms: self.apt_timeout_ms.get(),
        })
    }

    /// The advisory scan; None without `cargo_lock` and `advisory_db`.
    pub fn advisories(&self) -> Option<AdvisoryConfig> {
        let (lockfile, database) = self.cargo_lock.as_ref().zip(self.advisory_db.as_ref())?;
        Some(AdvisoryConfig {
            lockfile: lockfile.clone(),
            database: database.clone(),
            max_age_days: self.advisory_max_age_days,
        })
    }

    /// The dependency audit the flows run: the advisory scan, with the out-of-date check when
    /// `cargo_manifest` is set; None without `cargo_lock` and `advisory_db`.
    pub fn advisories_task(&self) -> Option<AdvisoriesTask> {
        Some(AdvisoriesTask { advisories: self.advisories()?, outdated: self.outdated() })
    }

    /// The out-of-date check of direct dependencies; None without `cargo_manifest` (or without
    /// the advisory keys it needs).
    pub fn outdated(&self) -> Option<OutdatedConfig> {
        let manifest = self.cargo_manifest.as_ref()?;
        let advisories = self.advisories()?;
        Some(OutdatedConfig {
            manifest: manifest.clone(),
            lockfile: advisories.lockfile,
            index_url: self.crate_index.clone(),
            ca_bundle: self.ca_bundle.clone(),
            timeout_ms: self.timeout_ms.get(),
        })
    }
}

/// `host:port` or `host:port=sni`; an IPv6 host in brackets.
fn parse_endpoint(text: &str) -> Option<Endpoint> {
    let (addr, sni) = match text.split_once('=') {
        Some((a, s)) if !s.is_empty() => (a, Some(s.to_owned())),
        Some(_) => return None,
        None => (text, None),
    };
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(Endpoint { host: host.to_owned(), port: port.parse().ok()?, server_name: sni })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> SecuritySection {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn invalid(text: &str) -> FieldError {
        section(text).validate().unwrap_err()
    }

    #[test]
    fn defaults_are_the_documented_numbers() {
        let s = section("");
        assert_eq!(s, SecuritySection::default());
        assert_eq!(s.cert_days, Thresholds::new(30.0, 7.0));
        assert_eq!(s.ca_bundle, Path::new("/etc/ssl/certs/ca-certificates.crt"));
        assert_eq!(s.timeout_ms.get(), 10_000);
        assert_eq!(s.audit_time_limit_ms.get(), 300_000);
        assert_eq!((s.log_window_hours, s.burst_count, s.burst_seconds), (24, 5, 600));
        assert_eq!(
            s.suspicious_patterns,
            ["POSSIBLE BREAK-IN ATTEMPT", "Did not receive identification string"]
        );
        assert!(s.os_updates && !s.apply_updates);
        assert_eq!(s.apt_get, Path::new("apt-get"));
        assert_eq!(s.os_release, Path::new("/etc/os-release"));
        assert_eq!(s.apt_lists, Path::new("/var/lib/apt/lists"));
        assert_eq!((s.apt_lists_max_age_days, s.advisory_max_age_days), (7, 7));
        assert_eq!(s.apt_timeout_ms.get(), 600_000);
        assert_eq!(s.crate_index, "https://index.crates.io/");
        assert!(s.cert_paths.is_empty() && s.endpoints.is_empty() && s.audit_roots.is_empty());
        assert!(s.auth_logs.is_empty() && s.journalctl.is_none());
        assert!(s.service_user.is_none() && s.service_group.is_none());
        assert!(s.cargo_lock.is_none() && s.advisory_db.is_none() && s.cargo_manifest.is_none());
        assert_eq!(s.validate(), Ok(()));
    }

    const FULL: &str = r#"
cert_paths = ["certs", "/etc/ssl/kyb.pem"]
endpoints = ["127.0.0.1:443=app.kyb.example", "[::1]:8443", "db.internal:5432"]
cert_days = { warn = 21, crit = 3 }
ca_bundle = "ca.pem"
timeout_ms = 2500
audit_roots = ["/opt/kyb-platform", "etc"]
service_user = "0"
service_group = "0"
audit_time_limit_ms = 60000
auth_logs = ["log/auth.log"]
journalctl = "journalctl"
log_window_hours = 48
burst_count = 3
burst_seconds = 120
suspicious_patterns = ["Invalid user"]
os_updates = false
apt_get = "/usr/bin/apt-get"
os_release = "/usr/lib/os-release"
apt_lists = "/var/lib/apt/lists"
apt_lists_max_age_days = 3
apply_updates = true
apt_timeout_ms = 900000
cargo_lock = "platform/Cargo.lock"
advisory_db = "/var/lib/kyb-maint/advisory-db"
advisory_max_age_days = 14
cargo_manifest = "platform/Cargo.toml"
crate_index = "http://index.internal/crates/"
"#;

    #[test]
    fn a_full_section_round_trips() {
        let s = section(FULL);
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.cert_days, Thresholds::new(21.0, 3.0));
        assert_eq!(s.timeout_ms.get(), 2500);
        assert_eq!(s.journalctl.as_deref(), Some(Path::new("journalctl")));
        assert_eq!(s.burst_seconds, 120);
        assert!(!s.os_updates && s.apply_updates);
        assert_eq!(s.crate_index, "http://index.internal/crates/");
        let again: SecuritySection = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn unknown_keys_and_bad_timeouts_are_refused() {
        assert!(toml::from_str::<SecuritySection>("cert_day = { warn = 1, crit = 0 }").is_err());
        let err = toml::from_str::<SecuritySection>("apt_timeout_ms = 0").unwrap_err();
        assert!(err.message().contains("between 1 and 86400000"), "{err}");
    }

    #[test]
    fn every_bad_value_names_its_key() {
        for (text, key, message) in [
            (
                "cert_days = { warn = 5, crit = 10 }",
                "cert_days",
                "warn (5) must not be below crit (10): fewer days left is worse",
            ),
            ("cert_days = { warn = 5, crit = -1 }", "cert_days", "must not be negative"),
            (
                "cert_days = { warn = nan, crit = 1 }",
                "cert_days",
                "warn (NaN) must not be below crit (1): fewer days left is worse",
            ),
            (
                "endpoints = [\"a:1\", \"no-port\"]",
                "endpoints",
                "`no-port` is not `host:port` or `host:port=sni`",
            ),
            ("endpoints = [\"a:443=\"]", "endpoints", "`a:443=` is not `host:port` or `host:port=sni`"),
            ("endpoints = [\":443\"]", "endpoints", "`:443` is not `host:port` or `host:port=sni`"),
            ("endpoints = [\"a:99999\"]", "endpoints", "`a:99999` is not `host:port` or `host:port=sni`"),
            ("log_window_hours = 0", "log_window_hours", "must be between 1 and 8784"),
            ("log_window_hours = 8785", "log_window_hours", "must be between 1 and 8784"),
            ("burst_count = 0", "burst_count", "burst_count and burst_seconds must be at least 1"),
            ("burst_seconds = 0", "burst_count", "burst_count and burst_seconds must be at least 1"),
            ("burst_seconds = -5", "burst_count", "burst_count and burst_seconds must be at least 1"),
            (
                "advisory_db = \"db\"",
                "cargo_lock",
                "cargo_lock and advisory_db go together: set both or neither",
            ),
            (
                "cargo_lock = \"Cargo.lock\"",
                "cargo_lock",
                "cargo_lock and advisory_db go together: set both or neither",
            ),
            ("cargo_manifest = \"Cargo.toml\"", "cargo_manifest", "needs cargo_lock (and advisory_db) too"),
            (
                "cargo_manifest = \"Cargo.toml\"\ncargo_lock = \"Cargo.lock\"",
                "cargo_lock",
                "cargo_lock and advisory_db go together: set both or neither",
            ),
        ] {
            assert_eq!(invalid(text), FieldError::new(key, message), "{text}");
        }
        let advisories =
            "cargo_manifest = \"Cargo.toml\"\ncargo_lock = \"Cargo.lock\"\nadvisory_db = \"db\"\n";
        for index in ["ftp://index", "https://", "http:///crates", "index.crates.io"] {
            let err = invalid(&format!("{advisories}crate_index = \"{index}\""));
            assert_eq!(err, FieldError::new("crate_index", format!("`{index}` is not an http(s) URL")));
        }
        // Without a manifest the index is never asked, so it is not checked.
        assert_eq!(section("crate_index = \"ftp://index\"").validate(), Ok(()));
        let edges =
            "log_window_hours = 8784\nburst_count = 1\nburst_seconds = 1\ncert_days = { warn = 0, crit = 0 }";
        assert_eq!(section(edges).validate(), Ok(()));
    }

    #[test]
    fn endpoints_parse_hosts_ports_and_names() {
        let ep = |host: &str, port, sni: Option<&str>| Endpoint {
            host: host.into(),
            port,
            server_name: sni.map(Into::into),
        };
        assert_eq!(
            parse_endpoint("127.0.0.1:443=app.kyb.example"),
            Some(ep("127.0.0.1", 443, Some("app.kyb.example")))
        );
        assert_eq!(parse_endpoint("[::1]:8443"), Some(ep("::1", 8443, None)));
        assert_eq!(parse_endpoint("db.internal:5432"), Some(ep("db.internal", 5432, None)));
        for bad in ["no-port", "host:", "host:x", ":443", "[]:443", "a:443=", "a:70000"] {
            assert_eq!(parse_endpoint(bad), None, "{bad}");
        }
    }

    #[test]
    fn resolve_paths_touches_only_the_files_the_audits_read() {
        let mut s = section(FULL);
        s.resolve_paths(Path::new("/etc/kyb"));
        assert_eq!(s.cert_paths, [Path::new("/etc/kyb/certs"), Path::new("/etc/ssl/kyb.pem")]);
        assert_eq!(s.ca_bundle, Path::new("/etc/kyb/ca.pem"));
        assert_eq!(s.audit_roots, [Path::new("/opt/kyb-platform"), Path::new("/etc/kyb/etc")]);
        assert_eq!(s.auth_logs, [Path::new("/etc/kyb/log/auth.log")]);
        assert_eq!(s.cargo_lock.as_deref(), Some(Path::new("/etc/kyb/platform/Cargo.lock")));
        assert_eq!(s.advisory_db.as_deref(), Some(Path::new("/var/lib/kyb-maint/advisory-db")));
        assert_eq!(s.cargo_manifest.as_deref(), Some(Path::new("/etc/kyb/platform/Cargo.toml")));
        let mut relative = section(
            "apt_get = \"bin/apt-get\"\nos_release = \"os-release\"\napt_lists = \"lists\"\njournalctl = \"journalctl\"",
        );
        let before = relative.clone();
        relative.resolve_paths(Path::new("/etc/kyb"));
        assert_eq!(relative.apt_get, before.apt_get);
        assert_eq!(relative.os_release, before.os_release);
        assert_eq!(relative.apt_lists, before.apt_lists);
        assert_eq!(relative.journalctl, before.journalctl);
    }

    #[test]
    fn derivations_carry_every_key() {
        let mut s = section(FULL);
        s.resolve_paths(Path::new("/etc/kyb"));
        let ca = PathBuf::from("/etc/kyb/ca.pem");
        let certs = s.certs().unwrap();
        assert_eq!(
            certs,
            CertConfig {
                paths: vec!["/etc/kyb/certs".into(), "/etc/ssl/kyb.pem".into()],
                endpoints: vec![
                    Endpoint {
                        host: "127.0.0.1".into(),
                        port: 443,
                        server_name: Some("app.kyb.example".into())
                    },
                    Endpoint { host: "::1".into(), port: 8443, server_name: None },
                    Endpoint { host: "db.internal".into(), port: 5432, server_name: None },
                ],
                warn_days: 21.0,
                crit_days: 3.0,
                ca_bundle: ca.clone(),
                timeout_ms: 2500,
            }
        );
        assert_eq!(
            s.perms().unwrap(),
            Some(PermConfig {
                roots: vec!["/opt/kyb-platform".into(), "/etc/kyb/etc".into()],
                owner_uid: Some(0),
                group_gid: Some(0),
                time_limit_ms: 60_000,
            })
        );
        assert_eq!(
            s.log_scan(),
            Some(LogScanConfig {
                files: vec!["/etc/kyb/log/auth.log".into()],
                journalctl: Some("journalctl".into()),
                window_hours: 48,
                burst_count: 3,
                burst_seconds: 120,
                patterns: vec!["Invalid user".into()],
                timeout_ms: 2500,
            })
        );
        assert!(!s.os_updates);
        assert_eq!(s.updates(), None, "switched off");
        assert_eq!(
            SecuritySection { os_updates: true, ..s.clone() }.updates(),
            Some(UpdatesConfig {
                apt_get: "/usr/bin/apt-get".into(),
                os_release: "/usr/lib/os-release".into(),
                lists_dir: "/var/lib/apt/lists".into(),
                lists_max_age_days: 3,
                apply: true,
                timeout_ms: 900_000,
            })
        );
        assert_eq!(
            s.advisories(),
            Some(AdvisoryConfig {
                lockfile: "/etc/kyb/platform/Cargo.lock".into(),
                database: "/var/lib/kyb-maint/advisory-db".into(),
                max_age_days: 14,
            })
        );
        assert_eq!(
            s.outdated(),
            Some(OutdatedConfig {
                manifest: "/etc/kyb/platform/Cargo.toml".into(),
                lockfile: "/etc/kyb/platform/Cargo.lock".into(),
                index_url: "http://index.internal/crates/".into(),
                ca_bundle: ca,
                timeout_ms: 2500,
            })
        );
        assert_eq!(
            s.advisories_task(),
            Some(AdvisoriesTask { advisories: s.advisories().unwrap(), outdated: s.outdated() })
        );
    }

    #[test]
    fn an_empty_section_derives_only_the_update_check() {
        let s = SecuritySection::default();
        assert_eq!((s.certs(), s.perms(), s.log_scan()), (None, Ok(None), None));
        assert_eq!((s.advisories(), s.outdated(), s.advisories_task()), (None, None, None));
        assert!(s.os_updates);
        let u = s.updates().expect("on by default");
        assert_eq!((u.apply, u.timeout_ms), (false, 600_000));
        // The advisory keys alone: the scan without the out-of-date check.
        let scan = section("cargo_lock = \"Cargo.lock\"\nadvisory_db = \"db\"").advisories_task().unwrap();
        assert_eq!(scan.outdated, None);
        // Either source alone is enough for its audit.
        assert_eq!(section("endpoints = [\"a:443\"]").certs().map(|c| c.paths.len()), Some(0));
        assert_eq!(section("journalctl = \"journalctl\"").log_scan().map(|l| l.files.len()), Some(0));
        let perms = section("audit_roots = [\"/opt\"]").perms().unwrap().unwrap();
        assert_eq!((perms.owner_uid, perms.group_gid), (None, None));
    }

    #[test]
    fn an_unknown_service_user_or_group_names_its_key() {
        let user = section("audit_roots = [\"/opt\"]\nservice_user = \"kyb-surely-no-such-user\"");
        assert_eq!(user.validate(), Ok(()), "looked up by perms(), not validate()");
        let err = user.perms().unwrap_err();
        assert_eq!(err.key, "service_user");
        assert!(err.message.contains("kyb-surely-no-such-user"), "{err}");
        let group = section("audit_roots = [\"/opt\"]\nservice_group = \"kyb-surely-no-such-group\"");
        assert_eq!(group.perms().unwrap_err().key, "service_group");
        // Without roots nothing is looked up.
        assert_eq!(section("service_user = \"kyb-surely-no-such-user\"").perms(), Ok(None));
    }
}
