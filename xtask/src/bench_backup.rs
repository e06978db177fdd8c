//! `cargo xtask bench backup`: `kyb-backup create` next to the runbook's `pg_dump | gzip` +
//! `sha256sum`, `pg_dump -Fc` and the bare extraction `pg_dump -Fc -Z0 > /dev/null`, on one
//! database of realistic rows, in alternating order; then verify's hashing next to `sha256sum`
//! on the same file, and a restore drill of the backup made.

use anyhow::{Context, Result, bail};
use kyb_testkit::Stack;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const DB: &str = "kyb_bench";
/// The database is (re)built until it is at least this big.
const MIN_DB_BYTES: i64 = 700 * 1024 * 1024;
const RUNS: usize = 5;

pub fn run() -> Result<ExitCode> {
    let stack = Stack::ensure().context("cannot start the private PostgreSQL stack")?;
    let status = crate::cargo().args(["build", "--release", "--quiet", "--bin", "kyb-backup"]).status()?;
    anyhow::ensure!(status.success(), "building kyb-backup failed");
    let bin = crate::sandbox::target_dir().join("release/kyb-backup");
    let work = crate::sandbox::target_dir().join("bench/backup");
    std::fs::create_dir_all(&work)?;
    seed(&stack)?;
    let db_bytes: i64 = stack.psql(DB, &format!("SELECT pg_database_size('{DB}')"))?.trim().parse()?;
    let bindir = kyb_backup::pg_bindir(None).context("no pg_dump found")?;
    let config = write_config(&stack, &work)?;
    let out = work.join("out");
    let peer = |sh: &str| -> Result<Duration> {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out)?;
        let started = Instant::now();
        let status = Command::new("sh")
            .args(["-c", sh])
            .env("PGPASSWORD", &stack.password)
            .env("PATH", format!("{}:/usr/bin:/bin", bindir.display()))
            .stdin(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "`{sh}` failed: {status}");
        Ok(started.elapsed())
    };
    let conn = format!("-h 127.0.0.1 -p {} -U {} -d {DB}", stack.pg_port, stack.pg_user);
    let o = out.display();
    let runbook = format!(
        "set -e; pg_dump {conn} | gzip > {o}/database.sql.gz; sha256sum {o}/database.sql.gz > {o}/sum"
    );
    let custom = format!("pg_dump -Fc {conn} -f {o}/database.dump");
    let extract = format!("pg_dump -Fc -Z0 {conn} > /dev/null");
    let ours = || -> Result<(Duration, u64, u64)> {
        let _ = std::fs::remove_dir_all(work.join("backups"));
        let started = Instant::now();
        let run =
            Command::new(&bin).args(["create", "--format", "json", "--config"]).arg(&config).output()?;
        let took = started.elapsed();
        anyhow::ensure!(
            run.status.success(),
            "kyb-backup create failed: {}",
            String::from_utf8_lossy(&run.stdout)
        );
        let listed =
            Command::new(&bin).args(["list", "--format", "json", "--config"]).arg(&config).output()?;
        let v: serde_json::Value = serde_json::from_slice(&listed.stdout)?;
        let m = &v[0]["metadata"];
        Ok((took, m["size_bytes"].as_u64().unwrap_or(0), m["dump_bytes"].as_u64().unwrap_or(0)))
    };

    println!(
        "## backup of a {:.0} MB database of realistic rows ({} CPUs, PostgreSQL {})\n",
        db_bytes as f64 / 1e6,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        stack.psql(DB, "SHOW server_version")?.trim()
    );
    println!(
        "| run | kyb-backup create | runbook pg_dump \\| gzip + sha256sum | pg_dump -Fc | pg_dump -Fc -Z0 > /dev/null |"
    );
    println!("|---|---|---|---|---|");
    let mut times: [Vec<Duration>; 4] = Default::default();
    let mut sizes = (0u64, 0u64, 0u64, 0u64);
    for i in 0..RUNS {
        // Rotate the order, so that no command always meets the same cache state.
        let mut row = [Duration::ZERO; 4];
        for k in 0..4 {
            let which = (i + k) % 4;
            row[which] = match which {
                0 => {
                    let (t, stored, raw) = ours()?;
                    sizes.0 = stored;
                    sizes.3 = raw;
                    t
                }
                1 => {
                    let t = peer(&runbook)?;
                    sizes.1 = std::fs::metadata(out.join("database.sql.gz"))?.len();
                    t
                }
                2 => {
                    let t = peer(&custom)?;
                    sizes.2 = std::fs::metadata(out.join("database.dump"))?.len();
                    t
                }
                _ => peer(&extract)?,
            };
        }
        println!("| {} | {} | {} | {} | {} |", i + 1, ms(row[0]), ms(row[1]), ms(row[2]), ms(row[3]));
        for (k, t) in row.into_iter().enumerate() {
            times[k].push(t);
        }
    }
    let m: Vec<Duration> = times.iter().map(|t| median(t)).collect();
    let vs_runbook = m[0].as_secs_f64() / m[1].as_secs_f64();
    let vs_extract = m[0].as_secs_f64() / m[3].as_secs_f64();
    println!(
        "\nmedian: kyb-backup {}, runbook {}, pg_dump -Fc {}, extraction {}",
        ms(m[0]),
        ms(m[1]),
        ms(m[2]),
        ms(m[3])
    );
    let fastest: Vec<Duration> = times.iter().map(|t| t.iter().copied().min().unwrap_or_default()).collect();
    println!(
        "fastest: kyb-backup {}, runbook {}, pg_dump -Fc {}, extraction {} (ratios {:.2}x runbook, {:.2}x extraction)",
        ms(fastest[0]),
        ms(fastest[1]),
        ms(fastest[2]),
        ms(fastest[3]),
        fastest[0].as_secs_f64() / fastest[1].as_secs_f64(),
        fastest[0].as_secs_f64() / fastest[3].as_secs_f64()
    );
    println!(
        "kyb-backup is {vs_runbook:.2}x the runbook pipeline's time (target <= 0.35x: {}) and {vs_extract:.2}x the \
         extraction limit (target <= 1.6x: {})",
        verdict(vs_runbook <= 0.35),
        verdict(vs_extract <= 1.6)
    );
    println!(
        "sizes: kyb-backup {} MB (custom archive of {} MB, gzip level 1), runbook {} MB (plain SQL, gzip -6), \
         pg_dump -Fc {} MB",
        sizes.0 / 1_000_000,
        sizes.3 / 1_000_000,
        sizes.1 / 1_000_000,
        sizes.2 / 1_000_000
    );

    // Verification: hashing the same file, then the whole verify, then the drill.
    ours()?;
    let dir = backup_dir(&work)?;
    let file = dir.join("database.dump.gz");
    let len = std::fs::metadata(&file)?.len() as f64;
    println!("\n## verify: SHA-256 of the {:.0} MB backup file (page cache warm)\n", len / 1e6);
    println!("| run | kyb-backup (sha2) | sha256sum |");
    println!("|---|---|---|");
    let (mut ours_h, mut theirs_h) = (Vec::new(), Vec::new());
    for i in 0..RUNS + 2 {
        let mut a = Duration::ZERO;
        let mut b = Duration::ZERO;
        for first in [i % 2 == 0, i % 2 != 0] {
            let started = Instant::now();
            if first {
                kyb_core::digest::sha256_file(&file)?;
                a = started.elapsed();
            } else {
                let st = Command::new("sha256sum").arg(&file).stdout(Stdio::null()).status()?;
                anyhow::ensure!(st.success(), "sha256sum failed");
                b = started.elapsed();
            }
        }
        println!("| {} | {} | {} |", i + 1, ms(a), ms(b));
        ours_h.push(a);
        theirs_h.push(b);
    }
    let (ho, ht) = (median(&ours_h), median(&theirs_h));
    let mbps = |d: Duration| len / 1e6 / d.as_secs_f64();
    println!(
        "\nmedian: kyb-backup {:.0} MB/s, sha256sum {:.0} MB/s: {:.2}x sha256sum's throughput (target >= 3x: {})",
        mbps(ho),
        mbps(ht),
        ht.as_secs_f64() / ho.as_secs_f64(),
        verdict(ht.as_secs_f64() / ho.as_secs_f64() >= 3.0)
    );

    let started = Instant::now();
    let v = Command::new(&bin).args(["verify", "--latest", "--config"]).arg(&config).output()?;
    let verify_took = started.elapsed();
    anyhow::ensure!(v.status.success(), "verify failed: {}", String::from_utf8_lossy(&v.stdout));
    let started = Instant::now();
    let d =
        Command::new(&bin).args(["restore-drill", "--format", "json", "--config"]).arg(&config).output()?;
    let drill_took = started.elapsed();
    let report: serde_json::Value = serde_json::from_slice(&d.stdout)?;
    let ok = d.status.success();
    println!(
        "\nfull `kyb-backup verify` (sha256 + pg_restore reading every block): {}; restore drill: {} ({}; {})",
        ms(verify_took),
        ms(drill_took),
        if ok { "OK" } else { "FAILED" },
        report["tasks"][0]["summary"].as_str().unwrap_or("")
    );
    if !ok {
        bail!("the restore drill of the benchmark backup failed");
    }
    Ok(ExitCode::SUCCESS)
}

