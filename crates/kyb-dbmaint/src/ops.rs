//! The maintenance operations: ANALYZE and VACUUM (ANALYZE) one table at a time, REINDEX of
//! bloated indexes; the heavy ones (VACUUM, REINDEX) only inside the maintenance windows.

use crate::reports::{Db, IndexBloat, ReportConfig, bloat_status, index_bloat};
use crate::session::{DbConfig, Session};
use crate::{DbMaintConfig, DbMaintError};
use kyb_core::{Check, Findings, RunCtx, Status, WindowState, error_chain};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;

/// What an operation did, or (in a dry run) would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpsReport {
    /// One check per table or index: Ok, Warn (lock or statement timeout: try again later; or
    /// skipped, the role lacking the privilege, which the server would only warn about) or Crit.
    /// VACUUM and REINDEX outside the maintenance windows put a `window` check first; a dry run
    /// ends with a `plan` check. The actions are the statements run, or to run in a dry run, in
    /// order.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(OpsReport);

/// `ANALYZE` each user table. A dry run lists the statements and runs none.
pub async fn analyze(cfg: &DbMaintConfig, ctx: &RunCtx) -> Result<OpsReport, DbMaintError> {
    operation(ctx, false, per_table(&cfg.db, ctx.dry_run, "ANALYZE")).await
}

/// `VACUUM (ANALYZE)` each user table, each statement on its own (VACUUM cannot run in a
/// transaction block). Heavy: outside the maintenance windows it is not run unless
/// `ctx.emergency`. A dry run lists the statements and runs none.
pub async fn vacuum_analyze(cfg: &DbMaintConfig, ctx: &RunCtx) -> Result<OpsReport, DbMaintError> {
    operation(ctx, true, per_table(&cfg.db, ctx.dry_run, "VACUUM (ANALYZE)")).await
}

/// Runs `op` (in a dry run, plans it) and reports it: a `heavy` one is held to the maintenance
/// windows, as [`window`] says; a dry run's `plan` check counts the statements.
async fn operation(
    ctx: &RunCtx,
    heavy: bool,
    op: impl Future<Output = Result<Findings, DbMaintError>>,
) -> Result<OpsReport, DbMaintError> {
    let window = if heavy {
        match window(ctx) {
            Ok(check) => check,
            Err(not_run) => return Ok(OpsReport { findings: Findings::from_checks(vec![not_run]) }),
        }
    } else {
        None
    };
    let mut findings = op.await?;
    findings.checks.splice(0..0, window);
    if ctx.dry_run {
        let plan = format!("would run {} statements", findings.actions.len());
        findings.checks.push(Check::new("plan", Status::Ok, plan));
    }
    Ok(OpsReport { findings })
}

/// Whether heavy work may run now. Inside a window: yes, without a check. Outside every window:
/// with `emergency` yes, with an Ok `window` check saying so; in a dry run the plan is made, with
/// a Warn `window` check saying a real run would not run it; otherwise not (`Err`), with a Warn
/// `window` check saying when the next window opens.
fn window(ctx: &RunCtx) -> Result<Option<Check>, Check> {
    let WindowState::Closed { windows, next_open } = &ctx.window else {
        return Ok(None);
    };
    let next = next_open.map_or_else(String::new, |t| format!("; the next opens {}", stamp(t)));
    let outside = format!("outside the maintenance windows ({windows}){next}");
    if ctx.emergency {
        Ok(Some(Check::new("window", Status::Ok, format!("{outside}; run anyway (--emergency)"))))
    } else if ctx.dry_run {
        let warn = format!("{outside}: a real run now would not run these (--emergency overrides)");
        Ok(Some(Check::new("window", Status::Warn, warn)))
    } else {
        Err(Check::new("window", Status::Warn, format!("not run: {outside}; --emergency runs it anyway")))
    }
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
        .unwrap_or_default()
}

