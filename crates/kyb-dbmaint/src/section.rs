//! The `[dbmaint]` section of the config file: its keys, defaults, checks and paths, and the
//! [`DbMaintConfig`] (its [`DbConfig`], [`ReportConfig`] and [`CapacityConfig`]) derived from it.

use crate::{CapacityConfig, DbConfig, DbMaintConfig, ReportConfig};
use kyb_core::config::{FieldError, TimeoutMs, resolve_path};
use kyb_core::{PgTarget, Thresholds};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[dbmaint]`: PostgreSQL maintenance (`kyb-dbmaint`, and the weekly and monthly flows when
/// `[postgres]` is set): the guard rails of each ANALYZE, VACUUM and REINDEX, the levels the
/// read-only reports judge by, and the size history behind the disk forecast.
///
/// The database is `[postgres]`'s, and connecting, like each query the task runs for itself,
/// must answer within `[postgres] timeout_ms`. The report levels default to PgHero's and
/// check_postgres's, named with each key. For every level pair but two, a value at or above a
/// level has its status; for `cache_hit_pct` and `days_left` lower is worse.
///
/// ```toml
/// [dbmaint]
/// lock_timeout_ms = 5000
/// bloat_bytes = { warn = 52428800, crit = 1073741824 }
/// data_disk = "/var/lib/postgresql"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DbMaintSection {
    /// `lock_timeout` of each ANALYZE, VACUUM and REINDEX statement, in milliseconds: a table
    /// whose lock is not granted in time is skipped with a Warn, and the run goes on with the
    /// next one.
    pub lock_timeout_ms: TimeoutMs,
    /// `statement_timeout` of each ANALYZE, VACUUM and REINDEX statement, in milliseconds: a
    /// statement still running then is cancelled and its table reported with a Warn.
    pub statement_timeout_ms: TimeoutMs,
    /// How long an ANALYZE, VACUUM or REINDEX run waits, in milliseconds, for another one to
    /// release the database's advisory lock before it gives up and fails. The reports and the
    /// capacity run take no lock.
    pub lock_wait_ms: TimeoutMs,
    /// A non-unique index scanned at most this many times since the statistics were last reset
    /// is reported as unused (PgHero: 50).
    #[schemars(range(min = 0))]
    pub unused_index_max_scans: i64,
    /// ...and only when it takes at least this many bytes (PgHero has no minimum: 0 reports
    /// unused indexes of any size).
    #[schemars(range(min = 0))]
    pub unused_index_min_bytes: i64,
    /// Levels of the estimated wasted bytes of a table or B-tree index (warn: PgHero's 100 MiB
    /// of index bloat; crit: check_postgres's 1 GiB); not negative. `kyb-dbmaint reindex`
    /// rebuilds the indexes at or above `warn`.
    pub bloat_bytes: Thresholds,
    /// Bloat is judged, and an index rebuilt, only when the wasted part is at least this share
    /// of the relation, in percent (0 to 100), so a large healthy table is not flagged for its
    /// normal slack.
    #[schemars(range(min = 0, max = 100))]
    pub bloat_min_pct: f64,
    /// How many tables the table-sizes report lists, largest first (1 to 10000).
    #[schemars(range(min = 1, max = 10_000))]
    pub table_limit: usize,
    /// Levels of a table's dead tuples as a percentage of its live and dead tuples; not
    /// negative.
    pub dead_tuple_pct: Thresholds,
    /// ...judged only on tables with at least this many dead tuples: autovacuum's own base
    /// threshold is 50, and 1000 keeps small tables quiet.
    #[schemars(range(min = 0))]
    pub dead_tuple_min: i64,
    /// Levels of the hours since a table's last vacuum (manual or auto), counted only while it
    /// has more dead tuples than autovacuum's default trigger, and since its last analyze,
    /// counted only while it has changed past autovacuum's default analyze trigger
    /// (check_postgres's 1 and 2 days); not negative. A table never vacuumed or analyzed with
    /// such work waiting is a Warn.
    pub stale_hours: Thresholds,
    /// Levels of the transaction-ID age and the multixact age of the database and of each
    /// table, TOAST tables included (check_postgres: 1.3 and 1.4 billion; wraparound comes at
    /// about 2.1 billion); not negative.
    pub xid_age: Thresholds,
    /// Levels of the share of its range a sequence has used, in percent, against the narrowest
    /// of its own maximum and the columns it feeds (check_postgres); not negative.
    pub sequence_pct: Thresholds,
    /// Levels of the client connections to the server, as a percentage of `max_connections`
    /// less the connections reserved for superusers (check_postgres); not negative.
    pub connections_pct: Thresholds,
    /// Levels of how long a query has been running, in seconds (warn: PgHero's 60 s; crit:
    /// check_postgres's 5 minutes); not negative.
    pub query_seconds: Thresholds,
    /// Levels of how long a session has sat idle inside an open transaction, in seconds; not
    /// negative. Such a session holds its locks and keeps vacuum from removing dead tuples.
    pub idle_in_transaction_seconds: Thresholds,
    /// Levels of the shared-buffer hit ratio of tables, and of indexes, in percent (PgHero's
    /// 99). Lower is worse: below `warn` is Warn, below `crit` Crit; `warn` must not be below
    /// `crit`, nor `crit` below 0.
    pub cache_hit_pct: Thresholds,
    /// The hit ratio is judged only from this many block reads up: with fewer there is too
    /// little traffic to say anything.
    #[schemars(range(min = 0))]
    pub cache_min_blocks: i64,
    /// A table is recommended an index only with at least this many live rows, and with
    /// sequential scans that read at least this many rows on average (PgHero: 10000).
    #[schemars(range(min = 0))]
    pub recommend_min_rows: i64,
    /// ...and only when fewer than this share of its scans, in percent (0 to 100), use an index
    /// (PgHero: 95).
    #[schemars(range(min = 0, max = 100))]
    pub recommend_max_index_pct: f64,
    /// Levels of a statement's mean execution time in `pg_stat_statements`, in milliseconds
    /// (warn: PgHero's 20 ms); not negative. Without the extension the slow-queries report is
    /// Unknown and says how to install it.
    pub slow_query_ms: Thresholds,
    /// ...judged only for statements called at least this many times (PgHero: 100).
    #[schemars(range(min = 0))]
    pub slow_query_min_calls: i64,
    /// How many slow statements the report lists, slowest first (1 to 10000).
    #[schemars(range(min = 1, max = 10_000))]
    pub slow_query_limit: usize,
    /// Where each capacity run appends a `<RFC 3339 UTC time>,<bytes>` line, the runbook's
    /// `database-size-trend.csv` (header `recorded_at,size_bytes`, written when the file is
    /// new). Relative to the config file's directory. Left out:
    /// `<maintenance_dir>/database-size-trend.csv`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend_csv: Option<PathBuf>,
    /// `false`: write no CSV, and keep the size history in the database only.
    pub write_trend_csv: bool,
    /// A path on the filesystem that holds the server's data directory, whose free space the
    /// forecast uses; relative to the config file's directory. Left out: the server's
    /// `data_directory`, when the server runs on this machine (a loopback host or a unix
    /// socket) and the path exists here. A server on another host with no `data_disk` is Ok
    /// with no forecast ("not measured"); a path that cannot be read is Unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_disk: Option<PathBuf>,
    /// Days of size history the growth line is fitted over (1 to 3650).
    #[schemars(range(min = 1, max = 3650))]
    pub fit_days: u32,
    /// Levels of the days left until the data disk is full at the fitted growth. Lower is
    /// worse: at or below `warn` is Warn, at or below `crit` Crit; `warn` must not be below
    /// `crit`, nor `crit` below 0.
    pub days_left: Thresholds,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Default for DbMaintSection {
    /// PgHero's and check_postgres's levels; also [`ReportConfig`]'s defaults.
    fn default() -> Self {
        DbMaintSection {
            lock_timeout_ms: TimeoutMs::ms(5_000),
            statement_timeout_ms: TimeoutMs::ms(3_600_000),
            lock_wait_ms: TimeoutMs::ms(60_000),
            unused_index_max_scans: 50,
            unused_index_min_bytes: 0,
            bloat_bytes: Thresholds::new(100.0 * MIB, 1024.0 * MIB),
            bloat_min_pct: 20.0,
            table_limit: 20,
            dead_tuple_pct: Thresholds::new(20.0, 50.0),
            dead_tuple_min: 1000,
            stale_hours: Thresholds::new(24.0, 48.0),
            xid_age: Thresholds::new(1.3e9, 1.4e9),
            sequence_pct: Thresholds::new(85.0, 95.0),
            connections_pct: Thresholds::new(90.0, 95.0),
            query_seconds: Thresholds::new(60.0, 300.0),
            idle_in_transaction_seconds: Thresholds::new(60.0, 300.0),
            cache_hit_pct: Thresholds::new(99.0, 90.0),
            cache_min_blocks: 1000,
            recommend_min_rows: 10_000,
            recommend_max_index_pct: 95.0,
            slow_query_ms: Thresholds::new(20.0, 5000.0),
            slow_query_min_calls: 100,
            slow_query_limit: 20,
            trend_csv: None,
            write_trend_csv: true,
            data_disk: None,
            // A quarter of history for the fit; warn three months ahead, page one month ahead.
            fit_days: 90,
            days_left: Thresholds::new(90.0, 30.0),
        }
    }
}