/// `kyb_bench`: companies with owners and screening checks, text, numbers and jsonb that
/// compress the way real rows do (about 3-4:1), not pgbench's filler.
fn seed(stack: &Stack) -> Result<()> {
    let exists =
        stack.psql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{DB}'"))?;
    if exists.trim() == "0" {
        stack.psql("postgres", &format!("CREATE DATABASE {DB}"))?;
    }
    let size = |s: &Stack| -> Result<i64> {
        Ok(s.psql(DB, &format!("SELECT pg_database_size('{DB}')"))?.trim().parse()?)
    };
    if size(stack)? >= MIN_DB_BYTES {
        return Ok(());
    }
    eprintln!("bench: building {DB} (about {} MB; once)", MIN_DB_BYTES / 1_000_000);
    stack.psql(
        DB,
        "DROP TABLE IF EXISTS checks, owners, companies;
         CREATE TABLE companies (id bigint PRIMARY KEY, name text NOT NULL, registration text, country text,
           city text, founded date, employees int, revenue numeric(14,2), risk_score real, description text,
           meta jsonb);
         CREATE TABLE owners (id bigint PRIMARY KEY, company_id bigint REFERENCES companies(id), full_name text,
           birth_year int, nationality text, share numeric(5,2), pep boolean);
         CREATE TABLE checks (id bigserial PRIMARY KEY, company_id bigint, kind text, status text,
           score real, checked_at timestamptz, details jsonb);",
    )?;
    // Word lists indexed by a hash of the row number: varied, but not random bytes.
    let words = "ARRAY['Nordic','Global','Alpine','Delta','Summit','Harbor','Atlas','Vertex','Pioneer','Crescent',\
                 'Meridian','Falcon','Granite','Horizon','Liberty','Orion','Quantum','Sterling','Titan','Zenith']";
    let kinds = "ARRAY['Holding','Trading','Logistics','Software','Capital','Foods','Energy','Textiles','Media','Partners']";
    let cities = "ARRAY['Berlin','Paris','Amsterdam','Vienna','Madrid','Dublin','Lisbon','Prague','Warsaw','Oslo','Milan','Zurich']";
    for batch in 0..10 {
        let (lo, hi) = (batch * 200_000 + 1, (batch + 1) * 200_000);
        stack.psql(
            DB,
            &format!(
                "CREATE FUNCTION pg_temp.h(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT hashint4($1) & 2147483647';
                 INSERT INTO companies SELECT g,
                   ({words})[1 + pg_temp.h(g) % 20] || ' ' || ({kinds})[1 + pg_temp.h(g + 7) % 10] || ' ' ||
                     (ARRAY['GmbH','SA','BV','Ltd','AG','SRL'])[1 + g % 6],
                   'REG-' || lpad((pg_temp.h(g * 3) % 100000000)::text, 8, '0'),
                   (ARRAY['DE','FR','NL','AT','ES','IE','PT','CZ','PL','NO','IT','CH'])[1 + g % 12],
                   ({cities})[1 + pg_temp.h(g + 1) % 12],
                   date '1950-01-01' + (pg_temp.h(g + 2) % 26000),
                   pg_temp.h(g + 3) % 20000,
                   (pg_temp.h(g + 4) % 1000000000) / 100.0,
                   (pg_temp.h(g + 5) % 1000) / 10.0,
                   'Provides ' || lower(({kinds})[1 + pg_temp.h(g + 8) % 10]) || ' services in ' ||
                     ({cities})[1 + pg_temp.h(g + 9) % 12] || ' since ' || (1950 + pg_temp.h(g + 2) % 70) ||
                     '; contact ' || lower(({words})[1 + pg_temp.h(g + 10) % 20]) || '@example.com, ref ' ||
                     md5(g::text),
                   jsonb_build_object('vat', 'VAT' || pg_temp.h(g + 11), 'sector', pg_temp.h(g + 12) % 90,
                     'listed', g % 7 = 0, 'tags', jsonb_build_array(({words})[1 + g % 20], ({kinds})[1 + g % 10]),
                     'website', 'https://www.' || lower(({words})[1 + pg_temp.h(g) % 20]) || g || '.example')
                 FROM generate_series({lo}, {hi}) g;
                 INSERT INTO owners SELECT g, 1 + pg_temp.h(g) % {hi},
                   ({words})[1 + pg_temp.h(g + 20) % 20] || ' ' || ({cities})[1 + pg_temp.h(g + 21) % 12] || 'son',
                   1940 + pg_temp.h(g + 22) % 65,
                   (ARRAY['DE','FR','NL','AT','ES','IE'])[1 + g % 6],
                   (pg_temp.h(g + 23) % 10000) / 100.0,
                   g % 97 = 0
                 FROM generate_series({lo}, {hi}) g;
                 INSERT INTO checks (company_id, kind, status, score, checked_at, details)
                 SELECT 1 + (g - 1) / 2, (ARRAY['sanctions','pep','adverse-media','registry'])[1 + g % 4],
                   (ARRAY['clear','review','hit'])[1 + pg_temp.h(g + 30) % 3],
                   (pg_temp.h(g + 31) % 1000) / 1000.0,
                   timestamptz '2024-01-01' + make_interval(secs => pg_temp.h(g + 32) % 60000000),
                   jsonb_build_object('source', (ARRAY['ofac','eu','un','uk'])[1 + g % 4],
                     'matches', pg_temp.h(g + 33) % 5, 'reviewer', 'analyst' || (g % 40),
                     'note', 'Automated screening run ' || (g % 1000) || ' for ' || ({words})[1 + g % 20])
                 FROM generate_series({}, {}) g;",
                2 * lo - 1,
                2 * hi
            ),
        )?;
        if size(stack)? >= MIN_DB_BYTES {
            break;
        }
    }
    stack.psql(DB, "CREATE INDEX IF NOT EXISTS owners_company ON owners (company_id)")?;
    stack.psql(DB, "VACUUM ANALYZE")?;
    Ok(())
}

fn write_config(stack: &Stack, work: &Path) -> Result<PathBuf> {
    let password = work.join("password");
    kyb_core::fs::atomic_write(&password, stack.password.as_bytes(), 0o600)?;
    let config = work.join("kyb-maint.toml");
    let text = format!(
        "[paths]\nmaintenance_dir = \"maintenance\"\nbackup_dir = \"backups\"\n\n\
         [postgres]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\ndbname = \"{DB}\"\npassword_file = \"password\"\n\n\
         [backup]\nformat = \"custom\"\ncompression_level = 1\n",
        stack.pg_port, stack.pg_user
    );
    kyb_core::fs::atomic_write(&config, text.as_bytes(), 0o600)?;
    Ok(config)
}

fn backup_dir(work: &Path) -> Result<PathBuf> {
    std::fs::read_dir(work.join("backups/full"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("backup_metadata.json").exists())
        .context("no backup made")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
