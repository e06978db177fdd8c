//! `cargo xtask bench logrotate`: kyb-logrotate next to Debian's logrotate (rotate + gzip a
//! 1 GiB log) and next to `find -mtime +30 -delete` (retention over 200k files), on the same
//! input in the same run.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

const LOG_BYTES: u64 = 1 << 30;
const RUNS: usize = 3;
const FILES: usize = 200_000;
const RETENTION_RUNS: usize = 5;

pub fn run() -> Result<ExitCode> {
    for tool in ["logrotate", "find", "gzip"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()?
            .code()
            != Some(0)
        {
            bail!("{tool} is needed for the comparison (Debian: apt-get install {tool})");
        }
    }
    let status = crate::cargo().args(["build", "--release", "--quiet", "--bin", "kyb-logrotate"]).status()?;
    anyhow::ensure!(status.success(), "building kyb-logrotate failed");
    let bin = crate::sandbox::target_dir().join("release/kyb-logrotate");
    let work = crate::sandbox::target_dir().join("bench/logrotate");
    std::fs::create_dir_all(&work)?;
    let input = work.join("input-1g.log");
    if std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0) < LOG_BYTES {
        eprintln!("bench: writing {} of JSON log lines to {}", LOG_BYTES, input.display());
        write_log(&input, LOG_BYTES)?;
    }
    let size = std::fs::metadata(&input)?.len();
    println!(
        "## rotate + compress {:.2} GiB of JSON log lines ({} CPUs)\n",
        size as f64 / (1u64 << 30) as f64,
        cpus()
    );
    println!("| run | kyb-logrotate | ratio | logrotate (gzip -6) | ratio |");
    println!("|---|---|---|---|---|");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let (t_ours, gz_ours) = rotate_ours(&bin, &work, &input)?;
        let (t_theirs, gz_theirs) = rotate_logrotate(&work, &input)?;
        println!(
            "| {} | {} ms | {:.2}:1 | {} ms | {:.2}:1 |",
            i + 1,
            t_ours.as_millis(),
            size as f64 / gz_ours as f64,
            t_theirs.as_millis(),
            size as f64 / gz_theirs as f64
        );
        ours.push((t_ours, gz_ours));
        theirs.push((t_theirs, gz_theirs));
    }
    let (mo, mt) = (median(ours.iter().map(|o| o.0)), median(theirs.iter().map(|t| t.0)));
    let ratio_gap = (size as f64 / ours[0].1 as f64) / (size as f64 / theirs[0].1 as f64);
    println!(
        "\nmedian: kyb-logrotate {} ms, logrotate {} ms: {:.2}x logrotate's time (target <= 0.60x); \
         compression ratio {:.1}% of logrotate's (target >= 90%)\n",
        mo.as_millis(),
        mt.as_millis(),
        mo.as_secs_f64() / mt.as_secs_f64(),
        ratio_gap * 100.0
    );

    println!("## retention over {FILES} files, half of them older than 30 days\n");
    println!("| run | kyb-logrotate run | find -mtime +30 -delete |");
    println!("|---|---|---|");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..RETENTION_RUNS {
        let dir = work.join("retention");
        // Alternate which tool goes first, so neither always meets the fresher filesystem state.
        let mut t_ours = Duration::ZERO;
        let mut t_find = Duration::ZERO;
        for first in [i % 2 == 0, i % 2 != 0] {
            make_files(&dir)?;
            if first {
                t_ours = prune_ours(&bin, &work, &dir)?;
            } else {
                t_find = timed(Command::new("find").arg(&dir).args(["-mtime", "+30", "-delete"]))?;
                check_left(&dir)?;
            }
        }
        println!("| {} | {} ms | {} ms |", i + 1, t_ours.as_millis(), t_find.as_millis());
        ours.push(t_ours);
        theirs.push(t_find);
    }
    let (mo, mt) = (median(ours.into_iter()), median(theirs.into_iter()));
    println!(
        "\nmedian: kyb-logrotate {} ms, find {} ms: {:.2}x find's time (target <= 1.20x)",
        mo.as_millis(),
        mt.as_millis(),
        mo.as_secs_f64() / mt.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Realistic access-log lines: timestamps, request ids, routes, statuses, latencies, agents.
fn write_log(path: &Path, bytes: u64) -> Result<()> {
    const ROUTES: [&str; 8] = [
        "/api/v1/verify",
        "/api/v1/companies/{id}",
        "/api/v1/companies",
        "/api/v1/documents/upload",
        "/api/v1/search",
        "/api/v1/owners/{id}/screening",
        "/health",
        "/metrics",
    ];
    const AGENTS: [&str; 4] = ["kyb-web/3.2.1", "python-requests/2.31.0", "Go-http-client/1.1", "curl/8.5.0"];
    const MESSAGES: [&str; 5] = [
        "request handled",
        "cache miss, loaded from database",
        "model inference done",
        "validation failed",
        "upstream retry",
    ];
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut written = 0u64;
    let mut n = 0u64;
    let start_ms: u64 = 1_795_600_000_000;
    while written < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let status = [200, 200, 200, 200, 201, 204, 400, 404, 500][(x % 9) as usize];
        let line = format!(
            "{{\"ts\":{},\"level\":\"{}\",\"request_id\":\"{:016x}\",\"method\":\"{}\",\"path\":\"{}\",\"status\":{},\"latency_ms\":{:.1},\"bytes\":{},\"user_agent\":\"{}\",\"msg\":\"{}\"}}\n",
            start_ms + n * 3,
            if status >= 500 {
                "error"
            } else if status >= 400 {
                "warn"
            } else {
                "info"
            },
            x.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            if x.is_multiple_of(3) { "POST" } else { "GET" },
            ROUTES[(x >> 8) as usize % ROUTES.len()],
            status,
            (x >> 16) % 5000 / 10,
            (x >> 24) % 40_000,
            AGENTS[(x >> 32) as usize % AGENTS.len()],
            MESSAGES[(x >> 40) as usize % MESSAGES.len()],
        );
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        n += 1;
    }
    out.flush()?;
    Ok(())
}

