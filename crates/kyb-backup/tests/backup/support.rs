//! Fixtures shared by the backup tests: seeded databases, and the configs each area builds.

use kyb_backup::{CreateConfig, CreateReport, DrillConfig, Format, Metadata, VerifyConfig, Which};
use kyb_testkit::{TestDb, fresh_database};
use std::path::Path;

/// A database with several tables, an index, a sequence, a view and over 100k rows.
pub async fn seeded(tag: &str) -> TestDb {
    let db = fresh_database(tag).await;
    db.connect()
        .await
        .batch_execute(
            "CREATE SEQUENCE invoice_no START 1000;
             CREATE TABLE companies (id bigint PRIMARY KEY, name text NOT NULL, country text, meta jsonb);
             CREATE TABLE owners (id bigint PRIMARY KEY, company_id bigint REFERENCES companies(id), name text, share numeric(5,2));
             CREATE TABLE checks (id bigserial PRIMARY KEY, company_id bigint, status text, checked_at timestamptz DEFAULT now());
             CREATE INDEX owners_company ON owners (company_id);
             INSERT INTO companies SELECT g, 'Company ' || g, (ARRAY['DE','FR','NL','US'])[1 + g % 4], jsonb_build_object('employees', g % 500)
               FROM generate_series(1, 60000) g;
             INSERT INTO owners SELECT g, 1 + g % 60000, 'Owner ' || g, (g % 100) FROM generate_series(1, 40000) g;
             INSERT INTO checks (company_id, status) SELECT 1 + g % 60000, (ARRAY['ok','review','rejected'])[1 + g % 3] FROM generate_series(1, 20000) g;
             CREATE VIEW company_owners AS SELECT c.name, o.name AS owner FROM companies c JOIN owners o ON o.company_id = c.id;",
        )
        .await
        .unwrap();
    db
}

pub fn create_cfg(db: &TestDb, dir: &Path) -> CreateConfig {
    CreateConfig {
        backup_dir: dir.to_owned(),
        postgres: db.pg_target(),
        format: Format::Custom,
        compression_level: 1,
        pg_bindir: None,
        timeout_ms: 120_000,
        lock_wait_timeout_ms: 5_000,
    }
}

pub const DUMP: &str = "database.dump.gz";

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

pub fn verify_cfg(dir: &Path, which: Which) -> VerifyConfig {
    VerifyConfig { backup_dir: dir.to_owned(), which, max_age_hours: 26, pg_bindir: None, timeout_ms: 60_000 }
}

pub fn drill_cfg(db: &TestDb, dir: &Path) -> DrillConfig {
    DrillConfig {
        backup_dir: dir.to_owned(),
        which: Which::Latest,
        postgres: db.pg_target(),
        pg_bindir: None,
        max_age_hours: 26,
        timeout_ms: 120_000,
    }
}

/// A database of one table with one row, an index on it, a view, a sequence, a function and a
/// trigger: every kind the drill compares, and counts of one.
pub async fn one_of_each(tag: &str) -> TestDb {
    let db = fresh_database(tag).await;
    db.connect()
        .await
        .batch_execute(
            "CREATE TABLE ledger (id bigint PRIMARY KEY, amount numeric NOT NULL);
             INSERT INTO ledger VALUES (1, 10);
             CREATE INDEX ledger_amount ON ledger (amount);
             CREATE SEQUENCE voucher_no START 500;
             CREATE VIEW big_entries AS SELECT id FROM ledger WHERE amount > 5;
             CREATE FUNCTION entry_total(lo bigint, hi bigint) RETURNS numeric LANGUAGE sql STABLE
               AS 'SELECT sum(amount) FROM public.ledger WHERE id BETWEEN lo AND hi';
             CREATE FUNCTION ledger_touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
             CREATE TRIGGER ledger_touched BEFORE UPDATE ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_touch();",
        )
        .await
        .unwrap();
    db
}

pub fn check_of<'a>(checks: &'a [kyb_core::Check], name: &str) -> &'a kyb_core::Check {
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

/// The metadata of a backup made (not planned: a dry run has none).
pub fn metadata(made: &CreateReport) -> &Metadata {
    made.metadata.as_ref().expect("a backup made has its metadata")
}
