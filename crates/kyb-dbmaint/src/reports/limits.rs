//! Hard limits: transaction-ID wraparound, sequence exhaustion, connection slots.

use super::{Db, DbReport, ReportConfig, ReportKind, grant_read_all_stats, hidden_sessions, or_all_clear};
use crate::DbMaintError;
use kyb_core::{Check, Gauge, Metric, Status, Unit};
use std::collections::BTreeMap;

/// The server refuses new transactions about this many XIDs past the oldest unfrozen one.
const XID_LIMIT: f64 = 2_147_483_647.0;

pub(crate) async fn wraparound(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    let dbrow = db
        .query(
            "reading the database's XID age",
            "SELECT current_database()::text, age(datfrozenxid)::int8, mxid_age(datminmxid)::int8, \
                    current_setting('autovacuum_freeze_max_age')::int8 \
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    let Some(d) = dbrow.first() else {
        return Ok(DbReport::new(
            ReportKind::Wraparound,
            vec![Check::new("database", Status::Unknown, "the current database is missing from pg_database")],
            Vec::new(),
        ));
    };
    let (name, age, mxid_age, freeze_max): (String, i64, i64, i64) = (d.get(0), d.get(1), d.get(2), d.get(3));
    let mut checks = vec![xid_check(rc, format!("database {name}"), age, mxid_age)];
    // Every table counts, the catalogs, TOAST and other sessions' temp tables too (autovacuum
    // cannot freeze a temp table): any of them can hold the database's age back. A TOAST table is
    // named by the table it belongs to.
    let rows = db
        .query(
            "reading table XID ages",
            "SELECT CASE WHEN c.relkind = 't' \
                         THEN 'TOAST of ' || coalesce(format('%I.%I', owner_ns.nspname, owner.relname), \
                                                      format('%I.%I', n.nspname, c.relname)) \
                         ELSE format('%I.%I', n.nspname, c.relname) END, \
                    age(c.relfrozenxid)::int8, mxid_age(c.relminmxid)::int8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_class owner ON owner.reltoastrelid = c.oid \
             LEFT JOIN pg_namespace owner_ns ON owner_ns.oid = owner.relnamespace \
             WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid::text <> '0' \
               AND (age(c.relfrozenxid)::int8 >= $1 OR mxid_age(c.relminmxid)::int8 >= $1) \
             ORDER BY 2 DESC, 1",
            &[&(rc.xid_age.warn as i64)],
        )
        .await?;
    for r in &rows {
        checks.push(xid_check(rc, r.get(0), r.get(1), r.get(2)));
    }
    let notes = vec![format!(
        "autovacuum forces a freeze at age {freeze_max}; the server stops taking writes near {XID_LIMIT:.0}"
    )];
    Ok(DbReport::new(ReportKind::Wraparound, checks, notes))
}

fn xid_check(rc: &ReportConfig, name: String, age: i64, mxid_age: i64) -> Check {
    let pct = 100.0 * age as f64 / XID_LIMIT;
    // Multixacts wrap around at the same 2^31 and stop writes the same way.
    Check::new(
        name,
        Status::worst([rc.xid_age.classify(age as f64), rc.xid_age.classify(mxid_age as f64)]),
        format!("XID age {age} ({pct:.1}% of the way to wraparound), multixact age {mxid_age}"),
    )
    .with_metric(
        Metric::new("xid_age", age as f64, Unit::None).with_thresholds(rc.xid_age.warn, rc.xid_age.crit),
    )
    .with_metric(Metric::new("mxid_age", mxid_age as f64, Unit::None))
}

/// The largest value a column of this type holds, for the integer types a sequence feeds.
fn type_max(typname: &str) -> Option<i64> {
    match typname {
        "int2" => Some(i64::from(i16::MAX)),
        "int4" => Some(i64::from(i32::MAX)),
        "int8" => Some(i64::MAX),
        _ => None,
    }
}

