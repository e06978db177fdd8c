//! The four outcomes of a check, in Nagios order.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Outcome of a check. `Ord` is the Nagios numbering (Ok < Warn < Crit < Unknown), which is not
/// severity: combine statuses with [`Status::worst`], never with `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything as expected.
    Ok,
    /// Works, but something needs attention soon.
    Warn,
    /// Broken, or about to break.
    Crit,
    /// The check itself could not tell.
    Unknown,
}

impl Status {
    /// The most severe of `statuses`, or `Ok` when there are none. Severity runs Crit over
    /// Unknown over Warn over Ok: something known to be broken outranks something that could not
    /// be checked, so one Unknown never hides a Crit in a task, flow or headline.
    pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
        statuses.into_iter().max_by_key(|s| s.severity()).unwrap_or(Status::Ok)
    }

    /// Rank for [`Status::worst`]: higher is more severe.
    fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warn => 1,
            Status::Unknown => 2,
            Status::Crit => 3,
        }
    }

    /// The Nagios plugin exit code: 0, 1, 2 or 3.
    pub fn nagios_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warn => 1,
            Status::Crit => 2,
            Status::Unknown => 3,
        }
    }

    /// The Nagios plugin word: OK, WARNING, CRITICAL or UNKNOWN.
    pub fn nagios_label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARNING",
            Status::Crit => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// Short upper-case word for reports: OK, WARN, CRIT, UNKNOWN.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Crit => "CRIT",
            Status::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_ranks_crit_over_unknown_over_warn_over_ok() {
        assert_eq!(Status::worst([]), Status::Ok);
        assert_eq!(Status::worst([Status::Ok, Status::Warn]), Status::Warn);
        assert_eq!(Status::worst([Status::Crit, Status::Warn]), Status::Crit);
        assert_eq!(Status::worst([Status::Crit, Status::Unknown, Status::Ok]), Status::Crit);
        assert_eq!(Status::worst([Status::Unknown, Status::Crit]), Status::Crit);
        assert_eq!(Status::worst([Status::Warn, Status::Unknown, Status::Ok]), Status::Unknown);
    }

    #[test]
    fn codes_and_json() {
        let codes: Vec<u8> = [Status::Ok, Status::Warn, Status::Crit, Status::Unknown]
            .into_iter()
            .map(Status::nagios_code)
            .collect();
        assert_eq!(codes, [0, 1, 2, 3]);
        assert_eq!(serde_json::to_string(&Status::Crit).unwrap(), "\"crit\"");
    }
}
