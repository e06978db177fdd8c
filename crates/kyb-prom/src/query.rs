//! Queries over one scrape: select by name and label matchers, sum and average by labels, and
//! `histogram_quantile` with Prometheus's interpolation.

use crate::Sample;
use std::collections::BTreeMap;

/// A label matcher, as in a PromQL selector. A label that is absent matches as the empty value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// `label="value"`.
    Eq(String, String),
    /// `label!="value"`.
    Ne(String, String),
}

impl Matcher {
    /// `label="value"`.
    pub fn eq(label: &str, value: &str) -> Matcher {
        Matcher::Eq(label.to_owned(), value.to_owned())
    }

    /// `label!="value"`.
    pub fn ne(label: &str, value: &str) -> Matcher {
        Matcher::Ne(label.to_owned(), value.to_owned())
    }

    fn matches(&self, s: &Sample) -> bool {
        match self {
            Matcher::Eq(l, v) => s.label(l).unwrap_or("") == v,
            Matcher::Ne(l, v) => s.label(l).unwrap_or("") != v,
        }
    }
}

/// The samples named `name` that every matcher accepts, in input order.
pub fn select<'a>(
    samples: &'a [Sample],
    name: &'a str,
    matchers: &'a [Matcher],
) -> impl Iterator<Item = &'a Sample> {
    samples.iter().filter(move |s| s.name == name && matchers.iter().all(|m| m.matches(s)))
}

/// The values of the `by` labels of a sample (absent labels as empty), the key of its group.
pub type Group = Vec<String>;

fn group_of(s: &Sample, by: &[&str]) -> Group {
    by.iter().map(|l| s.label(l).unwrap_or("").to_owned()).collect()
}

/// `sum by (labels)`: the total per group, groups in sorted order. An empty `by` gives one
/// group with the grand total (when there are samples).
pub fn sum_by<'a>(samples: impl IntoIterator<Item = &'a Sample>, by: &[&str]) -> BTreeMap<Group, f64> {
    let mut out = BTreeMap::new();
    for s in samples {
        *out.entry(group_of(s, by)).or_insert(0.0) += s.value;
    }
    out
}

/// `avg by (labels)`: the mean per group.
pub fn avg_by<'a>(samples: impl IntoIterator<Item = &'a Sample>, by: &[&str]) -> BTreeMap<Group, f64> {
    let mut acc: BTreeMap<Group, (f64, u64)> = BTreeMap::new();
    for s in samples {
        let e = acc.entry(group_of(s, by)).or_insert((0.0, 0));
        e.0 += s.value;
        e.1 += 1;
    }
    acc.into_iter().map(|(g, (sum, n))| (g, sum / n as f64)).collect()
}

/// `histogram_quantile(q, sum by (le, labels) (name_bucket{matchers}))`: the `q` quantile per
/// group, from the cumulative buckets of histogram `name` (the `_bucket` samples). Series of a
/// group that differ only in labels outside `by` are added together first, as the `sum by`
/// would.
pub fn histogram_quantile_by(
    q: f64,
    samples: &[Sample],
    name: &str,
    matchers: &[Matcher],
    by: &[&str],
) -> BTreeMap<Group, f64> {
    let bucket_name = format!("{name}_bucket");
    let mut groups: BTreeMap<Group, BTreeMap<LeKey, (f64, f64)>> = BTreeMap::new();
    for s in select(samples, &bucket_name, matchers) {
        let Some(le) = s.label("le").and_then(parse_le) else { continue };
        let e = groups.entry(group_of(s, by)).or_default().entry(LeKey(le)).or_insert((le, 0.0));
        e.1 += s.value;
    }
    groups
        .into_iter()
        .map(|(g, buckets)| {
            let b: Vec<(f64, f64)> = buckets.into_values().collect();
            (g, histogram_quantile(q, &b))
        })
        .collect()
}

/// Orders `le` bounds as numbers (NaN bounds are dropped when parsed).
#[derive(Debug, Clone, Copy, PartialEq)]
struct LeKey(f64);

impl Eq for LeKey {}