fn fresh_copy(input: &Path, dir: &Path) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let log = dir.join("app.log");
    std::fs::copy(input, &log)?;
    Ok(log)
}

fn timed(cmd: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().context("cannot run the benchmarked command")?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "{:?} failed: {}{}",
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

fn rotate_ours(bin: &Path, work: &Path, input: &Path) -> Result<(Duration, u64)> {
    let dir = work.join("ours");
    let log = fresh_copy(input, &dir)?;
    let config = work.join("ours.toml");
    let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    std::fs::write(
        &config,
        format!(
            "[paths]\nmaintenance_dir = \"maint-ours\"\n\n[[logs]]\npath = \"{}\"\nsize_bytes = 1\nowner = \"{uid}\"\ngroup = \"{gid}\"\ncompress_level = 6\n",
            log.display()
        ),
    )?;
    let took = timed(Command::new(bin).args(["run", "--config"]).arg(&config).env("KYB_LOG", "warn"))?;
    Ok((took, gz_size(&dir)?))
}

fn rotate_logrotate(work: &Path, input: &Path) -> Result<(Duration, u64)> {
    let dir = work.join("theirs");
    let log = fresh_copy(input, &dir)?;
    let conf = work.join("logrotate.conf");
    std::fs::write(
        &conf,
        format!("{} {{\n    compress\n    rotate 5\n    size 1\n    missingok\n}}\n", log.display()),
    )?;
    let state = work.join("logrotate.state");
    let _ = std::fs::remove_file(&state);
    let took = timed(Command::new("logrotate").arg("-f").arg("-s").arg(&state).arg(&conf))?;
    Ok((took, gz_size(&dir)?))
}

fn gz_size(dir: &Path) -> Result<u64> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.path().extension().is_some_and(|x| x == "gz") {
            return Ok(e.metadata()?.len());
        }
    }
    bail!("no .gz in {}", dir.display())
}

fn make_files(dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let old = SystemTime::now() - Duration::from_secs(40 * 86_400);
    for i in 0..FILES {
        let path = dir.join(format!("app.log-20260101-000000-{i}.gz"));
        let f = std::fs::File::create(&path)?;
        if i.is_multiple_of(2) {
            f.set_modified(old)?;
        }
    }
    // Flush the creations, so both tools start from the same settled state.
    Command::new("sync").status()?;
    Ok(())
}

fn prune_ours(bin: &Path, work: &Path, dir: &Path) -> Result<Duration> {
    let config = work.join("retention.toml");
    let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    std::fs::write(
        &config,
        format!(
            "[paths]\nmaintenance_dir = \"maint-retention\"\n\n[[logs]]\npath = \"{}\"\nkeep_days = 30\nowner = \"{uid}\"\ngroup = \"{gid}\"\n",
            dir.join("app.log").display()
        ),
    )?;
    let took = timed(Command::new(bin).args(["run", "--config"]).arg(&config).env("KYB_LOG", "warn"))?;
    check_left(dir)?;
    Ok(took)
}

fn check_left(dir: &Path) -> Result<()> {
    let left =
        std::fs::read_dir(dir)?.filter(|e| e.as_ref().is_ok_and(|e| e.file_name() != "app.log")).count();
    anyhow::ensure!(left == FILES / 2, "{left} files left in {}, expected {}", dir.display(), FILES / 2);
    Ok(())
}

fn median(v: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = v.collect();
    v.sort();
    v[v.len() / 2]
}