async fn per_table(cfg: &DbConfig, dry_run: bool, verb: &str) -> Result<Findings, DbMaintError> {
    let session = Session::open(cfg).await?;
    // VACUUM of a partitioned table only walks its partitions, which are listed anyway; ANALYZE
    // of one gathers the parent's own statistics, which nothing else does.
    let kinds: Vec<String> = if verb.starts_with("VACUUM") {
        vec!["r".into(), "m".into()]
    } else {
        vec!["r".into(), "m".into(), "p".into()]
    };
    let role = Role::of(&session, cfg).await?;
    // The server quotes each name: no identifier is ever built from text by hand.
    let sql = format!(
        "SELECT format('%I.%I', n.nspname, c.relname), {}, has_schema_privilege(n.oid, 'USAGE'), \
                format('%I', n.nspname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind::text = ANY($1) AND c.relpersistence <> 't' \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
         ORDER BY n.nspname, c.relname",
        role.may_maintain("c.oid", false)
    );
    let tables = session.query(cfg, "listing tables", &sql, &[&kinds]).await?;
    let mut report = Findings::default();
    let verb_name = verb.split(' ').next().unwrap_or(verb);
    for row in tables {
        let (table, allowed, usage, schema): (String, bool, bool, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if !allowed || !usage {
            // The server would skip it with only a warning, and the run would look done.
            let why = if allowed {
                format!(
                    "{} may not use schema {schema}: GRANT USAGE ON SCHEMA {schema} TO {}",
                    role.name, role.name
                )
            } else {
                role.lacks(verb_name, &table, false)
            };
            report.checks.push(Check::new(&table, Status::Warn, format!("skipped: {why}")));
            continue;
        }
        let sql = format!("{verb} {table}");
        report.actions.push(sql.clone());
        if dry_run {
            continue;
        }
        match execute(&session, cfg, &sql).await {
            Ok(()) => report.checks.push(Check::new(&table, Status::Ok, format!("{verb} done"))),
            Err(Failed::Statement(status, why)) => {
                report.checks.push(Check::new(&table, status, format!("{verb} failed: {why}")));
            }
            Err(Failed::Stuck(why)) => {
                report.checks.push(Check::new(&table, Status::Crit, format!("{verb} {why}")));
                break;
            }
        }
    }
    if report.checks.is_empty() && !dry_run {
        report.checks.push(Check::new("tables", Status::Ok, "no user tables"));
    }
    Ok(report)
}

/// The role the operations run as, and what the server version lets it maintain.
struct Role {
    /// Quoted.
    name: String,
    version: i32,
}

impl Role {
    async fn of(session: &Session, cfg: &DbConfig) -> Result<Role, DbMaintError> {
        let row = &session
            .query(
                cfg,
                "reading the role and server version",
                "SELECT format('%I', current_user), current_setting('server_version_num')::int4",
                &[],
            )
            .await?[0];
        Ok(Role { name: row.get(0), version: row.get(1) })
    }

    /// SQL: true when this role may maintain the table `oid`. PostgreSQL 17 has the MAINTAIN
    /// privilege; before it VACUUM and ANALYZE take the table's or the database's owner, REINDEX
    /// the table's owner (a superuser has the privileges of every role).
    fn may_maintain(&self, oid: &str, reindex: bool) -> String {
        if self.version >= 170_000 {
            format!("has_table_privilege({oid}, 'MAINTAIN')")
        } else if reindex {
            format!("pg_has_role((SELECT relowner FROM pg_class WHERE oid = {oid}), 'USAGE')")
        } else {
            format!(
                "pg_has_role((SELECT relowner FROM pg_class WHERE oid = {oid}), 'USAGE') \
                 OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE')"
            )
        }
    }

    /// Why this role may not run `verb` on `table`, and what would let it.
    fn lacks(&self, verb: &str, table: &str, reindex: bool) -> String {
        let role = &self.name;
        if self.version >= 170_000 {
            format!("{role} may not {verb} it: GRANT MAINTAIN ON {table} TO {role}, or grant it pg_maintain")
        } else if reindex {
            format!("{role} may not {verb} it: only the table's owner or a superuser may")
        } else {
            format!(
                "{role} may not {verb} it: only the table's owner, the database's owner or a superuser may"
            )
        }
    }
}

/// How one maintenance statement failed.
enum Failed {
    /// The server refused or ended it: Warn for a lock or statement timeout (try again later),
    /// Crit otherwise. The session is still usable.
    Statement(Status, String),
    /// No answer within the backstop: the connection cannot be trusted for the rest.
    Stuck(String),
}

/// Runs one statement on its own (outside any transaction block). The statement's own
/// `statement_timeout` ends it; the backstop covers a connection that stalls.
async fn execute(session: &Session, cfg: &DbConfig, sql: &str) -> Result<(), Failed> {
    let backstop = Duration::from_millis(cfg.statement_timeout_ms.saturating_add(cfg.connect_timeout_ms));
    match tokio::time::timeout(backstop, session.client.batch_execute(sql)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            let transient = e
                .code()
                .is_some_and(|c| *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::QUERY_CANCELED);
            Err(Failed::Statement(if transient { Status::Warn } else { Status::Crit }, error_chain(&e)))
        }
        Err(_) => Err(Failed::Stuck(format!(
            "did not return within {} ms; the connection is stuck",
            backstop.as_millis()
        ))),
    }
}

/// Rebuilds each valid B-tree index whose estimated bloat reaches the [`ReportConfig`]
/// thresholds (`bloat_bytes` warn and `bloat_min_pct`), `CONCURRENTLY` (PostgreSQL 12 and
/// later) so reads and writes go on. A concurrent rebuild that fails leaves an invalid
/// `_ccnew` copy behind; it is dropped. Heavy: outside the maintenance windows it is not run
/// unless `ctx.emergency`. A dry run lists the statements and runs none.
pub async fn reindex(cfg: &DbMaintConfig, ctx: &RunCtx) -> Result<OpsReport, DbMaintError> {
    operation(ctx, true, rebuild_bloated(&cfg.db, &cfg.reports, ctx.dry_run)).await
}

