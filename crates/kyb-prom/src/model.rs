//! The parsed form of an exposition, and how sample names map onto their families.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Everything read from one exposition text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Families declared by `# HELP`, `# TYPE` or `# UNIT` lines, in order of first mention.
    pub families: Vec<Family>,
    /// Samples in input order.
    pub samples: Vec<Sample>,
    /// Lines that could not be used, in input order.
    pub errors: Vec<ParseError>,
}

impl Exposition {
    /// The family a sample belongs to: the family of the same name, else the one whose type gives
    /// the name's suffix a meaning (`foo_bucket`, `foo_sum`, `foo_count` for histogram and summary
    /// `foo`, `foo_total` and `foo_created` for counter `foo`; also `foo_gsum`/`foo_gcount` for
    /// a histogram and `foo_info` for a gauge, which OpenMetrics gauge histograms and infos become).
    pub fn family_of(&self, sample_name: &str) -> Option<&Family> {
        let families = &self.families;
        let index =
            resolve_family(sample_name, families, |name| families.iter().position(|f| f.name == name))?;
        families.get(index)
    }

    /// Pairs of line numbers of samples with the same name and label set, each later sample paired
    /// with the first. Label order does not matter, and a label with an empty value counts as
    /// absent, because Prometheus stores both as the same series.
    pub fn duplicates(&self) -> Vec<(usize, usize)> {
        let mut first_line: HashMap<SeriesKey<'_>, usize> = HashMap::with_capacity(self.samples.len());
        let mut pairs = Vec::new();
        for sample in &self.samples {
            let mut labels: Vec<(&str, &str)> = sample
                .labels
                .iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            labels.sort_unstable();
            match first_line.entry((sample.name.as_str(), labels)) {
                Entry::Occupied(first) => pairs.push((*first.get(), sample.line)),
                Entry::Vacant(slot) => {
                    slot.insert(sample.line);
                }
            }
        }
        pairs
    }
}

/// A metric name and its sorted, non-empty labels: what makes a series in Prometheus.
type SeriesKey<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// A metric family: the metadata shared by the samples of one metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The name in the `# HELP`/`# TYPE` lines, e.g. `http_requests_total` or, in OpenMetrics,
    /// `http_requests`.
    pub name: String,
    /// The declared type; [`MetricKind::Untyped`] without a `# TYPE` line.
    pub kind: MetricKind,
    /// The `# HELP` text, unescaped.
    pub help: Option<String>,
    /// The OpenMetrics `# UNIT`, e.g. `seconds`.
    pub unit: Option<String>,
}

/// The type of a metric family.
///
/// OpenMetrics types map the way its reference client writes them as text format 0.0.4:
/// `unknown` is untyped, `gaugehistogram` a histogram, `info` and `stateset` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Only goes up, resets to zero.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets with cumulative counts plus sum and count.
    Histogram,
    /// Quantiles plus sum and count.
    Summary,
    /// No type given.
    Untyped,
}

impl MetricKind {
    /// The name used in a text format 0.0.4 `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
            MetricKind::Untyped => "untyped",
        }
    }

    /// The kind for a `# TYPE` word of text format 0.0.4 or OpenMetrics.
    pub(crate) fn from_type_word(word: &str) -> Option<MetricKind> {
        Some(match word {
            "counter" => MetricKind::Counter,
            "gauge" | "info" | "stateset" => MetricKind::Gauge,
            "histogram" | "gaugehistogram" => MetricKind::Histogram,
            "summary" => MetricKind::Summary,
            "untyped" | "unknown" => MetricKind::Untyped,
            _ => return None,
        })
    }

    fn sample_suffixes(self) -> &'static [&'static str] {
        match self {
            MetricKind::Counter => &["_total", "_created"],
            MetricKind::Gauge => &["_info"],
            MetricKind::Histogram => &["_bucket", "_sum", "_count", "_created", "_gsum", "_gcount"],
            MetricKind::Summary => &["_sum", "_count", "_created"],
            MetricKind::Untyped => &[],
        }
    }
}

const ALL_SUFFIXES: [&str; 8] =
    ["_bucket", "_sum", "_count", "_total", "_created", "_gsum", "_gcount", "_info"];

/// Index of the family `sample_name` belongs to; `index_of` finds a family by exact name.
pub(crate) fn resolve_family(
    sample_name: &str,
    families: &[Family],
    index_of: impl Fn(&str) -> Option<usize>,
) -> Option<usize> {
    if let Some(index) = index_of(sample_name) {
        return Some(index);
    }
    let (stem, suffix) =
        ALL_SUFFIXES.iter().find_map(|suffix| Some((sample_name.strip_suffix(suffix)?, *suffix)))?;
    let fits = |index: usize| families.get(index).is_some_and(|f| f.kind.sample_suffixes().contains(&suffix));
    if let Some(index) = index_of(stem).filter(|&i| fits(i)) {
        return Some(index);
    }
    if suffix == "_created" {
        // Text format 0.0.4 names a counter family after its `_total` sample, so the `_created`
        // sibling shares only the stem.
        let is_counter = |i: &usize| families.get(*i).is_some_and(|f| f.kind == MetricKind::Counter);
        return index_of(&format!("{stem}_total")).filter(is_counter);
    }
    None
}

/// One sample line: a value for a metric name and label set.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name as written, suffix included (`foo_bucket`).
    pub name: String,
    /// Label names and unescaped values, in input order.
    pub labels: Vec<(String, String)>,
    /// The value; may be NaN or infinite.
    pub value: f64,
    /// Milliseconds since the Unix epoch, if the line had a timestamp.
    pub timestamp_ms: Option<i64>,
    /// 1-based line number in the input; 0 for samples not read from text.
    pub line: usize,
}