fn type_min(typname: &str) -> Option<i64> {
    match typname {
        "int2" => Some(i64::from(i16::MIN)),
        "int4" => Some(i64::from(i32::MIN)),
        "int8" => Some(i64::MIN),
        _ => None,
    }
}

pub(crate) async fn sequences(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    // A sequence feeds a column through OWNED BY / identity (pg_depend 'a' or 'i') or through a
    // column default calling nextval() (a dependency of the pg_attrdef row).
    let sql = "SELECT format('%I.%I', s.schemaname, s.sequencename), s.last_value, s.increment_by, \
                      s.min_value, s.max_value, s.cycle, s.start_value, \
                      CASE WHEN a.attname IS NOT NULL THEN format('%I.%I.%I', tn.nspname, t.relname, a.attname) END, \
                      ty.typname::text \
               FROM pg_sequences s \
               JOIN pg_namespace n ON n.nspname = s.schemaname \
               JOIN pg_class sc ON sc.relnamespace = n.oid AND sc.relname = s.sequencename \
               LEFT JOIN LATERAL ( \
                   SELECT d.refobjid AS relid, d.refobjsubid AS attnum FROM pg_depend d \
                   WHERE d.classid = 'pg_class'::regclass AND d.objid = sc.oid \
                     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 \
                   UNION \
                   SELECT ad.adrelid, ad.adnum FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid \
                   WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass \
                     AND d.refobjid = sc.oid) fed ON true \
               LEFT JOIN pg_class t ON t.oid = fed.relid \
               LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace \
               LEFT JOIN pg_attribute a ON a.attrelid = fed.relid AND a.attnum = fed.attnum \
               LEFT JOIN pg_type ty ON ty.oid = a.atttypid \
               WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema') AND s.schemaname !~ '^pg_temp_' \
               ORDER BY 1, 7";
    let rows = db.query("reading sequences", sql, &[]).await?;
    struct Seq {
        last: Option<i64>,
        step: i64,
        min: i64,
        max: i64,
        start: i64,
        cycle: bool,
        columns: Vec<(String, String)>,
    }
    let mut seqs: BTreeMap<String, Seq> = BTreeMap::new();
    for r in &rows {
        let seq = seqs.entry(r.get(0)).or_insert_with(|| Seq {
            last: r.get(1),
            step: r.get(2),
            min: r.get(3),
            max: r.get(4),
            cycle: r.get(5),
            start: r.get(6),
            columns: Vec::new(),
        });
        if let (Some(col), Some(ty)) = (r.get::<_, Option<String>>(7), r.get::<_, Option<String>>(8)) {
            seq.columns.push((col, ty));
        }
    }
    let mut checks = Vec::new();
    let mut highest: Option<(f64, String)> = None;
    let mut unreadable = 0;
    for (name, s) in &seqs {
        // pg_sequences shows no value for a sequence not yet called since a setval(.., false)
        // or ALTER SEQUENCE .. RESTART, yet that value is the next one handed out: read it from
        // the sequence itself (the name is the server-quoted one). One we may not read is left
        // out, and counted.
        let last = match s.last {
            Some(v) => v,
            None => {
                match db.query("reading a sequence", &format!("SELECT last_value FROM {name}"), &[]).await {
                    Ok(rows) => rows[0].get(0),
                    Err(DbMaintError::Query { source, .. })
                        if source.code()
                            == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
                    {
                        unreadable += 1;
                        continue;
                    }
                    Err(_) => continue,
                }
            }
        };
        // The tightest bound wins: the sequence's own, or the smallest column it feeds.
        let narrowest = s.columns.iter().filter_map(|(c, ty)| Some((c, type_max(ty)?, type_min(ty)?)));
        let (mut hi, mut lo, mut bound) = (s.max, s.min, "its own limit".to_owned());
        for (col, tmax, tmin) in narrowest {
            if s.step > 0 && tmax <= hi {
                (hi, bound) = (tmax, format!("column {col}"));
            }
            if s.step < 0 && tmin >= lo {
                (lo, bound) = (tmin, format!("column {col}"));
            }
        }
        // Measured from where the sequence starts: one that starts at 1 with MINVALUE at the
        // bottom of the type has used nothing on its first day.
        let (used, range) = if s.step > 0 {
            ((last as f64 - s.start as f64).max(0.0), hi as f64 - s.start as f64)
        } else {
            ((s.start as f64 - last as f64).max(0.0), s.start as f64 - lo as f64)
        };
        let pct = if range > 0.0 { 100.0 * used / range } else { 100.0 };
        if highest.as_ref().is_none_or(|(p, _)| pct > *p) {
            highest = Some((pct, name.clone()));
        }
        let status = rc.sequence_pct.classify(pct);
        if status == Status::Ok {
            continue;
        }
        let left = if s.step > 0 {
            (hi as f64 - last as f64) / s.step as f64
        } else {
            (last as f64 - lo as f64) / -s.step as f64
        };
        let cycle = if s.cycle { "; it CYCLEs, so values will repeat" } else { "" };
        checks.push(
            Check::new(
                name,
                status,
                format!(
                    "at {last}, {pct:.1}% of the range allowed by {bound}; about {left:.0} values left{cycle}"
                ),
            )
            .with_metric(
                Metric::new("used_pct", (pct * 100.0).round() / 100.0, Unit::Percent)
                    .with_thresholds(rc.sequence_pct.warn, rc.sequence_pct.crit),
            ),
        );
    }
    let clear = match &highest {
        Some((pct, name)) => format!("{} sequences; the fullest is {name} at {pct:.2}%", seqs.len()),
        None => format!("{} sequences, none used yet", seqs.len()),
    };
    let mut notes = Vec::new();
    if unreadable > 0 {
        let role: String =
            db.query("reading the role", "SELECT format('%I', current_user)", &[]).await?[0].get(0);
        notes.push(format!(
            "{unreadable} sequences not measured: {role} may not read them, which takes SELECT or USAGE on the sequence"
        ));
    }
    let mut checks = or_all_clear(checks, "sequences", clear);
    if let Some((pct, _)) = &highest {
        checks[0].gauges.push(Gauge::new("kyb_maint_sequence_used_ratio_max", pct / 100.0));
    }
    Ok(DbReport::new(ReportKind::Sequences, checks, notes))
}

