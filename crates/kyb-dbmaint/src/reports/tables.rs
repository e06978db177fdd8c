//! Table reports: bloat, sizes, vacuum state, sequential-scan-heavy tables, top activity.

use super::indexes::{align8, columns, data_width, index_bloat};
use super::{Db, DbReport, ReportConfig, ReportKind, SYSTEM_SCHEMAS, human, or_all_clear};
use crate::DbMaintError;
use kyb_core::{Check, Metric, Status, Unit};

pub(crate) async fn bloat(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    // Heap estimate: each live row takes a tuple header (23 bytes, plus a null bitmap when any
    // column has nulls, aligned to 8), its columns laid out in order with each one's alignment
    // padding (average widths from pg_stats), and a 4-byte line pointer; pages hold
    // (block - 24) bytes at the table's fillfactor.
    let sql = format!(
        "SELECT format('%I.%I', n.nspname, c.relname), c.relpages::int8, c.reltuples::float8, \
                current_setting('block_size')::int8, \
                coalesce((SELECT substring(o FROM '^fillfactor=([0-9]+)$')::int4 \
                          FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), 100), \
                array_agg(coalesce(s.avg_width, -1)::int4 ORDER BY a.attnum), \
                array_agg(coalesce(s.null_frac, 0)::float8 ORDER BY a.attnum), \
                array_agg(ty.typalign::text ORDER BY a.attnum), array_agg(ty.typlen::int4 ORDER BY a.attnum), \
                bool_and(has_column_privilege(c.oid, a.attnum, 'SELECT')), format('%I', current_user) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         JOIN pg_type ty ON ty.oid = a.atttypid \
         LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname \
              AND s.attname = a.attname AND NOT s.inherited \
         WHERE c.relkind IN ('r', 'm') AND c.relpages > 0 AND c.reltuples >= 0 AND {SYSTEM_SCHEMAS} \
         GROUP BY n.nspname, c.relname, c.relpages, c.reltuples, c.reloptions \
         ORDER BY 1"
    );
    let rows = db.query("estimating table bloat", &sql, &[]).await?;
    let mut estimates: Vec<(String, String, i64, i64)> = Vec::new();
    let (mut unestimated, mut unreadable) = (0, 0);
    for r in &rows {
        let Some(cols) = columns(r, 5) else {
            // pg_stats shows a column's statistics only to a role that may read the column.
            if r.get::<_, bool>(9) {
                unestimated += 1
            } else {
                unreadable += 1
            }
            continue;
        };
        let (pages, tuples, block, fill): (i64, f64, i64, i32) = (r.get(1), r.get(2), r.get(3), r.get(4));
        let nulls = cols.iter().any(|c| c.null_frac > 0.0);
        let header = align8(23.0 + if nulls { (cols.len() as f64 / 8.0).ceil() } else { 0.0 });
        let tuple = header + align8(data_width(&cols)) + 4.0;
        let usable = (block as f64 - 24.0) * f64::from(fill) / 100.0;
        let expected = (tuples * tuple / usable).ceil() as i64;
        estimates.push(("table".to_owned(), r.get(0), pages * block, (pages - expected).max(0) * block));
    }
    for ix in index_bloat(db).await? {
        estimates.push((format!("index on {}", ix.table), ix.index.clone(), ix.bytes, ix.wasted_bytes));
    }
    let mut checks = Vec::new();
    for (kind, name, bytes, wasted) in estimates {
        let pct = if bytes > 0 { 100.0 * wasted as f64 / bytes as f64 } else { 0.0 };
        let status = bloat_status(rc, wasted, pct);
        if status == Status::Ok {
            continue;
        }
        let remedy = if kind == "table" {
            "VACUUM FULL or pg_repack gives it back"
        } else {
            "`kyb-dbmaint reindex` rebuilds it"
        };
        checks.push(
            Check::new(
                &name,
                status,
                format!("{kind}: about {} of {} wasted ({pct:.0}%); {remedy}", human(wasted), human(bytes)),
            )
            .with_metric(
                Metric::new("wasted", wasted as f64, Unit::Bytes)
                    .with_thresholds(rc.bloat_bytes.warn, rc.bloat_bytes.crit),
            )
            .with_metric(Metric::new("wasted_pct", (pct * 10.0).round() / 10.0, Unit::Percent)),
        );
    }
    let mut notes = vec![format!(
        "estimates from planner statistics: run ANALYZE first; flagged at {} wasted and {}% of the relation",
        human(rc.bloat_bytes.warn as i64),
        rc.bloat_min_pct
    )];
    if unreadable > 0 {
        let role: String = rows.first().map(|r| r.get(10)).unwrap_or_default();
        notes.push(format!(
            "{unreadable} tables and their indexes were not estimated: {role} may not read their statistics, \
             which takes SELECT on the table"
        ));
    }
    if unestimated > 0 {
        notes.push(format!("{unestimated} tables have no statistics yet and were not estimated"));
    }
    let clear = format!("no table or index with {} or more wasted", human(rc.bloat_bytes.warn as i64));
    Ok(DbReport::new(ReportKind::Bloat, or_all_clear(checks, "bloat", clear), notes))
}

