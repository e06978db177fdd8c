//! Number syntax: sample values as Prometheus reads them, timestamps in milliseconds or seconds.

use std::num::IntErrorKind;

/// Why a number token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumberError {
    /// Not a number at all.
    Invalid,
    /// Well-formed but beyond what the type holds.
    OutOfRange,
}

/// A sample value by Go's `strconv.ParseFloat` rules, which Prometheus uses: decimal with an
/// optional exponent, `NaN`, and optionally signed `Inf`/`Infinity`, the words in any case.
pub(crate) fn parse_value(token: &str) -> Result<f64, NumberError> {
    let (negative, unsigned) = match token.as_bytes().first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    };
    if unsigned.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        // Handled here because Rust also takes a signed NaN, which Go refuses.
        return if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
            Ok(if negative { f64::NEG_INFINITY } else { f64::INFINITY })
        } else if unsigned.eq_ignore_ascii_case("nan") && unsigned.len() == token.len() {
            Ok(f64::NAN)
        } else {
            Err(NumberError::Invalid)
        };
    }
    // For decimal forms Rust's grammar is Go's minus what Prometheus refuses anyway (hex floats and
    // `_` separators, which it rejects to stay with the syntax of Go before 1.13).
    let value: f64 = token.parse().map_err(|_| NumberError::Invalid)?;
    if value.is_infinite() {
        // Go reports overflow as an error rather than rounding to infinity.
        return Err(NumberError::OutOfRange);
    }
    Ok(value)
}

/// A timestamp: an integer is milliseconds (text format 0.0.4); a number with a fraction or an
/// exponent is seconds (OpenMetrics) and is rounded to the nearest millisecond.
pub(crate) fn parse_timestamp_ms(token: &str) -> Result<i64, NumberError> {
    if token.bytes().all(|b| b.is_ascii_digit() || b == b'+' || b == b'-') {
        return token.parse::<i64>().map_err(|e| match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => NumberError::OutOfRange,
            _ => NumberError::Invalid,
        });
    }
    let seconds = parse_value(token)?;
    if !seconds.is_finite() {
        return Err(NumberError::Invalid);
    }
    let ms = (seconds * 1000.0).round();
    // -2^63 is exact as f64 and 2^63 is the first value past i64::MAX.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&ms) {
        return Err(NumberError::OutOfRange);
    }
    Ok(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_decimal_forms() {
        for (token, want) in [
            ("0", 0.0),
            ("-0", -0.0),
            ("42", 42.0),
            ("+42", 42.0),
            ("-1.5", -1.5),
            ("1.", 1.0),
            (".5", 0.5),
            ("1e3", 1000.0),
            ("1E3", 1000.0),
            ("1.5e-3", 0.0015),
            ("-2.5E+2", -250.0),
            ("0001", 1.0),
            ("1e-400", 0.0),
            ("1.7976931348623157e308", f64::MAX),
        ] {
            assert_eq!(parse_value(token), Ok(want), "{token}");
        }
        assert!(parse_value("-0").unwrap().is_sign_negative());
    }

    #[test]
    fn values_nan_and_inf_in_any_case() {
        for token in ["NaN", "nan", "NAN", "nAn"] {
            assert!(parse_value(token).unwrap().is_nan(), "{token}");
        }
        for token in ["+Inf", "Inf", "inf", "INF", "+inf", "Infinity", "+infinity", "INFINITY"] {
            assert_eq!(parse_value(token), Ok(f64::INFINITY), "{token}");
        }
        for token in ["-Inf", "-inf", "-INF", "-Infinity", "-infinity"] {
            assert_eq!(parse_value(token), Ok(f64::NEG_INFINITY), "{token}");
        }
    }

    #[test]
    fn values_go_refuses() {
        for token in [
            "", "+", "-", ".", "e3", "1e", "1e+", "1.2.3", "--1", "+-1", "1_000", "0x10", "0x1p3", "+NaN",
            "-nan", "infin", "Infinit", "nanx", "1f", "1 ", " 1", "١", "1e3x", "∞",
        ] {
            assert_eq!(parse_value(token), Err(NumberError::Invalid), "{token:?}");
        }
    }

    #[test]
    fn values_beyond_f64_are_out_of_range() {
        for token in ["1e309", "-1e400", "1.8e308"] {
            assert_eq!(parse_value(token), Err(NumberError::OutOfRange), "{token}");
        }
    }

    #[test]
    fn integer_timestamps_are_milliseconds() {
        assert_eq!(parse_timestamp_ms("1395066363000"), Ok(1_395_066_363_000));
        assert_eq!(parse_timestamp_ms("-5"), Ok(-5));
        assert_eq!(parse_timestamp_ms("+5"), Ok(5));
        assert_eq!(parse_timestamp_ms("0"), Ok(0));
        assert_eq!(parse_timestamp_ms("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_timestamp_ms("9223372036854775808"), Err(NumberError::OutOfRange));
        assert_eq!(parse_timestamp_ms("-"), Err(NumberError::Invalid));
        assert_eq!(parse_timestamp_ms("1-2"), Err(NumberError::Invalid));
    }

    #[test]
    fn float_timestamps_are_seconds() {
        assert_eq!(parse_timestamp_ms("1520879607.789"), Ok(1_520_879_607_789));
        assert_eq!(parse_timestamp_ms("1.5e9"), Ok(1_500_000_000_000));
        assert_eq!(parse_timestamp_ms("0.0005"), Ok(1));
        assert_eq!(parse_timestamp_ms("-1.5"), Ok(-1500));
        assert_eq!(parse_timestamp_ms("1e17"), Err(NumberError::OutOfRange));
        for token in ["NaN", "Inf", "-Inf", "abc", "1.5s", "0x1p3"] {
            assert_eq!(parse_timestamp_ms(token), Err(NumberError::Invalid), "{token}");
        }
    }
}