async fn rebuild_bloated(cfg: &DbConfig, rc: &ReportConfig, dry_run: bool) -> Result<Findings, DbMaintError> {
    let session = Session::open(cfg).await?;
    let role = Role::of(&session, cfg).await?;
    let concurrently = if role.version >= 120_000 { "CONCURRENTLY " } else { "" };
    let db = Db { s: &session, cfg };
    let bloated: Vec<IndexBloat> = index_bloat(&db)
        .await?
        .into_iter()
        .filter(|ix| {
            ix.valid
                // CONCURRENTLY cannot rebuild an exclusion constraint's index.
                && (!ix.exclusion || concurrently.is_empty())
                && bloat_status(rc, ix.wasted_bytes, ix.pct()) != Status::Ok
        })
        .collect();
    let allowed: Vec<u32> = if bloated.is_empty() {
        Vec::new()
    } else {
        let oids: Vec<u32> = bloated.iter().map(|ix| ix.oid).collect();
        let sql = format!(
            "SELECT i.indexrelid FROM pg_index i WHERE i.indexrelid = ANY($1) AND {}",
            role.may_maintain("i.indrelid", true)
        );
        session
            .query(cfg, "checking which indexes this role may rebuild", &sql, &[&oids])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let mut report = Findings::default();
    for ix in bloated {
        if !allowed.contains(&ix.oid) {
            let skipped = format!("skipped: {}", role.lacks("REINDEX", &ix.table, true));
            report.checks.push(Check::new(&ix.index, Status::Warn, skipped));
            continue;
        }
        let sql = format!("REINDEX INDEX {concurrently}{}", ix.index);
        report.actions.push(sql.clone());
        if dry_run {
            continue;
        }
        let was = format!(
            "about {} of {} wasted",
            kyb_core::human_bytes(ix.wasted_bytes.max(0) as u64),
            kyb_core::human_bytes(ix.bytes.max(0) as u64)
        );
        let before = if concurrently.is_empty() {
            Vec::new()
        } else {
            invalid_on_table(&session, cfg, ix.oid).await?
        };
        match execute(&session, cfg, &sql).await {
            Ok(()) => report.checks.push(Check::new(&ix.index, Status::Ok, format!("rebuilt ({was})"))),
            Err(Failed::Statement(status, why)) => {
                let leftover = if concurrently.is_empty() {
                    String::new()
                } else {
                    drop_leftovers(&session, cfg, ix.oid, &before).await
                };
                report.checks.push(Check::new(&ix.index, status, format!("REINDEX failed: {why}{leftover}")));
            }
            Err(Failed::Stuck(why)) => {
                report.checks.push(Check::new(&ix.index, Status::Crit, format!("REINDEX {why}")));
                break;
            }
        }
    }
    if report.checks.is_empty() && !dry_run {
        report.checks.push(Check::new(
            "indexes",
            Status::Ok,
            format!(
                "no index with {} or more estimated bloat",
                kyb_core::human_bytes(rc.bloat_bytes.warn as u64)
            ),
        ));
    }
    Ok(report)
}

/// The invalid indexes on the table of `index`: taken before a rebuild, so that the copies a
/// failed rebuild leaves (`_ccnew`, or `_ccold` when it failed after the swap) are told apart by
/// oid, whatever their names were cut to.
async fn invalid_on_table(
    session: &Session,
    cfg: &DbConfig,
    index: u32,
) -> Result<Vec<(u32, String)>, DbMaintError> {
    let rows = session
        .query(
            cfg,
            "listing invalid indexes of the table",
            "SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_index orig ON orig.indexrelid = $1 \
             WHERE NOT i.indisvalid AND i.indrelid = orig.indrelid",
            &[&index],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Drops the invalid copies a failed `REINDEX CONCURRENTLY` left on the index's table (those not
/// in `before`), and says what happened to them.
async fn drop_leftovers(session: &Session, cfg: &DbConfig, index: u32, before: &[(u32, String)]) -> String {
    let now = match invalid_on_table(session, cfg, index).await {
        Ok(n) => n,
        Err(e) => {
            return format!("; could not look for the invalid copy it may have left: {}", error_chain(&e));
        }
    };
    let mut said = String::new();
    for (_, name) in now.iter().filter(|(oid, _)| !before.iter().any(|(b, _)| b == oid)) {
        match execute(session, cfg, &format!("DROP INDEX CONCURRENTLY IF EXISTS {name}")).await {
            Ok(()) => said.push_str(&format!("; dropped the invalid copy {name}")),
            Err(Failed::Statement(_, why) | Failed::Stuck(why)) => {
                said.push_str(&format!("; the invalid copy {name} is still there ({why}): drop it by hand"));
            }
        }
    }
    said
}
