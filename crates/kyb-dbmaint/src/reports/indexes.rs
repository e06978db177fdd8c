//! Index reports: unused, duplicate and invalid indexes, and B-tree bloat estimates.

use super::{Db, DbReport, ReportConfig, ReportKind, SYSTEM_SCHEMAS, human, or_all_clear};
use crate::DbMaintError;
use kyb_core::{Check, Metric, Status, Unit};
use time::OffsetDateTime;

pub(crate) async fn unused(db: &Db<'_>, rc: &ReportConfig) -> Result<DbReport, DbMaintError> {
    let reset = db
        .query(
            "reading the statistics reset time",
            "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    let reset: Option<OffsetDateTime> = reset.first().and_then(|r| r.get(0));
    let since = match reset {
        Some(t) => {
            let days = (OffsetDateTime::now_utc() - t).whole_days();
            format!("scans counted since the statistics reset at {} ({days} days)", rfc3339(t))
        }
        None => {
            "scans counted since statistics began (never reset; a crash or failover clears them)".to_owned()
        }
    };
    // Indexes behind a constraint (primary key, unique, exclusion) are needed whether or not
    // anything scans them; a partition's index attached to its parent's cannot be dropped alone.
    let sql = format!(
        "SELECT format('%I.%I', s.schemaname, s.indexrelname), format('%I.%I', s.schemaname, s.relname), \
                s.idx_scan, coalesce(pg_relation_size(s.indexrelid), 0) \
         FROM pg_stat_user_indexes s \
         JOIN pg_index i ON i.indexrelid = s.indexrelid \
         JOIN pg_namespace n ON n.nspname = s.schemaname \
         WHERE NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion AND i.indisvalid \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid) \
           AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = s.indexrelid) \
           AND s.idx_scan <= $1 AND coalesce(pg_relation_size(s.indexrelid), 0) >= $2 AND {SYSTEM_SCHEMAS} \
         ORDER BY 4 DESC, 1"
    );
    let rows = db
        .query("listing unused indexes", &sql, &[&rc.unused_index_max_scans, &rc.unused_index_min_bytes])
        .await?;
    let checks = rows
        .iter()
        .map(|r| {
            let (index, table, scans, bytes): (String, String, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            Check::new(
                index,
                Status::Warn,
                format!("{scans} scans, {} on {table}; a candidate to drop", human(bytes)),
            )
            .with_metric(Metric::new("scans", scans as f64, Unit::None))
            .with_metric(Metric::new("size", bytes as f64, Unit::Bytes))
        })
        .collect();
    let clear = format!("no index with at most {} scans ({since})", rc.unused_index_max_scans);
    Ok(DbReport::new(ReportKind::UnusedIndexes, or_all_clear(checks, "indexes", clear), vec![since]))
}

/// One index as the duplicate comparison needs it.
struct Ix {
    name: String,
    table_oid: u32,
    table: String,
    am: String,
    /// Key columns (table attribute numbers; 0 for an expression), then INCLUDE columns.
    keys: Vec<String>,
    n_key: usize,
    /// Operator classes, collations and options of the key columns, position by position.
    class: Vec<String>,
    exprs: Option<String>,
    pred: Option<String>,
    unique: bool,
    constraint: bool,
    bytes: i64,
    definition: String,
}

impl Ix {
    /// True when `other` serves every lookup this index serves, so this one can go.
    fn covered_by(&self, other: &Ix) -> bool {
        if self.table_oid != other.table_oid
            || self.am != other.am
            || self.exprs != other.exprs
            || self.pred != other.pred
            || self.name == other.name
        {
            return false;
        }
        let same = self.keys == other.keys && self.class == other.class;
        if self.unique {
            // A unique index is only replaced by one enforcing the same uniqueness.
            return same && other.unique;
        }
        if same {
            return true;
        }
        // Only a B-tree answers queries on a leading part of its key.
        self.am == "btree"
            && self.keys.len() == self.n_key
            && self.n_key < other.n_key
            && other.keys[..self.n_key] == self.keys[..]
            && other.class[..self.n_key] == self.class[..]
    }
}

pub(crate) async fn duplicates(db: &Db<'_>) -> Result<DbReport, DbMaintError> {
    // A partitioned index has no storage of its own: its size is its partitions' indexes;
    // pg_partition_tree() has no rows for an ordinary index.
    let sql = format!(
        "SELECT format('%I.%I', n.nspname, c.relname), i.indrelid, format('%I.%I', n.nspname, t.relname), am.amname, \
                i.indkey::text, i.indnkeyatts::int4, \
                i.indclass::text || '/' || i.indcollation::text || '/' || i.indoption::text, \
                pg_get_expr(i.indexprs, i.indrelid), pg_get_expr(i.indpred, i.indrelid), i.indisunique, \
                EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid), \
                CASE WHEN c.relkind = 'I' \
                     THEN (SELECT coalesce(sum(pg_relation_size(p.relid)), 0)::int8 \
                           FROM pg_partition_tree(i.indexrelid) p WHERE p.isleaf) \
                     ELSE coalesce(pg_relation_size(i.indexrelid), 0) END, \
                coalesce(pg_get_indexdef(i.indexrelid), '(dropped meanwhile)') \
         FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam \
         WHERE i.indisvalid AND {SYSTEM_SCHEMAS} \
           AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) \
         ORDER BY 1"
    );
    let rows = db.query("listing indexes", &sql, &[]).await?;
    let ixs: Vec<Ix> = rows
        .iter()
        .map(|r| {
            let keys: String = r.get(4);
            let n_key = usize::try_from(r.get::<_, i32>(5)).unwrap_or(0);
            let class: String = r.get(6);
            let mut parts = class.split('/').map(|p| p.split(' ').map(str::to_owned).collect::<Vec<_>>());
            let (classes, collations, options) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let class = (0..n_key)
                .map(|k| {
                    let at = |v: &Vec<String>| v.get(k).cloned().unwrap_or_default();
                    format!("{}/{}/{}", at(&classes), at(&collations), at(&options))
                })
                .collect();
            Ix {
                name: r.get(0),
                table_oid: r.get(1),
                table: r.get(2),
                am: r.get(3),
                keys: keys.split(' ').map(str::to_owned).collect(),
                n_key,
                class,
                exprs: r.get(7),
                pred: r.get(8),
                unique: r.get(9),
                constraint: r.get(10),
                bytes: r.get(11),
                definition: r.get(12),
            }
        })
        .collect();
    let mut checks = Vec::new();
    for a in &ixs {
        if a.constraint {
            continue;
        }
        // Of two identical indexes, report one: the one not behind a constraint, else the later
        // name.
        let cover =
            ixs.iter().find(|b| a.covered_by(b) && !(b.covered_by(a) && !b.constraint && b.name > a.name));
        if let Some(b) = cover {
            checks.push(
                Check::new(
                    &a.name,
                    Status::Warn,
                    format!(
                        "{} on {} is covered by {} ({}); {} to reclaim by dropping it",
                        a.definition,
                        a.table,
                        b.name,
                        b.definition,
                        human(a.bytes)
                    ),
                )
                .with_metric(Metric::new("size", a.bytes as f64, Unit::Bytes)),
            );
        }
    }
    let clear = format!("no duplicate among {} indexes", ixs.len());
    Ok(DbReport::new(ReportKind::DuplicateIndexes, or_all_clear(checks, "indexes", clear), Vec::new()))
}

pub(crate) async fn invalid(db: &Db<'_>) -> Result<DbReport, DbMaintError> {
    // TOAST schemas stay in: a failed REINDEX CONCURRENTLY leaves `_ccnew` indexes there too.
    let sql = "SELECT format('%I.%I', n.nspname, c.relname), format('%I.%I', tn.nspname, t.relname), \
                      coalesce(pg_relation_size(c.oid), 0), \
                      EXISTS (SELECT 1 FROM pg_stat_progress_create_index p \
                              WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                                AND (p.index_relid = c.oid \
                                     OR (p.relid = i.indrelid AND p.command LIKE 'REINDEX CONCURRENTLY%'))), \
                      coalesce(pg_get_indexdef(c.oid), '(dropped meanwhile)'), c.relkind = 'I' \
               FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
               JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
               WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname !~ '^pg_temp_' \
               ORDER BY 1";
    let rows = db.query("listing invalid indexes", sql, &[]).await?;
    let checks = rows
        .iter()
        .map(|r| {
            let (index, table, bytes, building, def, partitioned): (String, String, i64, bool, String, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            if building {
                // A concurrent build (or rebuild, whose `_ccnew` copy is invalid until the swap).
                Check::new(index, Status::Ok, format!("on {table}: being built right now ({def})"))
            } else if partitioned {
                Check::new(
                    &index,
                    Status::Warn,
                    format!(
                        "on partitioned {table}: invalid until every partition has its index attached \
                         (ALTER INDEX {index} ATTACH PARTITION ...), or drop it with DROP INDEX {index}: {def}"
                    ),
                )
            } else {
                Check::new(
                    &index,
                    Status::Crit,
                    format!(
                        "on {table}: invalid ({} kept up to date on every write, never used by queries); \
                         drop it with DROP INDEX CONCURRENTLY {index} and build it again: {def}",
                        human(bytes)
                    ),
                )
            }
        })
        .collect();
    Ok(DbReport::new(
        ReportKind::InvalidIndexes,
        or_all_clear(checks, "indexes", "every index is valid".to_owned()),
        Vec::new(),
    ))
}

/// The estimated bloat of one B-tree index.
#[derive(Debug, Clone)]
pub(crate) struct IndexBloat {
    pub(crate) oid: u32,
    pub(crate) index: String,
    pub(crate) table: String,
    pub(crate) bytes: i64,
    pub(crate) wasted_bytes: i64,
    pub(crate) valid: bool,
    /// Backs an exclusion constraint: REINDEX CONCURRENTLY cannot rebuild it.
    pub(crate) exclusion: bool,
}

impl IndexBloat {
    pub(crate) fn pct(&self) -> f64 {
        if self.bytes > 0 { 100.0 * self.wasted_bytes as f64 / self.bytes as f64 } else { 0.0 }
    }
}

/// Estimates each B-tree index's wasted space from the planner statistics: the pages its tuples
/// would fill when freshly built (leaf tuple = 8-byte header + aligned key widths + 4-byte line
/// pointer, at the index's fillfactor), against the pages it has. Indexes without statistics
/// (never analyzed) are left out rather than guessed.
pub(crate) async fn index_bloat(db: &Db<'_>) -> Result<Vec<IndexBloat>, DbMaintError> {
    let sql = format!(
        "SELECT format('%I.%I', n.nspname, c.relname), format('%I.%I', n.nspname, t.relname), \
                c.relpages::int8, c.reltuples::float8, current_setting('block_size')::int8, \
                coalesce((SELECT substring(o FROM '^fillfactor=([0-9]+)$')::int4 \
                          FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), 90), \
                array_agg(coalesce(ixs.avg_width, ts.avg_width, -1)::int4 ORDER BY ia.attnum), \
                array_agg(coalesce(ixs.null_frac, ts.null_frac, 0)::float8 ORDER BY ia.attnum), \
                array_agg(ty.typalign::text ORDER BY ia.attnum), array_agg(ty.typlen::int4 ORDER BY ia.attnum), \
                i.indisvalid, c.oid, i.indisexclusion \
         FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam \
         JOIN pg_attribute ia ON ia.attrelid = c.oid AND ia.attnum > 0 \
         JOIN pg_type ty ON ty.oid = ia.atttypid \
         LEFT JOIN pg_attribute ta ON ta.attrelid = t.oid AND ta.attnum = i.indkey[ia.attnum - 1] \
         LEFT JOIN pg_stats ts ON ts.schemaname = n.nspname AND ts.tablename = t.relname \
              AND ts.attname = ta.attname AND NOT ts.inherited \
         LEFT JOIN pg_stats ixs ON ixs.schemaname = n.nspname AND ixs.tablename = c.relname \
              AND ixs.attname = ia.attname \
         WHERE am.amname = 'btree' AND c.relpages > 1 AND c.reltuples >= 0 AND {SYSTEM_SCHEMAS} \
         GROUP BY n.nspname, c.relname, t.relname, c.relpages, c.reltuples, c.reloptions, i.indisvalid, c.oid, \
                  i.indisexclusion \
         ORDER BY 1"
    );
    let rows = db.query("estimating index bloat", &sql, &[]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let cols = columns(r, 6)?;
            let (pages, tuples, block, fill): (i64, f64, i64, i32) = (r.get(2), r.get(3), r.get(4), r.get(5));
            // Index tuple header (8 bytes; 16 with a null bitmap), then the key columns laid out
            // with their alignment, then a 4-byte line pointer.
            let header = if cols.iter().any(|c| c.null_frac > 0.0) { 16.0 } else { 8.0 };
            let tuple = header + align8(data_width(&cols)) + 4.0;
            // Page header (24) and B-tree special space (16); one metapage.
            let usable = (block as f64 - 40.0) * f64::from(fill) / 100.0;
            let expected = (tuples * tuple / usable).ceil() as i64 + 1;
            Some(IndexBloat {
                oid: r.get(11),
                index: r.get(0),
                table: r.get(1),
                bytes: pages * block,
                wasted_bytes: (pages - expected).max(0) * block,
                valid: r.get(10),
                exclusion: r.get(12),
            })
        })
        .collect())
}

/// One column as the estimates need it.
pub(crate) struct Column {
    width: f64,
    pub(crate) null_frac: f64,
    align: f64,
}

/// The columns starting at `first` (widths, null fractions, alignments, lengths as arrays);
/// None when a column has no statistics yet.
pub(crate) fn columns(r: &tokio_postgres::Row, first: usize) -> Option<Vec<Column>> {
    let widths: Vec<i32> = r.get(first);
    let nulls: Vec<f64> = r.get(first + 1);
    let aligns: Vec<String> = r.get(first + 2);
    let lens: Vec<i32> = r.get(first + 3);
    widths
        .iter()
        .zip(nulls)
        .zip(aligns)
        .zip(lens)
        .map(|(((&w, null_frac), align), len)| {
            if w < 0 {
                return None;
            }
            let align = match align.as_str() {
                "d" => 8.0,
                "i" => 4.0,
                "s" => 2.0,
                _ => 1.0,
            };
            // A short variable-length value (under 127 bytes) has a 1-byte header and no
            // alignment.
            let align = if len == -1 && w < 127 { 1.0 } else { align };
            Some(Column { width: f64::from(w), null_frac, align })
        })
        .collect()
}

/// The average bytes of the columns laid out in order, each padded to its alignment.
pub(crate) fn data_width(cols: &[Column]) -> f64 {
    cols.iter().fold(0.0, |offset, c| {
        if c.null_frac >= 1.0 {
            return offset;
        }
        (offset / c.align).ceil() * c.align + c.width * (1.0 - c.null_frac)
    })
}

pub(crate) fn align8(width: f64) -> f64 {
    (width / 8.0).ceil() * 8.0
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix(name: &str, keys: &str, unique: bool) -> Ix {
        let keys: Vec<String> = keys.split(' ').map(str::to_owned).collect();
        Ix {
            name: name.to_owned(),
            table_oid: 1,
            table: "t".to_owned(),
            am: "btree".to_owned(),
            n_key: keys.len(),
            class: keys.iter().map(|_| "c".to_owned()).collect(),
            keys,
            exprs: None,
            pred: None,
            unique,
            constraint: false,
            bytes: 0,
            definition: String::new(),
        }
    }

    #[test]
    fn a_leading_prefix_is_covered_and_uniqueness_is_kept() {
        let (a, ab) = (ix("a", "1", false), ix("ab", "1 2", false));
        assert!(a.covered_by(&ab));
        assert!(!ab.covered_by(&a));
        let (ua, ub) = (ix("ua", "1", true), ix("ab", "1 2", true));
        assert!(!ua.covered_by(&ub), "a unique index on (a) is not served by one on (a, b)");
        assert!(!ix("b", "2", false).covered_by(&ab));
        let mut hash = ix("h", "1", false);
        hash.am = "hash".to_owned();
        assert!(!hash.covered_by(&ab));
    }
}
