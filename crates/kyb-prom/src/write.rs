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
/// [`is_metric_name`](crate::is_metric_name) and [`is_label_name`](crate::is_label_name).
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

    fn family(name: &str, kind: MetricKind, help: Option<&str>) -> Family {
        Family { name: name.to_owned(), kind, help: help.map(str::to_owned), unit: None }
    }

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.to_owned(),
            labels: labels.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            value,
            timestamp_ms: Some(1_700_000_000_000),
            line: 0,
        }
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

    /// Property: any families and samples the writer accepts come back from the parser as they
    /// went in. Random names, label values (any Unicode, escapes, separators) and values
    /// (including extremes and subnormals), from a fixed seed so a failure repeats.
    #[test]
    fn random_expositions_round_trip() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const CHARS: [char; 16] =
            ['a', 'Z', '0', ' ', ',', '=', '{', '}', '"', '\\', '\n', '#', 'ü', '✓', '\t', '_'];
        let kinds = [MetricKind::Counter, MetricKind::Gauge, MetricKind::Untyped];
        for round in 0..5000 {
            let n_fam = 1 + (next() % 4) as usize;
            let families: Vec<Family> = (0..n_fam)
                .map(|f| {
                    let help: String = (0..next() % 12).map(|_| CHARS[(next() % 16) as usize]).collect();
                    // The format itself drops blanks between the name and the text (Prometheus's
                    // parser skips them too), so a help text cannot start with one.
                    let help = help.trim_start_matches([' ', '\t']).to_owned();
                    let help = (next() % 3 != 0).then_some(help);
                    Family {
                        name: format!("m{round}_{f}"),
                        kind: kinds[(next() % 3) as usize],
                        help,
                        unit: None,
                    }
                })
                .collect();
            let mut samples = Vec::new();
            for f in &families {
                for _ in 0..next() % 5 {
                    let n_labels = (next() % 4) as usize;
                    let labels: Vec<(String, String)> = (0..n_labels)
                        .map(|l| {
                            let v: String = (0..next() % 10).map(|_| CHARS[(next() % 16) as usize]).collect();
                            (format!("l{l}"), v)
                        })
                        .collect();
                    let value = match next() % 5 {
                        0 => f64::from_bits(next()),
                        1 => (next() % 1_000_000) as f64,
                        2 => -((next() % 1000) as f64) / 7.0,
                        3 => f64::MIN_POSITIVE / 3.0,
                        _ => f64::MAX,
                    };
                    let value = if value.is_nan() { 1.5 } else { value };
                    samples.push(Sample { name: f.name.clone(), labels, value, timestamp_ms: None, line: 0 });
                }
            }
            let text = render_textfile(&families, &samples);
            let parsed = parse_strict(&text).unwrap_or_else(|e| panic!("round {round}: {e}\n{text}"));
            assert_eq!(parsed.families, families, "round {round}");
            assert_eq!(parsed.samples.len(), samples.len(), "round {round}");
            for (got, want) in parsed.samples.iter().zip(&samples) {
                assert_eq!((&got.name, &got.labels), (&want.name, &want.labels), "round {round}");
                assert_eq!(got.value.to_bits(), want.value.to_bits(), "round {round}: {}", want.value);
            }
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
