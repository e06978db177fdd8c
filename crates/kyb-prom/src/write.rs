//! Output for node_exporter's textfile collector: text format 0.0.4, replaced atomically.

use crate::model::{Family, Sample, resolve_family};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// Renders families and samples as text format 0.0.4 that [`parse`](crate::parse) reads back.
///
/// Each family gets its `# HELP` (if any) and `# TYPE` lines followed by its samples, matched as
/// [`Exposition::family_of`](crate::Exposition::family_of) does; samples of no family come last,
/// grouped by name. Timestamps are left out because the textfile collector refuses them, and units
/// because 0.0.4 has no `# UNIT` line. A second family of the same name is skipped, as a second
/// `# TYPE` would make the file invalid. Names are written as given: check them with
/// [`is_metric_name`](crate::is_metric_name) and [`is_label_name`](crate::is_label_name). The
/// format has no escape for a carriage return, so one ending a HELP text reads back as a CRLF
/// line end and is lost.
pub fn render_textfile(families: &[Family], samples: &[Sample]) -> String {
    let mut family_index: HashMap<&str, usize> = HashMap::with_capacity(families.len());
    for (index, family) in families.iter().enumerate() {
        family_index.entry(family.name.as_str()).or_insert(index);
    }
    let mut by_family: Vec<Vec<&Sample>> = vec![Vec::new(); families.len()];
    let mut orphan_index: HashMap<&str, usize> = HashMap::new();
    let mut orphans: Vec<Vec<&Sample>> = Vec::new();
    for sample in samples {
        let found = resolve_family(&sample.name, families, |name| family_index.get(name).copied());
        match found {
            Some(index) => by_family[index].push(sample),
            None => {
                let group = *orphan_index.entry(&sample.name).or_insert_with(|| {
                    orphans.push(Vec::new());
                    orphans.len() - 1
                });
                orphans[group].push(sample);
            }
        }
    }

    let mut out = String::with_capacity(64 * (families.len() + samples.len()));
    for (index, family) in families.iter().enumerate() {
        if family_index.get(family.name.as_str()) != Some(&index) {
            continue;
        }
        if let Some(help) = &family.help {
            out.push_str("# HELP ");
            out.push_str(&family.name);
            out.push(' ');
            push_escaped(&mut out, help, false);
            out.push('\n');
        }
        out.push_str("# TYPE ");
        out.push_str(&family.name);
        out.push(' ');
        out.push_str(family.kind.as_str());
        out.push('\n');
        for sample in &by_family[index] {
            push_sample(&mut out, sample);
        }
    }
    for sample in orphans.iter().flatten() {
        push_sample(&mut out, sample);
    }
    out
}

fn push_sample(out: &mut String, sample: &Sample) {
    out.push_str(&sample.name);
    if !sample.labels.is_empty() {
        out.push('{');
        for (i, (name, value)) in sample.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push_str("=\"");
            push_escaped(out, value, true);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    push_value(out, sample.value);
    out.push('\n');
}

/// Escapes `\` and line feeds, and `"` in label values; 0.0.4 HELP text must not escape quotes.
fn push_escaped(out: &mut String, text: &str, quotes: bool) {
    let special = |ch: char| ch == '\\' || ch == '\n' || (quotes && ch == '"');
    if !text.contains(special) {
        out.push_str(text);
        return;
    }
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            _ => out.push(ch),
        }
    }
}

/// Shortest text that reads back as the same f64, in plain notation for everyday magnitudes.
fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value == 0.0 || (1e-4..1e15).contains(&value.abs()) {
        let _ = write!(out, "{value}");
    } else {
        let _ = write!(out, "{value:e}");
    }
}

