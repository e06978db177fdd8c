//! Dependency advisories: the crates of a `Cargo.lock` against a RustSec advisory database
//! checked out in a local directory (`crates/<name>/RUSTSEC-*.md`, TOML front matter), and
//! [`advisories`], the scan with the out-of-date check beside it.

use crate::{OutdatedConfig, SecAuditError, check_outdated};
use kyb_core::{Check, Findings, RunCtx, Status};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to scan against what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryConfig {
    /// The platform's `Cargo.lock`.
    pub lockfile: PathBuf,
    /// A checkout of the RustSec advisory database.
    pub database: PathBuf,
    /// A database not updated in this many days is stale: its silence proves little.
    pub max_age_days: u64,
}

/// One advisory that applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `RUSTSEC-YYYY-NNNN`.
    pub id: String,
    /// The crate.
    pub package: String,
    /// The locked version it applies to.
    pub version: String,
    /// The advisory's title.
    pub title: String,
    /// Version requirements that are patched.
    pub patched: Vec<String>,
    /// `informational` (unmaintained, unsound...) when the advisory says so; None: a
    /// vulnerability.
    pub informational: Option<String>,
}

/// What the scan found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisoryReport {
    /// Advisories that apply to a locked version.
    pub applicable: Vec<Finding>,
    /// Packages scanned.
    pub packages: usize,
    /// Advisories read.
    pub advisories: usize,
    /// Checks: one per applicable advisory, `database`, and `advisories` (the summary, or Unknown
    /// when the scan could not run).
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(AdvisoryReport);

/// The dependency audit as the weekly flow and `kyb-secaudit advisories` run it: the advisory
/// scan, and the out-of-date check when a manifest is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoriesTask {
    /// The advisory scan.
    pub advisories: AdvisoryConfig,
    /// The out-of-date check of direct dependencies; None: not checked.
    pub outdated: Option<OutdatedConfig>,
}

/// What [`advisories`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisoriesReport {
    /// Advisories that apply to a locked version.
    pub applicable: Vec<Finding>,
    /// Packages scanned.
    pub packages: usize,
    /// Advisories read.
    pub advisories: usize,
    /// Direct dependencies behind the newest release; None when not checked.
    pub outdated: Option<Vec<crate::Outdated>>,
    /// Checks: the advisory scan's ([`AdvisoryReport`]), then the out-of-date check's
    /// ([`crate::OutdatedReport`]).
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(AdvisoriesReport);

/// Scans the lockfile against the advisory database and, with [`AdvisoriesTask::outdated`],
/// looks up the direct dependencies in the index at the same time. It only reads: a dry run is
/// the same run. `Err` only when the scanning thread fails.
pub async fn advisories(cfg: &AdvisoriesTask, ctx: &RunCtx) -> Result<AdvisoriesReport, SecAuditError> {
    let outdated = async {
        match &cfg.outdated {
            Some(o) => {
                let Ok(report) = check_outdated(o, ctx).await;
                Some(report)
            }
            None => None,
        }
    };
    let (scan, outdated) = tokio::join!(scan_advisories(&cfg.advisories, ctx), outdated);
    let scan = scan?;
    let mut findings = scan.findings;
    let outdated = outdated.map(|o| {
        findings.checks.extend(o.findings.checks);
        o.outdated
    });
    Ok(AdvisoriesReport {
        applicable: scan.applicable,
        packages: scan.packages,
        advisories: scan.advisories,
        outdated,
        findings,
    })
}

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
}

#[derive(Deserialize)]
struct AdvisoryFile {
    advisory: AdvisoryMeta,
    #[serde(default)]
    versions: Versions,
}