/// Status of an estimate: by wasted bytes, once the wasted share passes `bloat_min_pct`.
pub(crate) fn bloat_status(rc: &ReportConfig, wasted_bytes: i64, pct: f64) -> Status {
    if pct < rc.bloat_min_pct { Status::Ok } else { rc.bloat_bytes.classify(wasted_bytes as f64) }
}

pub(crate) async fn sizes(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    let sql = format!(
        "SELECT format('%I.%I', n.nspname, c.relname), coalesce(pg_total_relation_size(c.oid), 0), \
                coalesce(pg_relation_size(c.oid), 0), coalesce(pg_indexes_size(c.oid), 0), \
                coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0), c.reltuples::float8 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'm', 'p') AND {SYSTEM_SCHEMAS} \
         ORDER BY 2 DESC, 1 LIMIT $1"
    );
    let limit = i64::try_from(rc.table_limit).unwrap_or(i64::MAX);
    let rows = db.query("measuring table sizes", &sql, &[&limit]).await?;
    let checks: Vec<Check> = rows
        .iter()
        .map(|r| {
            let (name, total, heap, idx, toast, tuples): (String, i64, i64, i64, i64, f64) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let rows =
                if tuples >= 0.0 { format!("about {tuples:.0} rows") } else { "never analyzed".to_owned() };
            Check::new(
                name,
                Status::Ok,
                format!(
                    "{} total: heap {}, indexes {}, toast {}; {rows}",
                    human(total),
                    human(heap),
                    human(idx),
                    human(toast)
                ),
            )
            .with_metric(Metric::new("total", total as f64, Unit::Bytes))
            .with_metric(Metric::new("heap", heap as f64, Unit::Bytes))
            .with_metric(Metric::new("indexes", idx as f64, Unit::Bytes))
            .with_metric(Metric::new("toast", toast as f64, Unit::Bytes))
        })
        .collect();
    let size = db.query("measuring the database", "SELECT pg_database_size(current_database())", &[]).await?;
    let notes = vec![format!(
        "database size {}; the {} largest tables",
        human(size.first().map_or(0, |r| r.get(0))),
        rc.table_limit
    )];
    Ok(DbReport::new(
        ReportKind::TableSizes,
        or_all_clear(checks, "tables", "no user tables".to_owned()),
        notes,
    ))
}

