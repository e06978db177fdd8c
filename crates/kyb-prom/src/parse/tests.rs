use super::*;
use proptest::prelude::*;

fn one(line: &str) -> Sample {
    let e = parse_strict(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(e.samples.len(), 1, "{line:?}");
    e.samples.into_iter().next().unwrap()
}

fn error(text: &str) -> String {
    parse_strict(text).expect_err(text).to_string()
}

fn labels(sample: &Sample) -> Vec<(&str, &str)> {
    sample.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
}

#[test]
fn metric_names() {
    for name in ["a", "_", ":", "a:b_c", "_x1", ":node:cpu:rate5m", "Z9"] {
        assert!(is_metric_name(name), "{name}");
        assert_eq!(one(&format!("{name} 1")).name, name);
    }
    for name in ["", "1a", "a-b", "a.b", "ä", "a b"] {
        assert!(!is_metric_name(name), "{name}");
    }
    assert_eq!(error("1a 1"), "line 1: invalid metric name `1a`: starts with a digit");
    assert_eq!(error("a-b 1"), "line 1: invalid character '-' in metric name `a`");
    assert_eq!(error("a.b 1"), "line 1: invalid character '.' in metric name `a`");
    assert_eq!(error("äb 1"), "line 1: invalid metric name: starts with 'ä'");
    assert_eq!(error("{a=\"b\"} 1"), "line 1: missing metric name before `{`");
}

#[test]
fn label_names() {
    for name in ["a", "_", "__name__x", "a_B9"] {
        assert!(is_label_name(name), "{name}");
        assert_eq!(one(&format!("m{{{name}=\"v\"}} 1")).label(name), Some("v"));
    }
    for name in ["", "1a", "a:b", "a-b"] {
        assert!(!is_label_name(name), "{name}");
    }
    assert_eq!(error("m{1a=\"v\"} 1"), "line 1: invalid label name `1a` for `m`: starts with a digit");
    assert_eq!(error("m{a:b=\"v\"} 1"), "line 1: expected `=` after label name `a` for `m`, found ':'");
    assert_eq!(error("m{-=\"v\"} 1"), "line 1: expected label name or `}` for `m`, found '-'");
}

#[test]
fn label_value_escapes() {
    let s = one(r#"m{a="x\\y",b="say \"hi\"",c="l1\nl2",d="\\n"} 1"#);
    assert_eq!(labels(&s), [("a", "x\\y"), ("b", "say \"hi\""), ("c", "l1\nl2"), ("d", "\\n")]);
    assert_eq!(error(r#"m{a="x\ty"} 1"#), "line 1: invalid escape `\\t` in value of label `a` for `m`");
    assert_eq!(error(r#"m{a="\é"} 1"#), "line 1: invalid escape `\\é` in value of label `a` for `m`");
}

#[test]
fn label_values_hold_separators_and_unicode() {
    let s = one(r##"m{a="x y, z",b="{}",c="k=v",d="# not a comment",e="",f="ünï ✓"} 1"##);
    assert_eq!(
        labels(&s),
        [("a", "x y, z"), ("b", "{}"), ("c", "k=v"), ("d", "# not a comment"), ("e", ""), ("f", "ünï ✓"),]
    );
}

#[test]
fn label_set_shapes() {
    assert!(one("m{} 1").labels.is_empty());
    assert_eq!(labels(&one(r#"m{a="1",} 1"#)), [("a", "1")]);
    assert_eq!(labels(&one("m { a = \"1\" ,\tb=\"2\" , } 1")), [("a", "1"), ("b", "2")]);
    assert_eq!(labels(&one(r#"m{a="1"}2"#)), [("a", "1")]);
    assert_eq!(error("m{,} 1"), "line 1: expected label name or `}` for `m`, found ','");
    assert_eq!(error(r#"m{a="1",,} 1"#), "line 1: expected label name or `}` for `m`, found ','");
    assert_eq!(
        error(r#"m{a="1" b="2"} 1"#),
        "line 1: expected `,` or `}` after value of label `a` for `m`, found 'b'"
    );
    assert_eq!(error("m{a=1} 1"), "line 1: expected `\"` to open value of label `a` for `m`, found '1'");
    assert_eq!(error(r#"m{a="1""#), "line 1: unterminated label set for `m`");
    assert_eq!(error("m{a"), "line 1: expected `=` after label name `a` for `m`, found end of line");
    assert_eq!(error("m{"), "line 1: unterminated label set for `m`");
}

#[test]
fn duplicate_label_name_is_an_error() {
    assert_eq!(error(r#"m{a="1",b="2",a="1"} 1"#), "line 1: duplicate label `a` for `m`");
}

#[test]
fn unterminated_label_value() {
    let text = "# HELP http_requests_total Requests.\n\
                # TYPE http_requests_total counter\n\
                http_requests_total{code=\"200\"} 1\n\
                \n\
                # a comment\n\
                http_requests_total{code=\"201\"} 1\n\
                http_requests_total{code=\"500} 3\n";
    assert_eq!(error(text), "line 7: unterminated label value for `http_requests_total`");
    assert_eq!(error(r#"m{a="ends in backslash\"#), "line 1: unterminated label value for `m`");
    assert_eq!(error(r#"m{a="x\"} 1"#), "line 1: unterminated label value for `m`");
}

#[test]
fn values() {
    for (text, want) in [
        ("m 1", 1.0),
        ("m -1.5e-3", -1.5e-3),
        ("m 1E6", 1e6),
        ("m .5", 0.5),
        ("m +Inf", f64::INFINITY),
        ("m -Inf", f64::NEG_INFINITY),
        ("m Inf", f64::INFINITY),
        ("m inf", f64::INFINITY),
        ("m -infinity", f64::NEG_INFINITY),
    ] {
        assert_eq!(one(text).value, want, "{text}");
    }
    for text in ["m NaN", "m nan", "m NAN"] {
        assert!(one(text).value.is_nan(), "{text}");
    }
    assert_eq!(error("m 1,5"), "line 1: invalid value `1,5` for `m`");
    assert_eq!(error("m 0x1p3"), "line 1: invalid value `0x1p3` for `m`");
    assert_eq!(error("m -NaN"), "line 1: invalid value `-NaN` for `m`");
    assert_eq!(error("m 1e999"), "line 1: value `1e999` out of range for `m`");
}

#[test]
fn missing_value() {
    assert_eq!(error("m"), "line 1: missing value for `m`");
    assert_eq!(error("m   \t"), "line 1: missing value for `m`");
    assert_eq!(error(r#"m{a="b"}"#), "line 1: missing value for `m`");
    assert_eq!(error("\n\nup\n"), "line 3: missing value for `up`");
}

#[test]
fn timestamps() {
    assert_eq!(one("m 1 1395066363000").timestamp_ms, Some(1_395_066_363_000));
    assert_eq!(one("m 1 -1").timestamp_ms, Some(-1));
    assert_eq!(one("m 1").timestamp_ms, None);
    assert_eq!(one("m 1 1520879607.789").timestamp_ms, Some(1_520_879_607_789));
    assert_eq!(error("m 1 12ab"), "line 1: invalid timestamp `12ab` for `m`");
    assert_eq!(error("m 1 NaN"), "line 1: invalid timestamp `NaN` for `m`");
    assert_eq!(
        error("m 1 99999999999999999999"),
        "line 1: timestamp `99999999999999999999` out of range for `m`"
    );
}

#[test]
fn garbage_after_timestamp() {
    assert_eq!(error("m 1 2 3"), "line 1: unexpected `3` after timestamp of `m`");
    assert_eq!(
        error("m{a=\"b\"} 1 2 extra words"),
        "line 1: unexpected `extra words` after timestamp of `m`"
    );
    let long = format!("m 1 2 {}", "x".repeat(500));
    let message = error(&long);
    assert!(message.len() < 120, "{message}");
}

#[test]
fn help_and_type() {
    let e = parse_strict(
        "# HELP m Line one\\nline two \\\\ \\\"q\\\" \\t kept\n# TYPE m gauge\nm 1\n# HELP empty\n",
    )
    .unwrap();
    assert_eq!(
        e.families,
        [
            Family {
                name: "m".into(),
                kind: MetricKind::Gauge,
                help: Some("Line one\nline two \\ \"q\" \\t kept".into()),
                unit: None,
            },
            Family { name: "empty".into(), kind: MetricKind::Untyped, help: Some(String::new()), unit: None },
        ]
    );
    let e = parse_strict("#\tTYPE\tx\tsummary \n# HELP x   spaced  out  ").unwrap();
    assert_eq!(e.families[0].kind, MetricKind::Summary);
    assert_eq!(e.families[0].help.as_deref(), Some("spaced  out  "));
}

#[test]
fn metadata_errors() {
    assert_eq!(error("# TYPE m timer"), "line 1: unknown metric type `timer` for `m`");
    assert_eq!(error("# TYPE m Counter"), "line 1: unknown metric type `Counter` for `m`");
    assert_eq!(error("# TYPE m"), "line 1: missing metric type for `m`");
    assert_eq!(error("# TYPE"), "line 1: missing metric name in `# TYPE` line");
    assert_eq!(error("# TYPE 9m gauge"), "line 1: invalid metric name `9m` in `# TYPE` line");
    assert_eq!(error("# TYPE m gauge extra"), "line 1: unexpected `extra` after metric type of `m`");
    assert_eq!(error("# TYPE m gauge\n# TYPE m counter"), "line 2: second TYPE line for `m`");
    assert_eq!(error("# HELP m a\n# HELP m b"), "line 2: second HELP line for `m`");
    assert_eq!(error("# UNIT m s\n# UNIT m s"), "line 2: second UNIT line for `m`");
    assert_eq!(error("# UNIT m sec-onds"), "line 1: invalid unit `sec-onds` for `m`");
}

#[test]
fn failed_metadata_leaves_families_alone() {
    let e = parse("# TYPE m gauge\n# TYPE m counter\n# TYPE n timer\n");
    assert_eq!(e.families.len(), 1);
    assert_eq!(e.families[0].kind, MetricKind::Gauge);
    assert_eq!(e.errors.len(), 2);
}

#[test]
fn other_hash_lines_are_comments() {
    let e = parse_strict(
        "#\n# just a comment\n#HELP m not metadata\n# HELPER m x\n#!shebang\n# TYPE: m nope\n  # indented\n",
    )
    .unwrap();
    assert!(e.families.is_empty() && e.samples.is_empty());
}

#[test]
fn blank_lines_crlf_and_tabs() {
    let e = parse_strict("\r\n# TYPE m counter\r\n\r\n  \t\r\nm{a=\"1\"}\t3\t\t100\r\n\tm{a=\"2\"}  4 \r\n")
        .unwrap();
    assert_eq!(e.families[0].kind, MetricKind::Counter);
    assert_eq!(e.samples.len(), 2);
    assert_eq!((e.samples[0].value, e.samples[0].timestamp_ms, e.samples[0].line), (3.0, Some(100), 5));
    assert_eq!((e.samples[1].value, e.samples[1].line), (4.0, 6));
    assert_eq!(e.samples[1].label("a"), Some("2"));
}

#[test]
fn lone_carriage_return_inside_a_line_is_an_error() {
    assert_eq!(error("m 1\r2"), "line 1: invalid value `1\r2` for `m`");
}

#[test]
fn openmetrics_document() {
    let text = "# TYPE acme_http_router_request_seconds summary\n\
                # UNIT acme_http_router_request_seconds seconds\n\
                # HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.\n\
                acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32\n\
                acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0\n\
                acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0\n\
                # TYPE go_goroutines gauge\n\
                go_goroutines 69\n\
                # TYPE process_cpu counter\n\
                # UNIT process_cpu seconds\n\
                process_cpu_total 4.20072246e+06\n\
                process_cpu_created 1.5e9 1605281325.5\n\
                # TYPE foo histogram\n\
                foo_bucket{le=\"0.1\"} 8 # {id=\"abc\"} 0.054 1520879607.7\n\
                foo_bucket{le=\"+Inf\"} 17 1520879607789 # {id=\"def\"} 8.5\n\
                # TYPE build info\n\
                build_info{version=\"1.2\"} 1\n\
                # TYPE state stateset\n\
                # TYPE queue gaugehistogram\n\
                queue_gsum 3\n\
                # TYPE other unknown\n\
                # EOF\n";
    let e = parse_strict(text).unwrap();
    assert_eq!(e.samples.len(), 10);
    let kind = |sample: &str| e.family_of(sample).map(|f| (f.name.as_str(), f.kind));
    assert_eq!(
        kind("acme_http_router_request_seconds_created"),
        Some(("acme_http_router_request_seconds", MetricKind::Summary))
    );
    assert_eq!(kind("process_cpu_total"), Some(("process_cpu", MetricKind::Counter)));
    assert_eq!(kind("process_cpu_created"), Some(("process_cpu", MetricKind::Counter)));
    assert_eq!(kind("foo_bucket"), Some(("foo", MetricKind::Histogram)));
    assert_eq!(kind("build_info"), Some(("build", MetricKind::Gauge)));
    assert_eq!(kind("queue_gsum"), Some(("queue", MetricKind::Histogram)));
    assert_eq!(e.family_of("state").map(|f| f.kind), Some(MetricKind::Gauge));
    assert_eq!(e.family_of("other").map(|f| f.kind), Some(MetricKind::Untyped));
    assert_eq!(e.family_of("process_cpu").and_then(|f| f.unit.as_deref()), Some("seconds"));
    assert_eq!(e.samples[5].timestamp_ms, Some(1_605_281_325_500));
    assert_eq!(e.samples[7].timestamp_ms, Some(1_520_879_607_789));
}

#[test]
fn content_after_eof_is_one_error() {
    let e = parse("m 1\n# EOF\n\nm 2\nm 3\n");
    assert_eq!(e.samples.len(), 1);
    assert_eq!(e.errors, [ParseError { line: 4, message: "content after `# EOF` on line 2".into() }]);
    assert!(parse_strict("m 1\n# EOF\n").is_ok());
    assert!(parse_strict("m 1\n# EOF").is_ok());
    assert!(parse_strict("m 1\n# EOF more\nm 2").is_ok(), "not an EOF line");
}

#[test]
fn bad_exemplars() {
    assert_eq!(error("m 1 # x"), "line 1: invalid exemplar for `m`: expected `{` after `#`");
    assert_eq!(error("m 1 # {a=\"b\"}"), "line 1: invalid exemplar for `m`: missing value");
    assert_eq!(
        error("m 1 # {a=\"b} 1"),
        "line 1: invalid exemplar for `m`: unterminated label value for `m`"
    );
    assert_eq!(error("m 1 # {} 1 2 3"), "line 1: invalid exemplar for `m`: unexpected `3`");
    assert_eq!(error("m 1 # {} 1 x"), "line 1: invalid exemplar for `m`: invalid timestamp `x`");
}

#[test]
fn tolerant_keeps_good_lines_strict_stops() {
    let text = "# TYPE a gauge\na 1\na{x=\"1\" 2\nb 3\nc\n# TYPE a counter\nd 4 5 6\ne 5\n";
    let e = parse(text);
    let names: Vec<&str> = e.samples.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "e"]);
    let lines: Vec<usize> = e.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 5, 6, 7]);
    assert_eq!(e.families.len(), 1);
    assert_eq!(parse_strict(text), Err(e.errors[0].clone()));
}

#[test]
fn duplicates_by_line() {
    let e = parse_strict("m{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 2\nm{a=\"1\"} 3\nn 1\nn 2\n").unwrap();
    assert_eq!(e.duplicates(), [(1, 2), (4, 5)]);
}

#[test]
fn empty_input() {
    for text in ["", "\n", "\r\n\r\n", "   "] {
        assert_eq!(parse_strict(text), Ok(Exposition::default()), "{text:?}");
    }
}

/// What every parse must satisfy, whatever the input.
fn check_invariants(text: &str) {
    let tolerant = parse(text);
    let line_count = text.split('\n').count();
    for error in &tolerant.errors {
        assert!((1..=line_count).contains(&error.line), "{text:?}: {error}");
        assert!(!error.message.is_empty());
        // A message is one line of a report.
        assert!(!error.message.contains('\n'), "{error}");
    }
    assert!(tolerant.samples.windows(2).all(|w| w[0].line < w[1].line));
    assert!(tolerant.samples.iter().all(|s| is_metric_name(&s.name)));
    for sample in &tolerant.samples {
        assert!(tolerant.errors.iter().all(|e| e.line != sample.line), "{text:?}");
        assert!(sample.labels.iter().all(|(name, _)| is_label_name(name)));
        let names: std::collections::HashSet<&str> = sample.labels.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), sample.labels.len());
    }
    match parse_strict(text) {
        Ok(strict) => {
            assert!(tolerant.errors.is_empty(), "{text:?}");
            assert_eq!(strict.samples.len(), tolerant.samples.len());
        }
        Err(first) => assert_eq!(Some(&first), tolerant.errors.first(), "{text:?}"),
    }
    let _ = tolerant.duplicates();
    for sample in &tolerant.samples {
        let _ = tolerant.family_of(&sample.name);
    }
}

/// Pieces that make the parser's every branch likely: syntax, keywords, numbers at and past the
/// edges of f64 and i64, and characters that are not ASCII or not printable.
const FRAGMENTS: [&str; 50] = [
    "m",
    "m_sum",
    "le",
    "a",
    "{",
    "}",
    "\"",
    "\\",
    "\\n",
    "\\\"",
    "=",
    ",",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "#",
    "# ",
    "HELP ",
    "TYPE ",
    "UNIT ",
    "EOF",
    "counter",
    "histogram",
    "1",
    "-1.5e3",
    "NaN",
    "+Inf",
    ".",
    "e",
    "é",
    "✓",
    "\u{0}",
    "\u{feff}",
    "\u{3000}",
    "\u{fffd}",
    "1520879607.789",
    "_",
    "1e999",
    "-1e-999",
    "4.9e-324",
    "1.7976931348623157e308",
    "99999999999999999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "1e17",
    "0x1p3",
    "1_000",
];

/// A valid exposition to mutate: every kind of line the parser knows.
const VALID: &str = "# HELP http_requests_total The total number of HTTP requests.\n\
                     # TYPE http_requests_total counter\n\
                     http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                     msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
                     something_weird{problem=\"division by zero\"} +Inf -3982045\n\
                     # TYPE lat histogram\n\
                     # UNIT lat seconds\n\
                     lat_bucket{le=\"0.05\"} 24054 # {trace=\"x\"} 0.04\n\
                     lat_sum 53423\n\
                     # EOF\n";

/// A label value as the text format escapes it.
fn escape_label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One byte edit of [`VALID`]: remove, insert, or overwrite at a position (taken modulo the
/// length at the time).
#[derive(Debug, Clone)]
enum Edit {
    Remove(usize),
    Insert(usize, u8),
    Overwrite(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes the syntax turns on are inserted more often than chance would.
    let byte = prop_oneof![prop::sample::select(b"{}\"\\=, \t\n\r#e.-+".to_vec()), any::<u8>()];
    prop_oneof![
        any::<usize>().prop_map(Edit::Remove),
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), byte).prop_map(|(at, b)| Edit::Overwrite(at, b)),
    ]
}

/// A label name; names may repeat within a set, which must then be refused.
fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["a", "b", "le", "__name__"]).prop_map(str::to_owned),
        "[a-zA-Z_][a-zA-Z0-9_]{0,12}"
    ]
}

#[test]
fn the_valid_input_is_valid() {
    assert!(parse_strict(VALID).is_ok());
    check_invariants(VALID);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Scrapes arrive as bytes and are read with `from_utf8_lossy`, as the probes do.
    #[test]
    fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_invariants(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn any_fragments_never_panic(
        parts in prop::collection::vec(prop::sample::select(FRAGMENTS.to_vec()), 0..80),
    ) {
        check_invariants(&parts.concat());
    }

    /// A few byte edits of a valid exposition reach the error paths deep inside a line.
    #[test]
    fn edited_valid_input_never_panics(edits in prop::collection::vec(edit(), 1..6)) {
        let mut bytes = VALID.as_bytes().to_vec();
        for edit in edits {
            match edit {
                Edit::Remove(at) => {
                    bytes.remove(at % bytes.len());
                }
                Edit::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
                Edit::Overwrite(at, b) => {
                    let at = at % bytes.len();
                    bytes[at] = b;
                }
            }
        }
        check_invariants(&String::from_utf8_lossy(&bytes));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(50))]

    /// Hundreds of labels with any values, repeated names, and values or timestamps of any
    /// size: the sample is read exactly when its label names are distinct and its numbers
    /// fit, and refused with one error otherwise.
    #[test]
    fn deep_label_sets_and_huge_numbers(
        labels in prop::collection::vec((label_name(), any::<String>()), 0..300),
        trailing_comma in any::<bool>(),
        value in prop_oneof![
            any::<f64>().prop_map(|v| v.to_string()),
            "[0-9]{1,400}",
            "-?[0-9]{1,3}e[0-9]{1,4}",
        ],
        timestamp in prop::option::of(prop_oneof![
            any::<i64>().prop_map(|t| t.to_string()),
            "[0-9]{19,40}",
        ]),
    ) {
        let mut line = String::from("m{");
        for (i, (name, value)) in labels.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&format!("{name}=\"{}\"", escape_label_value(value)));
        }
        if trailing_comma && !labels.is_empty() {
            line.push(',');
        }
        line.push_str(&format!("}} {value}"));
        if let Some(t) = &timestamp {
            line.push_str(&format!(" {t}"));
        }
        check_invariants(&line);

        let names: std::collections::HashSet<&String> = labels.iter().map(|(n, _)| n).collect();
        let distinct = names.len() == labels.len();
        // `to_string` spells the special values as Rust does; the parser takes those too.
        let special = matches!(value.as_str(), "inf" | "-inf" | "NaN");
        let value_fits = special || value.parse::<f64>().is_ok_and(f64::is_finite);
        let timestamp_fits = timestamp.as_ref().is_none_or(|t| t.parse::<i64>().is_ok());
        match parse_strict(&line) {
            Ok(e) => {
                prop_assert!(distinct && value_fits && timestamp_fits, "{line:?}");
                prop_assert_eq!(&e.samples[0].labels, &labels);
                prop_assert_eq!(e.samples[0].timestamp_ms, timestamp.and_then(|t| t.parse().ok()));
            }
            Err(error) => prop_assert!(!(distinct && value_fits && timestamp_fits), "{line:?}: {error}"),
        }
    }
}

#[test]
fn ten_thousand_lines() {
    let mut text = String::new();
    let mut lines = 0;
    for family in 0..500 {
        text.push_str(&format!("# HELP job_{family}_seconds Time spent, per \"stage\".\n"));
        text.push_str(&format!("# TYPE job_{family}_seconds histogram\n"));
        lines += 2;
        for bucket in 0..17 {
            text.push_str(&format!(
                "job_{family}_seconds_bucket{{host=\"node {family}\",path=\"/a,b{{c}}\",le=\"{bucket}.5\"}} {} 1700000000000\n",
                bucket * 3
            ));
        }
        text.push_str(&format!("job_{family}_seconds_sum{{host=\"node {family}\"}} 12.5e3\n"));
        lines += 18;
    }
    assert_eq!(lines, 10_000);
    let e = parse(&text);
    assert!(e.errors.is_empty(), "{:?}", e.errors.first());
    assert_eq!(e.families.len(), 500);
    assert_eq!(e.samples.len(), 9000);
    assert_eq!(e.samples.last().map(|s| s.line), Some(10_000));
    assert!(e.duplicates().is_empty());
    assert!(e.samples.iter().all(|s| e.family_of(&s.name).is_some()));

    let broken = text.replace("le=\"3.5\"}", "le=\"3.5}");
    let e = parse(&broken);
    assert_eq!(e.errors.len(), 500);
    assert_eq!(e.samples.len(), 8500);
}