#[derive(Deserialize)]
struct AdvisoryMeta {
    id: String,
    package: String,
    #[serde(default)]
    informational: Option<String>,
    #[serde(default)]
    withdrawn: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
struct Versions {
    #[serde(default)]
    patched: Vec<String>,
    #[serde(default)]
    unaffected: Vec<String>,
}

/// Scans the lockfile's crates.io packages against the database (on a blocking thread). It only
/// reads: a dry run is the same run. `Err` only when the scanning thread fails.
pub async fn scan_advisories(cfg: &AdvisoryConfig, _ctx: &RunCtx) -> Result<AdvisoryReport, SecAuditError> {
    let cfg = cfg.clone();
    crate::blocking("advisory scan", move || scan(&cfg)).await
}

fn scan(cfg: &AdvisoryConfig) -> AdvisoryReport {
    let mut report =
        AdvisoryReport { applicable: Vec::new(), packages: 0, advisories: 0, findings: Findings::default() };
    let unknown = |why: String| Check::new("advisories", Status::Unknown, format!("not scanned: {why}"));
    let crates_dir = cfg.database.join("crates");
    if !crates_dir.is_dir() {
        report.findings.checks.push(unknown(format!(
            "no advisory database at {} (expected a crates/ directory)",
            cfg.database.display()
        )));
        return report;
    }
    let lock = match crate::read_text(&cfg.lockfile, crate::MANIFEST_LIMIT).and_then(|t| {
        toml::from_str::<Lock>(&t)
            .map_err(|e| format!("cannot read {}: {}", cfg.lockfile.display(), e.message()))
    }) {
        Ok(l) => l,
        Err(why) => {
            report.findings.checks.push(unknown(why));
            return report;
        }
    };
    let locked: Vec<&LockedPackage> = lock
        .package
        .iter()
        .filter(|p| p.source.as_deref().is_some_and(|s| s.starts_with("registry+")))
        .collect();
    report.packages = locked.len();
    let mut by_name: BTreeMap<&str, Vec<&LockedPackage>> = BTreeMap::new();
    for p in &locked {
        by_name.entry(p.name.as_str()).or_default().push(p);
    }
    let mut unreadable = Vec::new();
    for (name, packages) in &by_name {
        // A package name is a path component below crates/: nothing else is read.
        let plain =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain {
            unreadable
                .push(format!("package name {name:?} in {} is not a crate name", cfg.lockfile.display()));
            continue;
        }
        let Ok(entries) = std::fs::read_dir(crates_dir.join(name)) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "md" && x != "toml") {
                continue;
            }
            let parsed = crate::read_text(&path, crate::FILE_LIMIT).and_then(|t| parse_advisory(&t));
            let (adv, title) = match parsed {
                Ok(a) => a,
                Err(why) => {
                    unreadable.push(format!("{}: {why}", path.display()));
                    continue;
                }
            };
            report.advisories += 1;
            if adv.advisory.withdrawn.is_some() || adv.advisory.package != *name {
                continue;
            }
            for p in packages {
                let Ok(version) = Version::parse(&p.version) else { continue };
                let matches = |reqs: &[String]| {
                    reqs.iter().any(|r| VersionReq::parse(r).is_ok_and(|req| req.matches(&version)))
                };
                if matches(&adv.versions.patched) || matches(&adv.versions.unaffected) {
                    continue;
                }
                report.applicable.push(Finding {
                    id: adv.advisory.id.clone(),
                    package: p.name.clone(),
                    version: p.version.clone(),
                    title: title.clone(),
                    patched: adv.versions.patched.clone(),
                    informational: adv.advisory.informational.clone(),
                });
            }
        }
    }
    report.applicable.sort_by(|a, b| (&a.package, &a.id).cmp(&(&b.package, &b.id)));
    for f in &report.applicable {
        let fix = if f.patched.is_empty() {
            "no fixed version".to_owned()
        } else {
            format!("fixed in {}", f.patched.join(" or "))
        };
        let (status, kind) = match &f.informational {
            Some(kind) => (Status::Warn, format!(" ({kind})")),
            None => (Status::Crit, String::new()),
        };
        report.findings.checks.push(Check::new(
            format!("{} {}", f.package, f.version),
            status,
            format!("{}{kind}: {}; {fix}", f.id, f.title),
        ));
    }
    report.findings.checks.push(database_age(cfg));
    if !unreadable.is_empty() {
        report.findings.checks.push(Check::new(
            "database",
            Status::Warn,
            format!("{} advisories could not be read: {}", unreadable.len(), unreadable.join("; ")),
        ));
    }
    let vulnerable = report.applicable.iter().filter(|f| f.informational.is_none()).count();
    report.findings.checks.push(Check::new(
        "advisories",
        if vulnerable > 0 { Status::Crit } else { Status::Ok },
        format!(
            "{} packages against {} advisories: {vulnerable} vulnerable, {} informational",
            report.packages,
            report.advisories,
            report.applicable.len() - vulnerable
        ),
    ));
    report
}