pub(crate) async fn vacuum_state(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    let sql = format!(
        "SELECT format('%I.%I', s.schemaname, s.relname), s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze, \
                extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8, \
                extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8 \
         FROM pg_stat_user_tables s JOIN pg_namespace n ON n.nspname = s.schemaname \
         WHERE {SYSTEM_SCHEMAS} ORDER BY s.n_dead_tup DESC, 1"
    );
    let rows = db.query("reading vacuum statistics", &sql, &[]).await?;
    let mut checks = Vec::new();
    for r in &rows {
        let (name, live, dead, modified): (String, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let (vacuumed, analyzed): (Option<f64>, Option<f64>) = (r.get(4), r.get(5));
        let pct = if live + dead > 0 { 100.0 * dead as f64 / (live + dead) as f64 } else { 0.0 };
        let dead_status =
            if dead >= rc.dead_tuple_min { rc.dead_tuple_pct.classify(pct) } else { Status::Ok };
        // Age matters only with work waiting: dead tuples for vacuum, changes for analyze. A
        // table with nothing waiting is not stale, however long ago its last run was.
        let stale = |pending: bool, age: Option<f64>| match (pending, age) {
            (false, _) => Status::Ok,
            (true, None) => Status::Warn,
            (true, Some(secs)) => rc.stale_hours.classify(secs / 3600.0),
        };
        // Pending means past autovacuum's own triggers (with its default scale factors), so a
        // large table autovacuum rightly leaves alone is not stale.
        let vacuum_due = dead as f64 > 50.0 + 0.2 * live as f64;
        let analyze_due = modified as f64 > 50.0 + 0.1 * live as f64;
        let status = Status::worst([dead_status, stale(vacuum_due, vacuumed), stale(analyze_due, analyzed)]);
        if status == Status::Ok {
            continue;
        }
        let ago = |age: Option<f64>| age.map_or("never".to_owned(), |s| format!("{:.1} h ago", s / 3600.0));
        checks.push(
            Check::new(
                name,
                status,
                format!(
                    "{dead} dead of {} tuples ({pct:.1}%), {modified} changes since analyze; \
                     last vacuum {}, last analyze {}",
                    live + dead,
                    ago(vacuumed),
                    ago(analyzed)
                ),
            )
            .with_metric(
                Metric::new("dead_pct", (pct * 10.0).round() / 10.0, Unit::Percent)
                    .with_thresholds(rc.dead_tuple_pct.warn, rc.dead_tuple_pct.crit),
            )
            .with_metric(Metric::new("dead", dead as f64, Unit::None)),
        );
    }
    let clear = format!("{} tables vacuumed and analyzed in time", rows.len());
    Ok(DbReport::new(ReportKind::VacuumState, or_all_clear(checks, "tables", clear), Vec::new()))
}

pub(crate) async fn recommendations(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    // PgHero's rule (a large table, few of its scans by index), counting only sequential scans
    // that read a large table's worth on average: building an index scans the table once too.
    // Candidate columns: many distinct values (n_distinct above 100, or a negative ratio of at
    // least 10% of the rows) and not yet the leading column of any index.
    let sql = format!(
        "SELECT format('%I.%I', s.schemaname, s.relname), s.seq_scan, coalesce(s.idx_scan, 0), s.n_live_tup, \
                s.seq_tup_read, \
                (SELECT string_agg(format('%I', st.attname), ', ' ORDER BY abs(st.n_distinct) DESC) \
                 FROM pg_stats st JOIN pg_attribute a ON a.attrelid = s.relid AND a.attname = st.attname \
                 WHERE st.schemaname = s.schemaname AND st.tablename = s.relname AND NOT st.inherited \
                   AND (st.n_distinct > 100 OR st.n_distinct <= -0.1) \
                   AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = s.relid AND i.indkey[0] = a.attnum)) \
         FROM pg_stat_user_tables s JOIN pg_namespace n ON n.nspname = s.schemaname \
         WHERE s.seq_scan > 0 AND s.n_live_tup >= $1 AND s.seq_tup_read / s.seq_scan >= $1 \
           AND 100.0 * coalesce(s.idx_scan, 0)::float8 / (s.seq_scan + coalesce(s.idx_scan, 0)) < $2::float8 AND {SYSTEM_SCHEMAS} \
         ORDER BY s.seq_tup_read DESC, 1"
    );
    let rows = db
        .query(
            "finding sequential-scan-heavy tables",
            &sql,
            &[&rc.recommend_min_rows, &rc.recommend_max_index_pct],
        )
        .await?;
    let checks = rows
        .iter()
        .map(|r| {
            let (name, seq, idx, live, read, cols): (String, i64, i64, i64, i64, Option<String>) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let pct = 100.0 * idx as f64 / (seq + idx) as f64;
            let hint = cols.map_or("look at the filters of its queries (see slow-queries)".to_owned(), |c| {
                format!("unindexed columns with many distinct values: {c}")
            });
            Check::new(
                name,
                Status::Warn,
                format!(
                    "{seq} sequential scans read {read} rows of {live}; {pct:.0}% of scans use an index; {hint}"
                ),
            )
            .with_metric(Metric::new("seq_scan", seq as f64, Unit::Counter))
            .with_metric(Metric::new("idx_scan_pct", (pct * 10.0).round() / 10.0, Unit::Percent))
        })
        .collect();
    let clear =
        format!("no table of {} rows or more is read mostly by sequential scans", rc.recommend_min_rows);
    Ok(DbReport::new(ReportKind::IndexRecommendations, or_all_clear(checks, "tables", clear), Vec::new()))
}

pub(crate) async fn top_activity(db: &Db<'_>) -> Result<DbReport, DbMaintError> {
    let sql = format!(
        "SELECT format('%I.%I', s.schemaname, s.relname), s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_live_tup \
         FROM pg_stat_user_tables s JOIN pg_namespace n ON n.nspname = s.schemaname \
         WHERE {SYSTEM_SCHEMAS} AND s.n_tup_ins + s.n_tup_upd + s.n_tup_del > 0 \
         ORDER BY s.n_tup_ins + s.n_tup_upd + s.n_tup_del DESC, 1 LIMIT 10"
    );
    let rows = db.query("reading table activity", &sql, &[]).await?;
    let checks = rows
        .iter()
        .map(|r| {
            let (name, ins, upd, del, live): (String, i64, i64, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            Check::new(
                name,
                Status::Ok,
                format!("{ins} inserts, {upd} updates, {del} deletes; {live} live rows"),
            )
            .with_metric(Metric::new("inserts", ins as f64, Unit::Counter))
            .with_metric(Metric::new("updates", upd as f64, Unit::Counter))
            .with_metric(Metric::new("deletes", del as f64, Unit::Counter))
            .with_metric(Metric::new("live", live as f64, Unit::None))
        })
        .collect();
    Ok(DbReport::new(
        ReportKind::TopActivity,
        or_all_clear(checks, "tables", "no writes recorded".to_owned()),
        Vec::new(),
    ))
}
