//! Slow statements from `pg_stat_statements`, whichever version is installed.

use super::activity::shorten;
use super::{Db, DbReport, ReportConfig, ReportKind, grant_read_all_stats, or_all_clear};
use crate::DbMaintError;
use kyb_core::{Check, Metric, Status, Unit};
use tokio_postgres::error::SqlState;

/// Column names of one extension version: 1.8 renamed `mean_time` and `total_time`.
fn time_columns(version: &str) -> (&'static str, &'static str) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (1, 8) { ("mean_exec_time", "total_exec_time") } else { ("mean_time", "total_time") }
}

pub(crate) async fn slow_queries(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    let ext = db
        .query(
            "looking for pg_stat_statements",
            "SELECT e.extversion, format('%I', n.nspname) FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
            &[],
        )
        .await?;
    let unknown = |summary: String| {
        Ok(DbReport::new(
            ReportKind::SlowQueries,
            vec![Check::new("pg_stat_statements", Status::Unknown, summary)],
            Vec::new(),
        ))
    };
    let Some(ext) = ext.first() else {
        return unknown(
            "pg_stat_statements is not installed in this database: add it to shared_preload_libraries, \
             restart, then CREATE EXTENSION pg_stat_statements"
                .to_owned(),
        );
    };
    let (version, schema): (String, String) = (ext.get(0), ext.get(1));
    let (mean, total) = time_columns(&version);
    // The schema is quoted by the server and the column names are constants: nothing from
    // outside reaches the statement text.
    let sql = format!(
        "SELECT coalesce(queryid, 0), calls, {mean}, {total}, rows, coalesce(query, '') \
         FROM {schema}.pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND calls >= $1 AND {mean} >= $2 \
         ORDER BY {mean} DESC, queryid LIMIT $3"
    );
    let limit = i64::try_from(rc.slow_query_limit).unwrap_or(i64::MAX);
    let rows = match db
        .query(
            "reading pg_stat_statements",
            &sql,
            &[&rc.slow_query_min_calls, &rc.slow_query_ms.warn, &limit],
        )
        .await
    {
        Ok(rows) => rows,
        Err(DbMaintError::Query { source, .. })
            if source.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) =>
        {
            return unknown(format!(
                "pg_stat_statements {version} is installed but not loaded: add it to shared_preload_libraries \
                 and restart the server"
            ));
        }
        Err(e) => return Err(e),
    };
    // Statements of other roles keep their times but not their text without pg_read_all_stats.
    let mut hidden = 0;
    let checks = rows
        .iter()
        .map(|r| {
            let (id, calls, mean_ms, total_ms, nrows, query): (i64, i64, f64, f64, i64, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let query = if query == "<insufficient privilege>" {
                hidden += 1;
                "(text hidden from this role)".to_owned()
            } else {
                query
            };
            Check::new(
                format!("query {id}"),
                rc.slow_query_ms.classify(mean_ms),
                format!(
                    "mean {mean_ms:.1} ms over {calls} calls ({:.1} s in all, {nrows} rows): {}",
                    total_ms / 1000.0,
                    shorten(&query, 200)
                ),
            )
            .with_metric(
                Metric::new("mean", (mean_ms / 1000.0 * 1e6).round() / 1e6, Unit::Seconds)
                    .with_thresholds(rc.slow_query_ms.warn / 1000.0, rc.slow_query_ms.crit / 1000.0),
            )
            .with_metric(Metric::new("calls", calls as f64, Unit::Counter))
        })
        .collect();
    let mut notes = vec![format!("pg_stat_statements {version}, columns {mean} and {total}")];
    if hidden > 0 {
        let role: String =
            db.query("reading the role", "SELECT format('%I', current_user)", &[]).await?[0].get(0);
        notes.push(format!(
            "{hidden} statements of other roles show no text: {role} lacks pg_read_all_stats ({})",
            grant_read_all_stats(&role)
        ));
    }
    let clear = format!(
        "no statement with {} or more calls averages {} ms or more",
        rc.slow_query_min_calls, rc.slow_query_ms.warn
    );
    Ok(DbReport::new(ReportKind::SlowQueries, or_all_clear(checks, "statements", clear), notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_extension_version() {
        assert_eq!(time_columns("1.7"), ("mean_time", "total_time"));
        assert_eq!(time_columns("1.8"), ("mean_exec_time", "total_exec_time"));
        assert_eq!(time_columns("1.10"), ("mean_exec_time", "total_exec_time"));
        assert_eq!(time_columns("2.0"), ("mean_exec_time", "total_exec_time"));
    }
}
