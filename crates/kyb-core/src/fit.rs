//! Straight-line fits of a series over time, and when the line reaches a limit: the "days
//! left" of a disk, a sequence or a model's accuracy.
//!
//! Two fits: [`least_squares`], the usual one, and [`theil_sen`], the median of the slopes
//! between every pair of points, which a few outliers (a one-off spike in disk use, a bad
//! scrape) do not move. Both need at least [`MIN_POINTS`] points spread over at least
//! [`MIN_SPAN_S`]: minutes of noise say nothing about a trend.

use serde::Serialize;

/// The fewest points a fit is made from.
pub const MIN_POINTS: usize = 3;
/// The shortest span of time, in seconds, a fit is made over (an hour).
pub const MIN_SPAN_S: f64 = 3600.0;
/// At most this many points (the newest) go into a Theil-Sen fit: its pairs grow as n².
pub const THEIL_SEN_MAX_POINTS: usize = 1000;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// One observation: when (Unix seconds) and the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix time, seconds.
    pub at_s: f64,
    /// The value.
    pub value: f64,
}

/// Which fit made a [`Trend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Ordinary least squares.
    LeastSquares,
    /// Theil-Sen: the median pairwise slope, and the median intercept through it.
    TheilSen,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::LeastSquares => "least squares",
            Method::TheilSen => "Theil-Sen",
        })
    }
}

/// A fitted line: `value = at_value + per_day * (t - at_s) / 86400`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trend {
    /// Change per day.
    pub per_day: f64,
    /// The line's value at `at_s`.
    pub at_value: f64,
    /// A time on the line (the points' mean or median time).
    pub at_s: f64,
    /// How many points the fit used.
    pub points: usize,
    /// How it was fitted.
    pub method: Method,
}

impl Trend {
    /// The line's value at `t_s`.
    pub fn value_at(&self, t_s: f64) -> f64 {
        self.at_value + self.per_day * (t_s - self.at_s) / SECONDS_PER_DAY
    }

    /// Days from `now_s` until the line rises to `ceiling` (a disk full, a sequence used
    /// up): 0 when it is there already, None when it is flat or falling.
    pub fn days_until_above(&self, ceiling: f64, now_s: f64) -> Option<f64> {
        let now = self.value_at(now_s);
        if now >= ceiling {
            return Some(0.0);
        }
        (self.per_day > 0.0).then(|| (ceiling - now) / self.per_day)
    }

    /// Days from `now_s` until the line falls to `floor` (an accuracy threshold, days left
    /// reaching 0): 0 when it is there already, None when it is flat or rising.
    pub fn days_until_below(&self, floor: f64, now_s: f64) -> Option<f64> {
        let now = self.value_at(now_s);
        if now <= floor {
            return Some(0.0);
        }
        (self.per_day < 0.0).then(|| (now - floor) / -self.per_day)
    }
}

/// Whether `points` are enough for a fit: [`MIN_POINTS`] of them over [`MIN_SPAN_S`], all
/// finite.
fn usable(points: &[Point]) -> bool {
    if points.len() < MIN_POINTS || points.iter().any(|p| !p.at_s.is_finite() || !p.value.is_finite()) {
        return false;
    }
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.at_s), hi.max(p.at_s)));
    hi - lo >= MIN_SPAN_S
}

/// The least-squares line through `points`; None with too few points or too short a span.
pub fn least_squares(points: &[Point]) -> Option<Trend> {
    if !usable(points) {
        return None;
    }
    let n = points.len() as f64;
    // Centred on the means: Unix seconds squared would lose the precision the slope needs.
    let mean_t = points.iter().map(|p| p.at_s).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.value).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for p in points {
        let dx = (p.at_s - mean_t) / SECONDS_PER_DAY;
        sxy += dx * (p.value - mean_v);
        sxx += dx * dx;
    }
    Some(Trend {
        per_day: sxy / sxx,
        at_value: mean_v,
        at_s: mean_t,
        points: points.len(),
        method: Method::LeastSquares,
    })
}

