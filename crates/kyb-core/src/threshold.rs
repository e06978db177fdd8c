//! Warning and critical levels for a number where higher is worse.

use crate::Status;
use serde::{Deserialize, Serialize};

/// A warning and a critical level; a value at or above a level has that status.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// At or above this the status is Warn.
    pub warn: f64,
    /// At or above this the status is Crit.
    pub crit: f64,
}

/// Thresholds that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdsError {
    /// A level is NaN or infinite.
    #[error("thresholds must be finite numbers (warn {warn}, crit {crit})")]
    NotFinite {
        /// The warning level given.
        warn: f64,
        /// The critical level given.
        crit: f64,
    },
    /// The warning level is above the critical one.
    #[error("warn ({warn}) must not be above crit ({crit})")]
    WarnAboveCrit {
        /// The warning level given.
        warn: f64,
        /// The critical level given.
        crit: f64,
    },
    /// Lower is worse, and the warning level is below the critical one.
    #[error("warn ({warn}) must not be below crit ({crit}): lower is worse here")]
    WarnBelowCrit {
        /// The warning level given.
        warn: f64,
        /// The critical level given.
        crit: f64,
    },
    /// Lower is worse, and the critical level is below zero.
    #[error("must not be negative (crit {crit})")]
    Negative {
        /// The critical level given.
        crit: f64,
    },
}

impl Thresholds {
    /// Levels for warn and crit.
    pub const fn new(warn: f64, crit: f64) -> Thresholds {
        Thresholds { warn, crit }
    }

    /// Checks that both levels are finite and warn <= crit.
    pub fn validate(&self) -> Result<(), ThresholdsError> {
        let (warn, crit) = (self.warn, self.crit);
        if !warn.is_finite() || !crit.is_finite() {
            return Err(ThresholdsError::NotFinite { warn, crit });
        }
        if warn > crit {
            return Err(ThresholdsError::WarnAboveCrit { warn, crit });
        }
        Ok(())
    }

    /// Checks levels where lower is worse (days left, cache hit): both finite, not negative, and
    /// warn at or above crit.
    pub fn validate_falling(&self) -> Result<(), ThresholdsError> {
        Thresholds::new(self.crit, self.warn).validate().map_err(|e| match e {
            ThresholdsError::NotFinite { .. } => {
                ThresholdsError::NotFinite { warn: self.warn, crit: self.crit }
            }
            ThresholdsError::WarnAboveCrit { .. }
            | ThresholdsError::WarnBelowCrit { .. }
            | ThresholdsError::Negative { .. } => {
                ThresholdsError::WarnBelowCrit { warn: self.warn, crit: self.crit }
            }
        })?;
        if self.crit < 0.0 {
            return Err(ThresholdsError::Negative { crit: self.crit });
        }
        Ok(())
    }

    /// Status of `value`; NaN is Unknown.
    pub fn classify(&self, value: f64) -> Status {
        if value.is_nan() {
            Status::Unknown
        } else if value >= self.crit {
            Status::Crit
        } else if value >= self.warn {
            Status::Warn
        } else {
            Status::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_edges() {
        let t = Thresholds::new(80.0, 90.0);
        assert_eq!(t.classify(79.9), Status::Ok);
        assert_eq!(t.classify(80.0), Status::Warn);
        assert_eq!(t.classify(90.0), Status::Crit);
        assert_eq!(t.classify(f64::NAN), Status::Unknown);
    }

    #[test]
    fn validate_rejects_inverted_and_nan() {
        assert!(Thresholds::new(90.0, 80.0).validate().is_err());
        assert!(Thresholds::new(f64::NAN, 80.0).validate().is_err());
        assert!(Thresholds::new(80.0, 80.0).validate().is_ok());
    }

    #[test]
    fn falling_levels_want_warn_above_crit() {
        assert!(Thresholds::new(30.0, 7.0).validate_falling().is_ok());
        let err = Thresholds::new(7.0, 30.0).validate_falling().unwrap_err().to_string();
        assert_eq!(err, "warn (7) must not be below crit (30): lower is worse here");
        assert!(Thresholds::new(5.0, -1.0).validate_falling().is_err());
        assert!(Thresholds::new(f64::NAN, 1.0).validate_falling().is_err());
    }
}