/// The TOML front matter (a ```toml fence, or a whole `.toml` file) and the first `# ` heading.
fn parse_advisory(text: &str) -> Result<(AdvisoryFile, String), String> {
    let (front, body) = match text.split_once("```toml") {
        Some((_, rest)) => rest.split_once("```").ok_or("unterminated ```toml block")?,
        None => (text, ""),
    };
    let adv: AdvisoryFile = toml::from_str(front).map_err(|e| toml_reason(&e))?;
    let title = body.lines().find_map(|l| l.strip_prefix("# ")).unwrap_or("(no title)").trim().to_owned();
    Ok((adv, title))
}

/// Why the front matter is not an advisory, on one line: the TOML parser's message, or where it
/// stopped when it gives none (`a=` has no message of its own).
fn toml_reason(e: &toml::de::Error) -> String {
    match (e.message().trim(), e.span()) {
        ("", Some(at)) => format!("invalid TOML at byte {}", at.start),
        ("", None) => "invalid TOML".to_owned(),
        (message, _) => message.to_owned(),
    }
}

/// The database's age: the newest of its git `FETCH_HEAD`/`HEAD` and its advisory files.
fn database_age(cfg: &AdvisoryConfig) -> Check {
    let mut newest = None;
    let mut consider = |p: &Path| {
        if let Ok(t) = std::fs::metadata(p).and_then(|m| m.modified()) {
            newest = Some(newest.map_or(t, |n: std::time::SystemTime| n.max(t)));
        }
    };
    consider(&cfg.database.join(".git/FETCH_HEAD"));
    consider(&cfg.database.join(".git/HEAD"));
    for dir in std::fs::read_dir(cfg.database.join("crates")).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            consider(&f.path());
        }
    }
    let days = newest.and_then(|t| t.elapsed().ok()).map_or(f64::INFINITY, |d| d.as_secs_f64() / 86_400.0);
    if days > cfg.max_age_days as f64 {
        Check::new(
            "database",
            Status::Warn,
            format!(
                "last updated {days:.0} days ago (more than {}): advisories since then are missed; update the checkout",
                cfg.max_age_days
            ),
        )
    } else {
        Check::new("database", Status::Ok, format!("updated {days:.1} days ago"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A TOML basic string holding `s`, escapes and all.
    fn quoted(s: &str) -> String {
        toml::Value::String(s.to_owned()).to_string()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn any_file_is_an_advisory_or_an_error(text in prop_oneof![
            any::<String>(),
            "(```toml\n|```|\\[advisory\\]\n|\\[versions\\]\n|id = \"x\"\n|package = \"p\"\n|patched = \\[\"\\^1\"\\]\n|# |[a-z =\"]{1,8}|\n){0,20}",
        ]) {
            if let Err(why) = parse_advisory(&text) {
                prop_assert!(!why.is_empty());
            }
        }

        /// A RustSec advisory file reads back as written: id, crate, patched and unaffected
        /// requirements, kind, and the title from the first heading after the front matter.
        #[test]
        fn advisories_read_back(
            id in "RUSTSEC-[0-9]{4}-[0-9]{4}",
            package in "[a-z][a-z0-9_-]{0,20}",
            patched in prop::collection::vec("(>= |\\^|~|=)[0-9]\\.[0-9]{1,2}(\\.[0-9])?", 0..4),
            unaffected in prop::collection::vec("< 0\\.[0-9]", 0..2),
            informational in prop::option::of(prop::sample::select(vec!["unmaintained", "unsound", "notice"])),
            title in "[^\n]{0,60}",
        ) {
            let list = |reqs: &[String]| reqs.iter().map(|r| quoted(r)).collect::<Vec<_>>().join(", ");
            let kind = informational.map_or(String::new(), |k| format!("informational = {}\n", quoted(k)));
            let text = format!(
                "```toml\n[advisory]\nid = {}\npackage = {}\ndate = \"2024-01-01\"\n{kind}\n\
                 [versions]\npatched = [{}]\nunaffected = [{}]\n```\n\n# {title}\n\nDetails.\n",
                quoted(&id),
                quoted(&package),
                list(&patched),
                list(&unaffected),
            );
            let (adv, read_title) = parse_advisory(&text).map_err(TestCaseError::fail)?;
            prop_assert_eq!(adv.advisory.id, id);
            prop_assert_eq!(adv.advisory.package, package);
            prop_assert_eq!(adv.advisory.informational.as_deref(), informational);
            prop_assert_eq!(adv.versions.patched, patched);
            prop_assert_eq!(adv.versions.unaffected, unaffected);
            prop_assert_eq!(read_title, title.trim());
        }
    }
}