impl PartialOrd for LeKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LeKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn parse_le(text: &str) -> Option<f64> {
    let v = match text.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => f64::INFINITY,
        other => other.parse::<f64>().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// The `q` quantile of one histogram, from `(upper bound, cumulative count)` buckets sorted by
/// bound, as Prometheus computes it: linear interpolation inside the bucket the rank falls in,
/// the lower bound of the first bucket taken as 0 (when its upper bound is positive), and the
/// second-highest bound when the rank falls in the `+Inf` bucket.
///
/// NaN without a `+Inf` bucket, with fewer than two buckets or with no observations; `-Inf` for
/// `q < 0` and `+Inf` for `q > 1`. Counts that go down (a scrape racing an update) are raised to
/// the running maximum first.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if buckets.len() < 2 || buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let mut counts: Vec<f64> = Vec::with_capacity(buckets.len());
    let mut max = 0.0_f64;
    for &(_, c) in buckets {
        max = max.max(c);
        counts.push(max);
    }
    let observations = counts[counts.len() - 1];
    if observations == 0.0 || observations.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = counts.partition_point(|&c| c < rank).min(buckets.len() - 1);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (start, end) = (if b == 0 { 0.0 } else { buckets[b - 1].0 }, buckets[b].0);
    let mut count = counts[b];
    if b > 0 {
        count -= counts[b - 1];
        rank -= counts[b - 1];
    }
    if count == 0.0 {
        return end;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample::new(name, labels, value)
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        // 100 observations: 50 up to 0.1, 40 more up to 0.5, 10 more up to 1, none above.
        let b = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (f64::INFINITY, 100.0)];
        assert!((histogram_quantile(0.5, &b) - 0.1).abs() < 1e-12);
        assert!((histogram_quantile(0.25, &b) - 0.05).abs() < 1e-12, "first bucket starts at 0");
        assert!((histogram_quantile(0.7, &b) - 0.3).abs() < 1e-12);
        assert!((histogram_quantile(0.95, &b) - 0.75).abs() < 1e-12);
        assert_eq!(histogram_quantile(1.0, &b), 1.0);
        // Ranks in the +Inf bucket answer the highest finite bound.
        let over = [(0.1, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.99, &over), 0.1);
        assert_eq!(histogram_quantile(-0.1, &b), f64::NEG_INFINITY);
        assert_eq!(histogram_quantile(1.1, &b), f64::INFINITY);
        assert!(histogram_quantile(0.5, &[(0.1, 3.0)]).is_nan(), "one bucket");
        assert!(histogram_quantile(0.5, &[(0.1, 3.0), (1.0, 4.0)]).is_nan(), "no +Inf bucket");
        assert!(histogram_quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]).is_nan(), "no observations");
        // A count that dips is raised to the running maximum.
        let dip = [(0.1, 50.0), (0.5, 40.0), (f64::INFINITY, 100.0)];
        assert_eq!(histogram_quantile(0.5, &dip), 0.1);
        // A first bucket with a negative bound answers that bound.
        assert_eq!(histogram_quantile(0.1, &[(-1.0, 5.0), (f64::INFINITY, 10.0)]), -1.0);
    }

    #[test]
    fn select_sum_avg_and_quantiles_by_label() {
        let samples = vec![
            s("req_total", &[("path", "/a b"), ("code", "200")], 10.0),
            s("req_total", &[("path", "/a b"), ("code", "500")], 2.0),
            s("req_total", &[("path", "/c"), ("code", "200")], 5.0),
            s("lat_bucket", &[("path", "/c"), ("method", "GET"), ("le", "0.1")], 1.0),
            s("lat_bucket", &[("path", "/c"), ("method", "GET"), ("le", "+Inf")], 2.0),
            s("lat_bucket", &[("path", "/c"), ("method", "POST"), ("le", "0.1")], 1.0),
            s("lat_bucket", &[("path", "/c"), ("method", "POST"), ("le", "+Inf")], 2.0),
            s("lat_bucket", &[("path", "/c"), ("method", "POST"), ("le", "oops")], 7.0),
        ];
        let ok = [Matcher::ne("code", "500")];
        assert_eq!(select(&samples, "req_total", &ok).count(), 2);
        let by_path = sum_by(select(&samples, "req_total", &[]), &["path"]);
        assert_eq!(by_path[&vec!["/a b".to_owned()]], 12.0);
        assert_eq!(by_path[&vec!["/c".to_owned()]], 5.0);
        assert_eq!(sum_by(select(&samples, "req_total", &[]), &[])[&Vec::<String>::new()], 17.0);
        assert_eq!(avg_by(select(&samples, "req_total", &[Matcher::eq("code", "200")]), &[])[&vec![]], 7.5);
        // GET and POST are summed per `le` before the quantile, as `sum by (le, path)` does.
        let q = histogram_quantile_by(0.5, &samples, "lat", &[], &["path"]);
        assert_eq!(q.len(), 1);
        assert!((q[&vec!["/c".to_owned()]] - 0.1).abs() < 1e-12);
        assert!(select(&samples, "req_total", &[Matcher::eq("missing", "")]).count() == 3, "absent is empty");
    }
}
