//! What the file tasks did (or, in a dry run, would do).

use kyb_core::{Findings, Status};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// One step on the filesystem or a process, done or planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A live log renamed to its rotated name.
    Rename {
        /// The live log.
        from: PathBuf,
        /// The rotated name.
        to: PathBuf,
    },
    /// A fresh live log created.
    Create {
        /// The new file.
        path: PathBuf,
        /// Owner uid.
        uid: u32,
        /// Group gid.
        gid: u32,
        /// Permission bits.
        mode: u32,
    },
    /// The live log copied, then truncated (copytruncate: lossy).
    CopyTruncate {
        /// The live log.
        from: PathBuf,
        /// The copy.
        to: PathBuf,
    },
    /// A signal sent to the writer so it reopens its log.
    Signal {
        /// Process id.
        pid: i32,
        /// Signal name, e.g. `SIGHUP`.
        signal: String,
        /// Where the pid came from.
        source: String,
    },
    /// A rotated file compressed.
    Compress {
        /// The rotated file.
        from: PathBuf,
        /// The `.gz`.
        to: PathBuf,
    },
    /// A file or directory removed.
    Remove {
        /// What was removed.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Rename { from, to } => write!(f, "rename {} -> {}", from.display(), to.display()),
            Action::Create { path, uid, gid, mode } => {
                write!(f, "create {} owner {uid}:{gid} mode {mode:04o}", path.display())
            }
            Action::CopyTruncate { from, to } => write!(
                f,
                "copy {} -> {}, then truncate it (copytruncate: lines written in between are lost)",
                from.display(),
                to.display()
            ),
            Action::Signal { pid, signal, source } => write!(f, "send {signal} to pid {pid} ({source})"),
            Action::Compress { from, to } => write!(f, "compress {} -> {}", from.display(), to.display()),
            Action::Remove { path, reason } => write!(f, "remove {} ({reason})", path.display()),
        }
    }
}

/// Something left alone on purpose, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The entry.
    pub path: PathBuf,
    /// Why it was not touched.
    pub reason: String,
}

/// Counters for the report line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Logs rotated.
    pub rotated_files: u64,
    /// Rotated files compressed.
    pub compressed_files: u64,
    /// Bytes read by compression.
    pub compressed_in_bytes: u64,
    /// Bytes of `.gz` written.
    pub compressed_out_bytes: u64,
    /// Files removed.
    pub deleted_files: u64,
    /// Directories removed.
    pub deleted_dirs: u64,
    /// Bytes freed by removals.
    pub freed_bytes: u64,
}

/// The report of [`rotate`](crate::rotate), [`prune`](crate::prune) or
/// [`clean_temp`](crate::clean_temp).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FilesReport {
    /// One check per log or directory, with a status (rotation adds each log's retention check
    /// after it). `actions` are the entries left alone (`skip PATH (reason)`), then the steps, as
    /// lines: a dry run's whole plan, a run's first 1,000 and how many more. The headline is the
    /// [`totals`], then the checks that are not Ok.
    #[serde(flatten)]
    pub findings: Findings,
    /// Steps done, or planned in a dry run, in order.
    pub steps: Vec<Action>,
    /// Entries left alone, with the reason.
    pub skipped: Vec<Skipped>,
    /// Totals.
    pub counts: Counts,
    /// Nothing was changed.
    pub dry_run: bool,
}

kyb_core::impl_report!(FilesReport);

/// Action lines kept in the report of a run (not of a dry run).
const MAX_ACTION_LINES: usize = 1_000;

impl FilesReport {
    /// An empty report of a run that changes nothing when `dry_run`.
    pub(crate) fn new(dry_run: bool) -> FilesReport {
        FilesReport { dry_run, ..FilesReport::default() }
    }

    pub(crate) fn skip(&mut self, path: PathBuf, reason: impl Into<String>) {
        self.skipped.push(Skipped { path, reason: reason.into() });
    }

    /// Fills in the lines of `findings` from the typed fields: the headline and the action lines.
    pub(crate) fn finish(mut self) -> FilesReport {
        let totals = totals(&self.counts, self.dry_run);
        let bad: Vec<String> = self
            .findings
            .checks
            .iter()
            .filter(|c| c.status != Status::Ok)
            .map(|c| format!("{} {}: {}", c.name, c.status, c.summary))
            .collect();
        self.findings.headline =
            Some(if bad.is_empty() { totals } else { format!("{totals}; {}", bad.join("; ")) });
        let skips = self.skipped.iter().map(|s| format!("skip {} ({})", s.path.display(), s.reason));
        let steps = self.steps.iter().map(ToString::to_string);
        let total = self.skipped.len() + self.steps.len();
        // A plan is shown whole; a run's report keeps the first lines and counts the rest, so that
        // removing 100,000 old files does not make a 100,000-line report.
        let keep = if self.dry_run { total } else { MAX_ACTION_LINES };
        self.findings.actions = skips.chain(steps).take(keep).collect();
        if total > keep {
            self.findings.actions.push(format!("... and {} more", total - keep));
        }
        self
    }
}