/// The Theil-Sen line through the newest [`THEIL_SEN_MAX_POINTS`] of `points`; None with too
/// few points or too short a span.
pub fn theil_sen(points: &[Point]) -> Option<Trend> {
    let mut points = points.to_vec();
    points.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let points = &points[points.len().saturating_sub(THEIL_SEN_MAX_POINTS)..];
    if !usable(points) {
        return None;
    }
    let mut slopes = Vec::with_capacity(points.len() * (points.len() - 1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            // Two points at one instant say nothing about a slope.
            if b.at_s > a.at_s {
                slopes.push((b.value - a.value) / ((b.at_s - a.at_s) / SECONDS_PER_DAY));
            }
        }
    }
    let per_day = median(&mut slopes)?;
    let at_s = median(&mut points.iter().map(|p| p.at_s).collect::<Vec<_>>())?;
    let mut intercepts: Vec<f64> =
        points.iter().map(|p| p.value - per_day * (p.at_s - at_s) / SECONDS_PER_DAY).collect();
    let at_value = median(&mut intercepts)?;
    Some(Trend { per_day, at_value, at_s, points: points.len(), method: Method::TheilSen })
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: f64 = SECONDS_PER_DAY;

    fn line(n: usize, start: f64, per_day: f64) -> Vec<Point> {
        (0..n).map(|i| Point { at_s: 1.7e9 + i as f64 * DAY, value: start + per_day * i as f64 }).collect()
    }

    #[test]
    fn too_few_points_or_too_short_a_span_give_no_fit() {
        for fit in [least_squares, theil_sen] {
            assert_eq!(fit(&[]), None);
            assert_eq!(fit(&line(2, 0.5, 0.01)), None, "two points");
            let close: Vec<Point> =
                (0..10).map(|i| Point { at_s: 1.7e9 + f64::from(i) * 60.0, value: 0.5 }).collect();
            assert_eq!(fit(&close), None, "ten minutes of points");
            let mut nan = line(5, 0.5, 0.01);
            nan[2].value = f64::NAN;
            assert_eq!(fit(&nan), None, "a NaN");
        }
    }

    #[test]
    fn an_exact_line_is_found_by_both_fits() {
        let points = line(10, 0.40, 0.01);
        for fit in [least_squares, theil_sen] {
            let t = fit(&points).unwrap();
            assert!((t.per_day - 0.01).abs() < 1e-12, "{t:?}");
            assert_eq!(t.points, 10);
            // Day 9 is at 0.49: the limit 1.0 is 51 days on.
            let days = t.days_until_above(1.0, points[9].at_s).unwrap();
            assert!((days - 51.0).abs() < 1e-6, "{days}");
        }
    }

    #[test]
    fn a_flat_line_never_reaches_the_limit() {
        let points = line(10, 0.5, 0.0);
        for fit in [least_squares, theil_sen] {
            let t = fit(&points).unwrap();
            assert_eq!(t.days_until_above(1.0, points[9].at_s), None);
            assert_eq!(t.days_until_below(0.1, points[9].at_s), None);
        }
    }

    #[test]
    fn a_falling_line_reaches_a_floor_and_not_a_ceiling() {
        // Model accuracy drifting down towards its threshold.
        let points = line(10, 0.95, -0.005);
        let t = theil_sen(&points).unwrap();
        let days = t.days_until_below(0.85, points[9].at_s).unwrap();
        assert!((days - 11.0).abs() < 1e-6, "{days}");
        assert_eq!(t.days_until_above(1.0, points[9].at_s), None);
        // Past the floor already: zero days left.
        assert_eq!(t.days_until_below(0.99, points[9].at_s), Some(0.0));
    }

    #[test]
    fn outliers_move_least_squares_but_not_theil_sen() {
        let mut points = line(20, 0.40, 0.01);
        // A one-off spike near the end (a big temporary file), then back on the line.
        points[17].value = 0.95;
        points[18].value = 0.97;
        let robust = theil_sen(&points).unwrap();
        assert!((robust.per_day - 0.01).abs() < 0.002, "{robust:?}");
        let plain = least_squares(&points).unwrap();
        assert!((plain.per_day - 0.01).abs() > 0.005, "{plain:?}");
    }

    #[test]
    fn a_noisy_series_keeps_its_slope() {
        // Up 1% a day with +-3% of deterministic noise.
        let points: Vec<Point> = (0..60)
            .map(|i| {
                let noise = (f64::from(i) * 2.399).sin() * 0.03;
                Point { at_s: 1.7e9 + f64::from(i) * DAY, value: 0.2 + 0.01 * f64::from(i) + noise }
            })
            .collect();
        for fit in [least_squares, theil_sen] {
            let t = fit(&points).unwrap();
            assert!((t.per_day - 0.01).abs() < 0.002, "{:?}: {t:?}", t.method);
        }
    }
}
