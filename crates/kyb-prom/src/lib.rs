//! Prometheus text exposition: a parser that keeps going, queries over a scrape, and a writer for
//! textfile output.
//!
//! [`parse`] reads text format 0.0.4 plus the simple parts of OpenMetrics text (`# UNIT`,
//! `# EOF`, its extra metric types, exemplars, timestamps in float seconds) in one pass without
//! regexes. It keeps every good line and records each bad one as a [`ParseError`] with its line
//! number; [`parse_strict`] fails on the first. [`select`], [`sum_by`], [`avg_by`] and
//! [`histogram_quantile_by`] answer the questions a PromQL query would ask of one scrape.
//! [`render_textfile`] and [`write_textfile`] produce a file for node_exporter's textfile
//! collector.
//!
//! ```
//! use kyb_prom::{MetricKind, parse, render_textfile};
//!
//! let text = "# TYPE http_requests_total counter\n\
//!             http_requests_total{code=\"200\",path=\"/a b\"} 1027 1395066363000\n\
//!             http_requests_total{code=\"500\",path=\"/a b\" 3\n";
//! let exposition = parse(text);
//! assert_eq!(exposition.samples.len(), 1);
//! assert_eq!(exposition.errors[0].to_string(), "line 3: expected `,` or `}` after value of label `path` for `http_requests_total`, found '3'");
//!
//! let sample = &exposition.samples[0];
//! assert_eq!(sample.label("path"), Some("/a b"));
//! assert_eq!(sample.timestamp_ms, Some(1_395_066_363_000));
//! assert_eq!(exposition.family_of(&sample.name).map(|f| f.kind), Some(MetricKind::Counter));
//!
//! let out = render_textfile(&exposition.families, &exposition.samples);
//! assert_eq!(out, "# TYPE http_requests_total counter\n\
//!                  http_requests_total{code=\"200\",path=\"/a b\"} 1027\n");
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod model;
mod number;
mod parse;
mod query;
mod write;

pub use model::{Exposition, Family, MetricKind, ParseError, Sample};
pub use parse::{is_label_name, is_metric_name, parse, parse_strict};
pub use query::{Group, Matcher, avg_by, histogram_quantile, histogram_quantile_by, select, sum_by};
pub use write::{render_textfile, write_textfile};