/// One line of totals: files rotated, bytes compressed, files deleted and bytes freed (only the
/// parts that are not zero).
pub fn totals(c: &Counts, dry_run: bool) -> String {
    let h = kyb_core::human_bytes;
    let mut parts = Vec::new();
    if c.rotated_files > 0 {
        parts.push(format!("rotated {} file(s)", c.rotated_files));
    }
    if c.compressed_files > 0 {
        parts.push(format!(
            "compressed {} file(s), {} -> {}",
            c.compressed_files,
            h(c.compressed_in_bytes),
            h(c.compressed_out_bytes)
        ));
    }
    if c.deleted_files > 0 || c.deleted_dirs > 0 {
        parts.push(format!(
            "removed {} file(s) and {} dir(s), {} freed",
            c.deleted_files,
            c.deleted_dirs,
            h(c.freed_bytes)
        ));
    }
    let text = if parts.is_empty() { "nothing to do".to_owned() } else { parts.join("; ") };
    if dry_run { format!("would have: {text}") } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_say_only_what_happened_in_binary_units() {
        assert_eq!(totals(&Counts::default(), false), "nothing to do");
        let c = Counts {
            rotated_files: 1,
            compressed_files: 1,
            compressed_in_bytes: 100 * 1024 * 1024,
            compressed_out_bytes: 512,
            ..Counts::default()
        };
        assert_eq!(totals(&c, false), "rotated 1 file(s); compressed 1 file(s), 100.0 MiB -> 512 B");
        let c = Counts { deleted_files: 2, freed_bytes: 1536, ..Counts::default() };
        assert_eq!(totals(&c, true), "would have: removed 2 file(s) and 0 dir(s), 1.5 KiB freed");
    }

    fn removals(n: usize, dry_run: bool) -> FilesReport {
        let mut r = FilesReport::new(dry_run);
        r.skip(PathBuf::from("/l/app.log"), "a mount point; not rotated");
        for i in 0..n {
            r.steps.push(Action::Remove { path: format!("/l/f{i}").into(), reason: "old".into() });
            r.counts.deleted_files += 1;
        }
        r.findings.checks.push(kyb_core::Check::new("rotated /l/app.log", Status::Ok, "fine"));
        r
    }

    #[test]
    fn a_plan_is_shown_whole_and_a_run_keeps_the_first_lines() {
        let plan = removals(1_500, true).finish();
        assert_eq!(plan.findings.actions.len(), 1_501);
        assert_eq!(plan.findings.actions[0], "skip /l/app.log (a mount point; not rotated)");
        assert_eq!(plan.findings.actions[1], "remove /l/f0 (old)");
        assert_eq!(plan.findings.actions[1_500], "remove /l/f1499 (old)");
        assert_eq!(
            plan.findings.headline.as_deref(),
            Some("would have: removed 1500 file(s) and 0 dir(s), 0 B freed")
        );

        let run = removals(1_500, false).finish();
        assert_eq!(run.findings.actions.len(), MAX_ACTION_LINES + 1);
        assert_eq!(run.findings.actions[MAX_ACTION_LINES - 1], "remove /l/f998 (old)");
        assert_eq!(run.findings.actions[MAX_ACTION_LINES], "... and 501 more");
        assert_eq!(run.steps.len(), 1_500, "the typed steps are all kept");
        let small = removals(3, false).finish();
        assert_eq!(small.findings.actions.len(), 4, "{:?}", small.findings.actions);
    }

    #[test]
    fn the_headline_is_the_totals_then_what_is_wrong() {
        let mut r = removals(1, false);
        r.findings.checks.push(kyb_core::Check::new("temp /tmp", Status::Warn, "1 skipped"));
        r.findings.checks.push(kyb_core::Check::new("/l/x.log", Status::Crit, "rotation failed"));
        let r = r.finish();
        assert_eq!(
            r.findings.headline.as_deref(),
            Some(
                "removed 1 file(s) and 0 dir(s), 0 B freed; temp /tmp WARN: 1 skipped; \
                 /l/x.log CRIT: rotation failed"
            )
        );
        assert_eq!(r.findings.status(), Status::Crit);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["actions"][1], "remove /l/f0 (old)", "one `actions` key, of lines");
        assert_eq!(json["steps"][0]["action"], "remove");
        assert_eq!(json["checks"].as_array().map(Vec::len), Some(3));
    }
}
