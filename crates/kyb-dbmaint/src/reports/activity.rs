//! What the database is doing: long queries, idle transactions, cache hit ratio.

use super::{
    Db, DbReport, ReportConfig, ReportKind, classify_low, grant_read_all_stats, hidden_sessions, or_all_clear,
};
use crate::DbMaintError;
use kyb_core::{Check, Metric, Status, Unit};

pub(crate) async fn long_queries(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    let rows = db
        .query(
            "reading running queries",
            "SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''), state, \
                    extract(epoch FROM now() - query_start)::float8, \
                    extract(epoch FROM now() - state_change)::float8, \
                    coalesce(wait_event_type || ':' || wait_event, ''), query \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
               AND ((state = 'active' AND now() - query_start >= make_interval(secs => $1)) \
                 OR (state LIKE 'idle in transaction%' AND now() - state_change >= make_interval(secs => $2))) \
             ORDER BY query_start, pid",
            &[&rc.query_seconds.warn, &rc.idle_in_transaction_seconds.warn],
        )
        .await?;
    let checks = rows
        .iter()
        .map(|r| {
            let (pid, user, app, state): (i32, String, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let (running, idle, wait, query): (f64, f64, String, String) = (r.get(4), r.get(5), r.get(6), r.get(7));
            let who = if app.is_empty() { user } else { format!("{user} ({app})") };
            let query = shorten(&query, 200);
            if state == "active" {
                let waiting = if wait.is_empty() { String::new() } else { format!(", waiting on {wait}") };
                Check::new(
                    format!("pid {pid}"),
                    rc.query_seconds.classify(running),
                    format!("running for {running:.0} s as {who}{waiting}: {query}"),
                )
                .with_metric(
                    Metric::new("running", running.round(), Unit::Seconds)
                        .with_thresholds(rc.query_seconds.warn, rc.query_seconds.crit),
                )
            } else {
                Check::new(
                    format!("pid {pid}"),
                    rc.idle_in_transaction_seconds.classify(idle),
                    format!(
                        "{state} for {idle:.0} s as {who}, holding its locks and snapshot; last statement: {query}"
                    ),
                )
                .with_metric(
                    Metric::new("idle", idle.round(), Unit::Seconds)
                        .with_thresholds(rc.idle_in_transaction_seconds.warn, rc.idle_in_transaction_seconds.crit),
                )
            }
        })
        .collect();
    let clear = format!(
        "no query running {} s or more, no session idle in a transaction {} s or more",
        rc.query_seconds.warn, rc.idle_in_transaction_seconds.warn
    );
    let mut checks = or_all_clear(checks, "queries", clear);
    let hidden = hidden_sessions(db).await?;
    if hidden.here > 0 {
        // Their state and query are NULL to this role: a long query among them would pass unseen.
        checks.push(Check::new(
            "other roles' sessions",
            Status::Unknown,
            format!(
                "{} sessions of other roles cannot be judged: {} lacks pg_read_all_stats ({})",
                hidden.here,
                hidden.role,
                grant_read_all_stats(&hidden.role)
            ),
        ));
    }
    Ok(DbReport::new(ReportKind::LongQueries, checks, Vec::new()))
}

/// One line, at most `max` characters, for report rows.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

pub(crate) async fn cache_hit(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    let rows = db
        .query(
            "reading buffer statistics",
            "SELECT 'tables', coalesce(sum(heap_blks_hit), 0)::int8, coalesce(sum(heap_blks_read), 0)::int8 \
             FROM pg_statio_user_tables \
             UNION ALL \
             SELECT 'indexes', coalesce(sum(idx_blks_hit), 0)::int8, coalesce(sum(idx_blks_read), 0)::int8 \
             FROM pg_statio_user_indexes",
            &[],
        )
        .await?;
    let checks = rows
        .iter()
        .map(|r| {
            let (what, hit, read): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
            let total = hit + read;
            if total < rc.cache_min_blocks {
                return Check::new(
                    what,
                    Status::Ok,
                    format!("{total} block reads so far: too few to judge the hit ratio"),
                );
            }
            let pct = 100.0 * hit as f64 / total as f64;
            Check::new(
                &what,
                classify_low(pct, rc.cache_hit_warn_pct, rc.cache_hit_crit_pct),
                format!(
                    "{pct:.2}% of {total} block reads served from shared buffers (below {}% warns)",
                    rc.cache_hit_warn_pct
                ),
            )
            .with_metric(
                Metric::new("hit_pct", (pct * 100.0).round() / 100.0, Unit::Percent)
                    .with_floor_thresholds(rc.cache_hit_warn_pct, rc.cache_hit_crit_pct),
            )
        })
        .collect();
    Ok(DbReport::new(ReportKind::CacheHit, checks, Vec::new()))
}
