//! Parse speed of `kyb_prom::parse` next to openmetrics-parser's `parse_prometheus`, on the same
//! generated exposition. Run by `cargo xtask bench prom`; prints one JSON object.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::time::Instant;

/// A scrape of a large service: `families` counter and histogram families, label values with
/// spaces, commas, braces and escapes, as route templates and user agents have.
fn exposition(target_bytes: usize) -> (String, usize) {
    let mut out = String::with_capacity(target_bytes + 4096);
    let mut series = 0;
    let mut family = 0;
    while out.len() < target_bytes {
        let name = format!("svc_http_requests_{family}_total");
        let _ = writeln!(out, "# HELP {name} Requests by route, method and code.\n# TYPE {name} counter");
        for i in 0..40 {
            let _ = writeln!(
                out,
                "{name}{{route=\"/api/v1/items/{{id}}/part {i}, x\",method=\"GET\",code=\"{}\",agent=\"curl \\\"7.{i}\\\"\"}} {}",
                200 + i % 5,
                family * 1000 + i
            );
            series += 1;
        }
        let h = format!("svc_request_seconds_{family}");
        let _ = writeln!(out, "# HELP {h} Latency.\n# TYPE {h} histogram");
        for route in 0..4 {
            for le in ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"] {
                let _ = writeln!(out, "{h}_bucket{{route=\"/r{route}\",le=\"{le}\"}} {}", route * 17 + 3);
                series += 1;
            }
            let _ = writeln!(
                out,
                "{h}_sum{{route=\"/r{route}\"}} 12.5\n{h}_count{{route=\"/r{route}\"}} {}",
                route * 17 + 3
            );
            series += 2;
        }
        family += 1;
    }
    (out, series)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mb: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let runs: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(9);
    let (text, series) = exposition(mb * 1_000_000);
    let ours_samples = kyb_prom::parse(&text).samples.len();
    assert_eq!(ours_samples, series, "our parser must read every series");
    assert!(kyb_prom::parse(&text).errors.is_empty());
    let peer = openmetrics_parser::prometheus::parse_prometheus(&text);
    let peer_ok = peer.is_ok();
    if let Err(e) = &peer {
        eprintln!("openmetrics-parser failed: {e:?}");
    }
    // Alternate the two, so drift on a shared machine hits both alike.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let e = kyb_prom::parse(&text);
        ours.push(t.elapsed().as_secs_f64());
        std::hint::black_box(e);
        let t = Instant::now();
        let e = openmetrics_parser::prometheus::parse_prometheus(&text);
        theirs.push(t.elapsed().as_secs_f64());
        std::hint::black_box(e.is_ok());
    }
    let (o, p) = (median(ours.clone()), median(theirs.clone()));
    let mbytes = text.len() as f64 / 1e6;
    println!(
        "{{\"bytes\":{},\"series\":{series},\"runs\":{runs},\"ours_median_s\":{o:.4},\"ours_min_s\":{:.4},\"ours_max_s\":{:.4},\
         \"ours_mb_per_s\":{:.1},\"peer_ok\":{peer_ok},\"peer_median_s\":{p:.4},\"peer_min_s\":{:.4},\"peer_max_s\":{:.4},\
         \"peer_mb_per_s\":{:.1},\"speedup\":{:.1}}}",
        text.len(),
        ours.iter().copied().fold(f64::MAX, f64::min),
        ours.iter().copied().fold(0.0, f64::max),
        mbytes / o,
        theirs.iter().copied().fold(f64::MAX, f64::min),
        theirs.iter().copied().fold(0.0, f64::max),
        mbytes / p,
        p / o
    );
}