/// Replaces `path` with `text` atomically (temporary file, fsync, rename), mode 0644 so the
/// collector can read it. The temporary name does not end in `.prom`, so the collector never
/// reads a half-written file.
pub fn write_textfile(path: &Path, text: &str) -> Result<(), kyb_core::fs::FsError> {
    kyb_core::fs::atomic_write(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MetricKind, parse, parse_strict};
    use proptest::prelude::*;

    fn family(name: &str, kind: MetricKind, help: Option<&str>) -> Family {
        Family { name: name.to_owned(), kind, help: help.map(str::to_owned), unit: None }
    }

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample { timestamp_ms: Some(1_700_000_000_000), ..Sample::new(name, labels, value) }
    }

    #[test]
    fn renders_families_in_order_with_their_samples() {
        let families = [
            family("jobs_total", MetricKind::Counter, Some("Jobs run.")),
            family("lat", MetricKind::Histogram, None),
        ];
        let samples = [
            sample("lat_bucket", &[("le", "+Inf")], 2.0),
            sample("orphan", &[], 1.0),
            sample("jobs_total", &[("job", "a")], 3.0),
            sample("other", &[], 1.0),
            sample("lat_sum", &[], 0.5),
            sample("orphan", &[("x", "y")], 2.0),
            sample("jobs_created", &[("job", "a")], 1.7e9),
        ];
        assert_eq!(
            render_textfile(&families, &samples),
            "# HELP jobs_total Jobs run.\n\
             # TYPE jobs_total counter\n\
             jobs_total{job=\"a\"} 3\n\
             jobs_created{job=\"a\"} 1700000000\n\
             # TYPE lat histogram\n\
             lat_bucket{le=\"+Inf\"} 2\n\
             lat_sum 0.5\n\
             orphan 1\n\
             orphan{x=\"y\"} 2\n\
             other 1\n"
        );
    }

    #[test]
    fn escapes_help_and_label_values() {
        let families = [family("m", MetricKind::Gauge, Some("a \\ b\nc \"d\""))];
        let samples = [sample("m", &[("p", "C:\\x\n\"q\"")], 1.0)];
        assert_eq!(
            render_textfile(&families, &samples),
            "# HELP m a \\\\ b\\nc \"d\"\n# TYPE m gauge\nm{p=\"C:\\\\x\\n\\\"q\\\"\"} 1\n"
        );
    }

    #[test]
    fn special_and_extreme_values() {
        let cases = [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e-4, "0.0001"),
            (1.5e-7, "1.5e-7"),
            (123_456_789_012_345.0, "123456789012345"),
            (1e15, "1e15"),
            (f64::MAX, "1.7976931348623157e308"),
            (f64::MIN_POSITIVE / 4.0, "5.562684646268003e-309"),
        ];
        for (value, want) in cases {
            let mut out = String::new();
            push_value(&mut out, value);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn skips_a_second_family_of_the_same_name() {
        let families = [family("m", MetricKind::Gauge, None), family("m", MetricKind::Counter, None)];
        let out = render_textfile(&families, &[sample("m", &[], 1.0)]);
        assert_eq!(out, "# TYPE m gauge\nm 1\n");
    }

    #[test]
    fn round_trips_through_parse() {
        let families = vec![
            family("a_total", MetricKind::Counter, Some("Help with \\ and\nnewline and \"quotes\"")),
            family("b", MetricKind::Gauge, None),
            family("c", MetricKind::Summary, Some("")),
            family("d", MetricKind::Histogram, Some("x")),
            family("e", MetricKind::Untyped, None),
        ];
        let odd_values = ["", " ", "a,b", "{}", "x=y", "# hash", "\\", "\"", "\n", "ü✓", "\\n\\\""];
        let numbers = [0.0, -1.0, 0.1, 1e300, -1e-300, 42.0, f64::INFINITY, f64::NEG_INFINITY, 3.25];
        let mut samples = Vec::new();
        for (i, value) in odd_values.iter().enumerate() {
            samples.push(sample(
                "a_total",
                &[("v", value), ("i", &i.to_string())],
                numbers[i % numbers.len()],
            ));
        }
        samples.push(sample("b", &[], 7.0));
        samples.push(sample("c_sum", &[("q", "x")], 1.5));
        samples.push(sample("c", &[("quantile", "0.5"), ("q", "x")], 0.25));
        samples.push(sample("d_bucket", &[("le", "+Inf")], 9.0));
        samples.push(sample("d_count", &[], 9.0));
        samples.push(sample("loose", &[("k", "v")], 1.0));

        let text = render_textfile(&families, &samples);
        let parsed = parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.families, families);
        assert_eq!(parsed.samples.len(), samples.len());
        for (got, want) in parsed.samples.iter().zip(&samples) {
            assert_eq!(got.name, want.name);
            assert_eq!(got.labels, want.labels);
            assert_eq!(got.value.to_bits(), want.value.to_bits(), "{}", want.name);
            assert_eq!(got.timestamp_ms, None);
        }
        assert_eq!(render_textfile(&parsed.families, &parsed.samples), text);
    }

    fn kind() -> impl Strategy<Value = MetricKind> {
        prop::sample::select(vec![
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
            MetricKind::Summary,
            MetricKind::Untyped,
        ])
    }

    fn metric_name() -> impl Strategy<Value = String> {
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,24}"
    }

    /// Any text; it goes through the escapes, so line feeds, quotes and backslashes are drawn
    /// more often than chance would.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            prop::sample::select(vec!["\\", "\n", "\"", "\\n", " ", "\t", "\r", "{", "}", ",", "=", "#"])
                .prop_map(str::to_owned),
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
    }

    /// Families with distinct names. The format drops blanks between the name and a HELP text
    /// (Prometheus's parser skips them too) and reads `\r\n` as a line end, so a HELP text can
    /// neither start with a blank nor end with a carriage return.
    fn families() -> impl Strategy<Value = Vec<Family>> {
        prop::collection::vec((metric_name(), kind(), prop::option::of(text())), 0..5).prop_map(|drawn| {
            let mut families: Vec<Family> = Vec::new();
            for (name, kind, help) in drawn {
                if families.iter().all(|f| f.name != name) {
                    let help =
                        help.map(|h| h.trim_start_matches([' ', '\t']).trim_end_matches('\r').to_owned());
                    families.push(Family { name, kind, help, unit: None });
                }
            }
            families
        })
    }

    /// Values of every class: NaN, infinities, zeros of both signs, subnormals, extremes.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (0..1_000_000_u32).prop_map(f64::from),
            prop::sample::select(vec![
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                0.0,
                -0.0,
                f64::MAX,
                f64::MIN,
                f64::MIN_POSITIVE / 3.0,
                1e-4,
                1e15,
            ]),
        ]
    }

    /// A sample named after one of the families (with a suffix its kind gives a meaning, or
    /// one it does not) or after nothing, with distinct label names.
    fn sample_of(names: Vec<String>) -> impl Strategy<Value = Sample> {
        // `select` needs a choice even when there is no family; `own` is ignored then.
        let choices = if names.is_empty() { vec!["m".to_owned()] } else { names.clone() };
        let name = (prop::sample::select(choices), any::<bool>(), metric_name());
        let suffix =
            prop::sample::select(vec!["", "", "_total", "_created", "_bucket", "_sum", "_count", "_info"]);
        let labels = prop::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,12}", text()), 0..8).prop_map(|drawn| {
            let mut labels: Vec<(String, String)> = Vec::new();
            for (name, value) in drawn {
                if labels.iter().all(|(n, _)| *n != name) {
                    labels.push((name, value));
                }
            }
            labels
        });
        ((name, suffix), labels, value()).prop_map(move |(((family, own, other), suffix), labels, value)| {
            let name = if own && !names.is_empty() { format!("{family}{suffix}") } else { other };
            Sample { name, labels, value, timestamp_ms: None, line: 0 }
        })
    }

    fn exposition() -> impl Strategy<Value = (Vec<Family>, Vec<Sample>)> {
        families().prop_flat_map(|families| {
            let names = families.iter().map(|f| f.name.clone()).collect();
            let samples = prop::collection::vec(sample_of(names), 0..12);
            (Just(families), samples)
        })
    }

    /// A sample as a key that compares NaN values as equal and tells -0 from 0.
    fn key(s: &Sample) -> (String, Vec<(String, String)>, u64) {
        let bits = if s.value.is_nan() { f64::NAN.to_bits() } else { s.value.to_bits() };
        (s.name.clone(), s.labels.clone(), bits)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        /// Whatever families and samples the writer is given, the parser reads back the same
        /// families, and the same samples (the writer groups them by family, so in another
        /// order); and writing what was read gives the same text.
        #[test]
        fn what_is_written_reads_back((families, samples) in exposition()) {
            let text = render_textfile(&families, &samples);
            let parsed = parse_strict(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&parsed.families, &families);
            prop_assert!(parsed.samples.iter().all(|s| s.timestamp_ms.is_none()));
            let mut got: Vec<_> = parsed.samples.iter().map(key).collect();
            let mut want: Vec<_> = samples.iter().map(key).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want, "{}", text);
            prop_assert_eq!(render_textfile(&parsed.families, &parsed.samples), text);
        }
    }

    #[test]
    fn round_trips_nan() {
        let text = render_textfile(&[], &[sample("n", &[], f64::NAN)]);
        assert_eq!(text, "n NaN\n");
        assert!(parse(&text).samples[0].value.is_nan());
    }

    /// A fresh directory under the system temp dir, removed on drop.
    #[test]
    fn write_creates_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kyb.prom");
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["kyb.prom"]);
    }

    #[test]
    fn write_into_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_textfile(&dir.path().join("nope/kyb.prom"), "a 1\n").is_err());
    }
}