impl DbMaintSection {
    /// Checks what the types do not: the level pairs, counts that are not negative,
    /// percentages, list lengths and the fit window. The key is relative to `[dbmaint]`.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (key, t) in [
            ("bloat_bytes", self.bloat_bytes),
            ("dead_tuple_pct", self.dead_tuple_pct),
            ("stale_hours", self.stale_hours),
            ("xid_age", self.xid_age),
            ("sequence_pct", self.sequence_pct),
            ("connections_pct", self.connections_pct),
            ("query_seconds", self.query_seconds),
            ("idle_in_transaction_seconds", self.idle_in_transaction_seconds),
            ("slow_query_ms", self.slow_query_ms),
        ] {
            t.validate().map_err(|e| FieldError::new(key, e.to_string()))?;
            if t.warn < 0.0 {
                return Err(FieldError::new(key, "must not be negative"));
            }
        }
        for (key, t) in [("cache_hit_pct", self.cache_hit_pct), ("days_left", self.days_left)] {
            t.validate_falling().map_err(|e| FieldError::new(key, e.to_string()))?;
        }
        for (key, v) in [
            ("unused_index_max_scans", self.unused_index_max_scans),
            ("unused_index_min_bytes", self.unused_index_min_bytes),
            ("dead_tuple_min", self.dead_tuple_min),
            ("cache_min_blocks", self.cache_min_blocks),
            ("recommend_min_rows", self.recommend_min_rows),
            ("slow_query_min_calls", self.slow_query_min_calls),
        ] {
            if v < 0 {
                return Err(FieldError::new(key, format!("must not be negative, got {v}")));
            }
        }
        for (key, pct) in
            [("bloat_min_pct", self.bloat_min_pct), ("recommend_max_index_pct", self.recommend_max_index_pct)]
        {
            if !(0.0..=100.0).contains(&pct) {
                return Err(FieldError::new(key, format!("must be a percentage from 0 to 100, got {pct}")));
            }
        }
        for (key, n) in [("table_limit", self.table_limit), ("slow_query_limit", self.slow_query_limit)] {
            if n == 0 || n > 10_000 {
                return Err(FieldError::new(key, format!("must be between 1 and 10000, got {n}")));
            }
        }
        if self.fit_days == 0 || self.fit_days > 3650 {
            return Err(FieldError::new(
                "fit_days",
                format!("must be between 1 and 3650, got {}", self.fit_days),
            ));
        }
        Ok(())
    }

    /// Makes `trend_csv` and `data_disk` absolute against `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.trend_csv, &mut self.data_disk] {
            *p = p.as_deref().map(|p| resolve_path(base, p));
        }
    }

    /// The tasks' config: [`db`](Self::db), [`reports`](Self::reports) and
    /// [`capacity`](Self::capacity) together.
    pub fn config(
        &self,
        postgres: PgTarget,
        connect_timeout_ms: u64,
        default_trend_csv: &Path,
    ) -> DbMaintConfig {
        DbMaintConfig::new(
            self.db(postgres, connect_timeout_ms),
            self.reports(),
            self.capacity(default_trend_csv),
        )
    }

    /// The database `postgres`, reached within `connect_timeout_ms` (`[postgres] timeout_ms`),
    /// with this section's guard rails.
    pub fn db(&self, postgres: PgTarget, connect_timeout_ms: u64) -> DbConfig {
        DbConfig {
            postgres,
            connect_timeout_ms,
            lock_timeout_ms: self.lock_timeout_ms.get(),
            statement_timeout_ms: self.statement_timeout_ms.get(),
            lock_wait_ms: self.lock_wait_ms.get(),
        }
    }

    /// The reports' levels.
    pub fn reports(&self) -> ReportConfig {
        ReportConfig {
            unused_index_max_scans: self.unused_index_max_scans,
            unused_index_min_bytes: self.unused_index_min_bytes,
            bloat_bytes: self.bloat_bytes,
            bloat_min_pct: self.bloat_min_pct,
            table_limit: self.table_limit,
            dead_tuple_pct: self.dead_tuple_pct,
            dead_tuple_min: self.dead_tuple_min,
            stale_hours: self.stale_hours,
            xid_age: self.xid_age,
            sequence_pct: self.sequence_pct,
            connections_pct: self.connections_pct,
            query_seconds: self.query_seconds,
            idle_in_transaction_seconds: self.idle_in_transaction_seconds,
            cache_hit_warn_pct: self.cache_hit_pct.warn,
            cache_hit_crit_pct: self.cache_hit_pct.crit,
            cache_min_blocks: self.cache_min_blocks,
            recommend_min_rows: self.recommend_min_rows,
            recommend_max_index_pct: self.recommend_max_index_pct,
            slow_query_ms: self.slow_query_ms,
            slow_query_min_calls: self.slow_query_min_calls,
            slow_query_limit: self.slow_query_limit,
        }
    }

    /// The size history and forecast: the CSV at `trend_csv`, or at `default_trend_csv` when
    /// that key is left out, and none at all with `write_trend_csv = false`.
    pub fn capacity(&self, default_trend_csv: &Path) -> CapacityConfig {
        CapacityConfig {
            trend_csv: self
                .write_trend_csv
                .then(|| self.trend_csv.clone().unwrap_or_else(|| default_trend_csv.to_owned())),
            data_disk: self.data_disk.clone(),
            fit_days: self.fit_days,
            days_left_warn: self.days_left.warn,
            days_left_crit: self.days_left.crit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> DbMaintSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let d = section("");
        assert_eq!(d, DbMaintSection::default());
        assert_eq!(
            (d.lock_timeout_ms.get(), d.statement_timeout_ms.get(), d.lock_wait_ms.get()),
            (5_000, 3_600_000, 60_000)
        );
        assert_eq!((d.unused_index_max_scans, d.unused_index_min_bytes), (50, 0));
        assert_eq!(d.bloat_bytes, Thresholds::new(104_857_600.0, 1_073_741_824.0));
        assert_eq!((d.bloat_min_pct, d.table_limit), (20.0, 20));
        assert_eq!((d.dead_tuple_pct, d.dead_tuple_min), (Thresholds::new(20.0, 50.0), 1000));
        assert_eq!(d.stale_hours, Thresholds::new(24.0, 48.0));
        assert_eq!(d.xid_age, Thresholds::new(1_300_000_000.0, 1_400_000_000.0));
        assert_eq!(d.sequence_pct, Thresholds::new(85.0, 95.0));
        assert_eq!(d.connections_pct, Thresholds::new(90.0, 95.0));
        assert_eq!(d.query_seconds, Thresholds::new(60.0, 300.0));
        assert_eq!(d.idle_in_transaction_seconds, Thresholds::new(60.0, 300.0));
        assert_eq!((d.cache_hit_pct, d.cache_min_blocks), (Thresholds::new(99.0, 90.0), 1000));
        assert_eq!((d.recommend_min_rows, d.recommend_max_index_pct), (10_000, 95.0));
        assert_eq!(d.slow_query_ms, Thresholds::new(20.0, 5000.0));
        assert_eq!((d.slow_query_min_calls, d.slow_query_limit), (100, 20));
        assert_eq!((d.trend_csv.as_deref(), d.write_trend_csv, d.data_disk.as_deref()), (None, true, None));
        assert_eq!((d.fit_days, d.days_left), (90, Thresholds::new(90.0, 30.0)));
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(ReportConfig::default(), d.reports(), "one set of defaults");
    }

    #[test]
    fn a_full_section_round_trips() {
        let text = "lock_timeout_ms = 1000\nstatement_timeout_ms = 2000\nlock_wait_ms = 3000\n\
                    unused_index_max_scans = 0\nunused_index_min_bytes = 8192\n\
                    bloat_bytes = { warn = 1, crit = 2 }\nbloat_min_pct = 0\ntable_limit = 5\n\
                    dead_tuple_pct = { warn = 1, crit = 2 }\ndead_tuple_min = 0\n\
                    stale_hours = { warn = 1, crit = 2 }\nxid_age = { warn = 1, crit = 2 }\n\
                    sequence_pct = { warn = 1, crit = 2 }\nconnections_pct = { warn = 1, crit = 2 }\n\
                    query_seconds = { warn = 1, crit = 2 }\nidle_in_transaction_seconds = { warn = 1, crit = 2 }\n\
                    cache_hit_pct = { warn = 95, crit = 95 }\ncache_min_blocks = 0\nrecommend_min_rows = 1\n\
                    recommend_max_index_pct = 100\nslow_query_ms = { warn = 1, crit = 2 }\n\
                    slow_query_min_calls = 1\nslow_query_limit = 10000\ntrend_csv = \"trend.csv\"\n\
                    write_trend_csv = false\ndata_disk = \"/srv/pg\"\nfit_days = 3650\n\
                    days_left = { warn = 0, crit = 0 }\n";
        let d = section(text);
        assert_eq!(d.validate(), Ok(()));
        assert_eq!((d.lock_timeout_ms.get(), d.lock_wait_ms.get()), (1000, 3000));
        assert_eq!((d.table_limit, d.slow_query_limit, d.fit_days), (5, 10_000, 3650));
        assert_eq!(d.trend_csv.as_deref(), Some(Path::new("trend.csv")));
        assert!(!d.write_trend_csv);
        assert_eq!(section(&toml::to_string(&d).unwrap()), d);
        let defaults = DbMaintSection::default();
        assert_eq!(section(&toml::to_string(&defaults).unwrap()), defaults);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key, want) in [
            ("bloat_bytes = { warn = 2, crit = 1 }", "bloat_bytes", "warn (2) must not be above crit (1)"),
            ("xid_age = { warn = nan, crit = 1 }", "xid_age", "must be finite"),
            ("query_seconds = { warn = -1, crit = 1 }", "query_seconds", "must not be negative"),
            ("slow_query_ms = { warn = 5, crit = 1 }", "slow_query_ms", "must not be above"),
            ("cache_hit_pct = { warn = 90, crit = 99 }", "cache_hit_pct", "lower is worse"),
            ("cache_hit_pct = { warn = 1, crit = -1 }", "cache_hit_pct", "must not be negative"),
            ("days_left = { warn = 7, crit = 30 }", "days_left", "warn (7) must not be below crit (30)"),
            ("unused_index_max_scans = -1", "unused_index_max_scans", "must not be negative, got -1"),
            ("unused_index_min_bytes = -1", "unused_index_min_bytes", "negative"),
            ("dead_tuple_min = -1", "dead_tuple_min", "negative"),
            ("cache_min_blocks = -1", "cache_min_blocks", "negative"),
            ("recommend_min_rows = -1", "recommend_min_rows", "negative"),
            ("slow_query_min_calls = -1", "slow_query_min_calls", "negative"),
            ("bloat_min_pct = 150", "bloat_min_pct", "must be a percentage from 0 to 100, got 150"),
            ("recommend_max_index_pct = -0.5", "recommend_max_index_pct", "0 to 100"),
            ("recommend_max_index_pct = nan", "recommend_max_index_pct", "0 to 100"),
            ("table_limit = 0", "table_limit", "must be between 1 and 10000, got 0"),
            ("slow_query_limit = 10001", "slow_query_limit", "between 1 and 10000"),
            ("fit_days = 0", "fit_days", "must be between 1 and 3650, got 0"),
            ("fit_days = 3651", "fit_days", "between 1 and 3650"),
        ] {
            let err = section(text).validate().unwrap_err();
            assert_eq!(err.key, key, "{text}");
            assert!(err.message.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_timeouts_are_refused_when_read() {
        let err = toml::from_str::<DbMaintSection>("bloat_treshold = 5").unwrap_err();
        assert!(err.message().contains("unknown field `bloat_treshold`"), "{err}");
        for key in ["lock_timeout_ms", "statement_timeout_ms", "lock_wait_ms"] {
            let err = toml::from_str::<DbMaintSection>(&format!("{key} = 0")).unwrap_err();
            assert!(err.message().contains("between 1 and 86400000 milliseconds, got 0"), "{key}: {err}");
        }
        assert!(toml::from_str::<DbMaintSection>("cache_hit_pct = { warn = 99 }").is_err());
    }

    #[test]
    fn paths_resolve_and_the_configs_follow_the_keys() {
        let mut d = section("trend_csv = \"m/trend.csv\"\ndata_disk = \"/srv/pg\"\nlock_wait_ms = 7\n");
        d.resolve_paths(Path::new("/etc/kyb"));
        assert_eq!(d.trend_csv.as_deref(), Some(Path::new("/etc/kyb/m/trend.csv")));
        assert_eq!(d.data_disk.as_deref(), Some(Path::new("/srv/pg")));
        let fallback = Path::new("/var/lib/kyb-maint/database-size-trend.csv");
        let c = d.capacity(fallback);
        assert_eq!(c.trend_csv.as_deref(), Some(Path::new("/etc/kyb/m/trend.csv")));
        assert_eq!((c.fit_days, c.days_left_warn, c.days_left_crit), (90, 90.0, 30.0));
        assert_eq!(DbMaintSection::default().capacity(fallback).trend_csv.as_deref(), Some(fallback));
        let off = section("write_trend_csv = false\ntrend_csv = \"t.csv\"");
        assert_eq!(off.capacity(fallback).trend_csv, None);

        let target = PgTarget {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "u".into(),
            password: None,
            dbname: "d".into(),
        };
        let db = d.db(target.clone(), 2500);
        assert_eq!(db.postgres, target);
        assert_eq!(
            (db.connect_timeout_ms, db.lock_timeout_ms, db.statement_timeout_ms, db.lock_wait_ms),
            (2500, 5_000, 3_600_000, 7)
        );
        let tasks = d.config(target.clone(), 2500, fallback);
        assert_eq!(tasks, DbMaintConfig::new(db, d.reports(), d.capacity(fallback)));
        let r = section("cache_hit_pct = { warn = 98, crit = 80 }").reports();
        assert_eq!((r.cache_hit_warn_pct, r.cache_hit_crit_pct), (98.0, 80.0));
    }

    #[test]
    fn the_schema_names_every_key() {
        let schema = serde_json::to_value(schemars::schema_for!(DbMaintSection)).unwrap();
        let keys = schema["properties"].as_object().unwrap();
        assert_eq!(keys.len(), 28);
        for (key, prop) in keys {
            let doc = prop["description"].as_str().unwrap_or_default();
            assert!(!doc.is_empty(), "{key} has no doc");
        }
        assert_eq!(schema["properties"]["fit_days"]["maximum"], 3650);
    }
}