impl Sample {
    /// A sample of `name` with `labels` and `value`, not read from text (no timestamp, line 0):
    /// for writing an exposition, or for tests.
    pub fn new(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.to_owned(),
            labels: labels.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            value,
            timestamp_ms: None,
            line: 0,
        }
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(label, _)| label == name).map(|(_, value)| value.as_str())
    }
}

/// A line that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, naming the metric where one was read.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(name: &str, kind: MetricKind) -> Family {
        Family { name: name.to_owned(), kind, help: None, unit: None }
    }

    fn sample(name: &str, labels: &[(&str, &str)], line: usize) -> Sample {
        Sample { line, ..Sample::new(name, labels, 1.0) }
    }

    fn with_families(families: Vec<Family>) -> Exposition {
        Exposition { families, ..Exposition::default() }
    }

    fn kind_of(e: &Exposition, sample_name: &str) -> Option<(String, MetricKind)> {
        e.family_of(sample_name).map(|f| (f.name.clone(), f.kind))
    }

    #[test]
    fn family_of_maps_histogram_and_summary_suffixes() {
        let e = with_families(vec![family("lat", MetricKind::Histogram), family("rpc", MetricKind::Summary)]);
        for name in ["lat_bucket", "lat_sum", "lat_count", "lat_created", "lat"] {
            assert_eq!(kind_of(&e, name), Some(("lat".into(), MetricKind::Histogram)), "{name}");
        }
        for name in ["rpc_sum", "rpc_count", "rpc_created", "rpc"] {
            assert_eq!(kind_of(&e, name), Some(("rpc".into(), MetricKind::Summary)), "{name}");
        }
        assert_eq!(kind_of(&e, "rpc_bucket"), None);
        assert_eq!(kind_of(&e, "lat_total"), None);
        assert_eq!(kind_of(&e, "lat_bucket_sum"), None);
    }

    #[test]
    fn family_of_maps_counter_suffixes_in_both_formats() {
        let openmetrics = with_families(vec![family("req", MetricKind::Counter)]);
        assert_eq!(kind_of(&openmetrics, "req_total"), Some(("req".into(), MetricKind::Counter)));
        assert_eq!(kind_of(&openmetrics, "req_created"), Some(("req".into(), MetricKind::Counter)));
        assert_eq!(kind_of(&openmetrics, "req_sum"), None);

        let classic = with_families(vec![family("req_total", MetricKind::Counter)]);
        assert_eq!(kind_of(&classic, "req_total"), Some(("req_total".into(), MetricKind::Counter)));
        assert_eq!(kind_of(&classic, "req_created"), Some(("req_total".into(), MetricKind::Counter)));
    }

    #[test]
    fn family_of_prefers_exact_name_and_ignores_suffixes_for_gauges() {
        let e = with_families(vec![
            family("temp", MetricKind::Gauge),
            family("temp_sum", MetricKind::Counter),
            family("build", MetricKind::Gauge),
        ]);
        assert_eq!(kind_of(&e, "temp_sum"), Some(("temp_sum".into(), MetricKind::Counter)));
        assert_eq!(kind_of(&e, "temp_count"), None);
        assert_eq!(kind_of(&e, "temp_total"), None);
        assert_eq!(kind_of(&e, "build_info"), Some(("build".into(), MetricKind::Gauge)));
        assert_eq!(kind_of(&e, "unknown_metric"), None);
    }

    #[test]
    fn duplicates_ignore_label_order_and_empty_values() {
        let e = Exposition {
            samples: vec![
                sample("a", &[("x", "1"), ("y", "2")], 1),
                sample("a", &[("y", "2"), ("x", "1")], 2),
                sample("a", &[("x", "1"), ("y", "3")], 3),
                sample("b", &[("x", "1"), ("y", "2")], 4),
                sample("a", &[("x", "1"), ("z", ""), ("y", "2")], 5),
                sample("c", &[], 6),
                sample("c", &[("e", "")], 7),
            ],
            ..Exposition::default()
        };
        assert_eq!(e.duplicates(), vec![(1, 2), (1, 5), (6, 7)]);
    }

    #[test]
    fn sample_label_finds_by_name() {
        let s = sample("a", &[("x", "1"), ("y", "")], 1);
        assert_eq!(s.label("x"), Some("1"));
        assert_eq!(s.label("y"), Some(""));
        assert_eq!(s.label("z"), None);
    }

    #[test]
    fn parse_error_displays_line_and_message() {
        let e = ParseError { line: 7, message: "missing value for `up`".into() };
        assert_eq!(e.to_string(), "line 7: missing value for `up`");
    }

    #[test]
    fn kind_words() {
        for (word, kind) in [
            ("counter", MetricKind::Counter),
            ("gauge", MetricKind::Gauge),
            ("histogram", MetricKind::Histogram),
            ("summary", MetricKind::Summary),
            ("untyped", MetricKind::Untyped),
            ("unknown", MetricKind::Untyped),
            ("gaugehistogram", MetricKind::Histogram),
            ("info", MetricKind::Gauge),
            ("stateset", MetricKind::Gauge),
        ] {
            assert_eq!(MetricKind::from_type_word(word), Some(kind), "{word}");
        }
        for word in ["Counter", "GAUGE", "", "timer"] {
            assert_eq!(MetricKind::from_type_word(word), None, "{word}");
        }
        for kind in [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
            MetricKind::Summary,
            MetricKind::Untyped,
        ] {
            assert_eq!(MetricKind::from_type_word(kind.as_str()), Some(kind));
        }
    }
}