pub(crate) async fn connections(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    let rows = db
        .query(
            "counting connections",
            "SELECT count(*), count(*) FILTER (WHERE datname = current_database()), \
                    count(*) FILTER (WHERE state = 'idle in transaction'), \
                    current_setting('max_connections')::int8, \
                    current_setting('superuser_reserved_connections')::int8 \
                      + coalesce(current_setting('reserved_connections', true)::int8, 0) \
             FROM pg_stat_activity WHERE backend_type = 'client backend'",
            &[],
        )
        .await?;
    let r = &rows[0];
    let (all, here, idle_tx, max, reserved): (i64, i64, i64, i64, i64) =
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
    let usable = (max - reserved).max(1);
    let pct = 100.0 * all as f64 / usable as f64;
    let check = Check::new(
        "connections",
        rc.connections_pct.classify(pct),
        format!(
            "{all} of {usable} usable connections ({pct:.1}%; max_connections {max}, {reserved} reserved), \
             {here} to this database, {idle_tx} idle in transaction"
        ),
    )
    .with_metric(
        Metric::new("used_pct", (pct * 10.0).round() / 10.0, Unit::Percent)
            .with_thresholds(rc.connections_pct.warn, rc.connections_pct.crit),
    )
    .with_metric(Metric::new("connections", all as f64, Unit::None));
    let hidden = hidden_sessions(db).await?;
    let notes = if hidden.anywhere > 0 {
        vec![format!(
            "the counts leave out up to {} sessions of other roles, whose type and state {} may not see \
             ({})",
            hidden.anywhere,
            hidden.role,
            grant_read_all_stats(&hidden.role)
        )]
    } else {
        Vec::new()
    };
    Ok(DbReport::new(ReportKind::Connections, vec![check], notes))
}
