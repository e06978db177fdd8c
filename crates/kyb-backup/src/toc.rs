//! What a backup holds, object by object: the table of contents `pg_restore --list` prints for
//! a custom archive, or the `-- Name: …; Type: …` headers pg_dump writes into a plain script;
//! and the SQL that lists a restored database's objects the same way, so the restore drill can
//! name every object that did not come back.

use std::collections::{BTreeMap, HashSet};

/// One object in a backup, as pg_dump names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TocEntry {
    /// `TABLE`, `VIEW`, `FUNCTION`, `TABLE DATA`, `FK CONSTRAINT`, …
    pub(crate) kind: String,
    /// The schema; `-` for objects without one (schemas, extensions).
    pub(crate) schema: String,
    /// pg_dump's tag: `companies`, `f(integer, public.mood)`, `owners owners_pkey` (a table and
    /// its constraint or trigger).
    pub(crate) name: String,
    /// The owner (empty for some kinds).
    pub(crate) owner: String,
}

impl TocEntry {
    /// `schema name`: the form [`CATALOG_SQL`] lists restored objects in. In `--list` output a
    /// schema with a space cannot be told from the name, but this joined form stays exact.
    pub(crate) fn key(&self) -> String {
        format!("{} {}", self.schema, self.name)
    }

    /// `schema.name` for messages (`name` alone without a schema).
    pub(crate) fn display(&self) -> String {
        if self.schema == "-" { self.name.clone() } else { format!("{}.{}", self.schema, self.name) }
    }
}

/// Entry kinds pg_dump writes, longest first so `TABLE DATA` is not taken for `TABLE`.
const KINDS: &[&str] = &[
    "PUBLICATION TABLES IN SCHEMA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "MATERIALIZED VIEW DATA",
    "TEXT SEARCH TEMPLATE",
    "FOREIGN DATA WRAPPER",
    "PROCEDURAL LANGUAGE",
    "DATABASE PROPERTIES",
    "SUBSCRIPTION TABLE",
    "TEXT SEARCH PARSER",
    "SEQUENCE OWNED BY",
    "MATERIALIZED VIEW",
    "PUBLICATION TABLE",
    "STATISTICS DATA",
    "OPERATOR FAMILY",
    "CHECK CONSTRAINT",
    "OPERATOR CLASS",
    "SECURITY LABEL",
    "FOREIGN SERVER",
    "BLOB METADATA",
    "EVENT TRIGGER",
    "FK CONSTRAINT",
    "FOREIGN TABLE",
    "ACCESS METHOD",
    "INDEX ATTACH",
    "ROW SECURITY",
    "SEQUENCE SET",
    "TABLE ATTACH",
    "LARGE OBJECT",
    "USER MAPPING",
    "SUBSCRIPTION",
    "DEFAULT ACL",
    "PUBLICATION",
    "SHELL TYPE",
    "STATISTICS",
    "STDSTRINGS",
    "CONSTRAINT",
    "CONVERSION",
    "SEARCHPATH",
    "TABLE DATA",
    "AGGREGATE",
    "COLLATION",
    "EXTENSION",
    "PROCEDURE",
    "TRANSFORM",
    "DATABASE",
    "ENCODING",
    "FUNCTION",
    "OPERATOR",
    "SEQUENCE",
    "COMMENT",
    "DEFAULT",
    "TRIGGER",
    "DOMAIN",
    "POLICY",
    "SCHEMA",
    "SERVER",
    "BLOBS",
    "INDEX",
    "TABLE",
    "BLOB",
    "CAST",
    "RULE",
    "TYPE",
    "VIEW",
    "ACL",
];

/// Parses `pg_restore --list` output: `<id>; <catalog oid> <oid> <kind> <schema> <tag> <owner>`
/// per entry. Comment lines (`;`) and anything else that is not an entry are skipped.
pub(crate) fn parse_list(text: &str) -> Vec<TocEntry> {
    text.lines().filter_map(parse_list_line).collect()
}

fn parse_list_line(line: &str) -> Option<TocEntry> {
    let (id, rest) = line.split_once("; ")?;
    id.parse::<u32>().ok()?;
    let mut words = rest.splitn(3, ' ');
    let (table_oid, oid, rest) = (words.next()?, words.next()?, words.next()?);
    table_oid.parse::<u32>().ok()?;
    oid.parse::<u32>().ok()?;
    let kind = KINDS
        .iter()
        .find(|k| rest.strip_prefix(**k).is_some_and(|r| r.starts_with(' ')))
        .map_or_else(|| rest.split(' ').next().unwrap_or_default(), |k| *k);
    let rest = rest.get(kind.len() + 1..)?;
    let (schema, rest) = rest.split_once(' ')?;
    // The owner is the last word; it may be empty (a line ending in a space).
    let (name, owner) = rest.rsplit_once(' ')?;
    Some(TocEntry {
        kind: kind.to_owned(),
        schema: schema.to_owned(),
        name: name.to_owned(),
        owner: owner.to_owned(),
    })
}

/// Parses one line of a plain script: pg_dump's `-- Name: <tag>; Type: <kind>; Schema: <schema>;
/// Owner: <owner>` header (before each object's statements; data has `-- Data for Name:`).
pub(crate) fn parse_plain_header(line: &str) -> Option<TocEntry> {
    let rest = line.strip_prefix("-- Name: ")?;
    let (rest, owner) = rest.rsplit_once("; Owner: ")?;
    let (rest, schema) = rest.rsplit_once("; Schema: ")?;
    let (name, kind) = rest.rsplit_once("; Type: ")?;
    Some(TocEntry {
        kind: kind.to_owned(),
        schema: schema.to_owned(),
        name: name.to_owned(),
        owner: owner.to_owned(),
    })
}

/// Collects the headers of a plain script from the bytes streamed past it, a chunk at a time.
/// Only lines that start like a header are kept, and only up to a few KiB: a script's data lines
/// can be of any length.
#[derive(Debug, Default)]
pub(crate) struct PlainScan {
    line: Vec<u8>,
    capturing: bool,
    mid_line: bool,
    /// The headers seen so far.
    pub(crate) entries: Vec<TocEntry>,
}

const HEADER: &[u8] = b"-- Name: ";
const MAX_HEADER_BYTES: usize = 16 * 1024;

impl PlainScan {
    /// Takes the next chunk of the script.
    pub(crate) fn scan(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if !self.mid_line {
                self.line.clear();
                self.capturing = true;
                self.mid_line = true;
            }
            let end = chunk.iter().position(|b| *b == b'\n');
            let part = &chunk[..end.unwrap_or(chunk.len())];
            if self.capturing {
                self.line.extend_from_slice(part);
                let head = self.line.len().min(HEADER.len());
                if self.line[..head] != HEADER[..head] || self.line.len() > MAX_HEADER_BYTES {
                    self.capturing = false;
                }
            }
            match end {
                Some(i) => {
                    self.finish_line();
                    chunk = &chunk[i + 1..];
                }
                None => chunk = &[],
            }
        }
    }

    /// Ends the script (a last line without a newline counts).
    pub(crate) fn finish(mut self) -> Vec<TocEntry> {
        if self.mid_line {
            self.finish_line();
        }
        self.entries
    }

    fn finish_line(&mut self) {
        self.mid_line = false;
        if self.capturing
            && let Ok(line) = std::str::from_utf8(&self.line)
            && let Some(e) = parse_plain_header(line.trim_end_matches('\r'))
        {
            self.entries.push(e);
        }
    }
}

/// The kind of restored object a backup entry's kind is compared with, for the kinds the drill
/// compares; constraints of every sort are one kind.
pub(crate) fn compared_kind(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "SCHEMA" => "SCHEMA",
        "EXTENSION" => "EXTENSION",
        "TABLE" => "TABLE",
        "FOREIGN TABLE" => "FOREIGN TABLE",
        "VIEW" => "VIEW",
        "MATERIALIZED VIEW" => "MATERIALIZED VIEW",
        "SEQUENCE" => "SEQUENCE",
        "INDEX" => "INDEX",
        "FUNCTION" => "FUNCTION",
        "PROCEDURE" => "PROCEDURE",
        "TYPE" => "TYPE",
        "DOMAIN" => "DOMAIN",
        "CONSTRAINT" | "FK CONSTRAINT" | "CHECK CONSTRAINT" => "CONSTRAINT",
        "TRIGGER" => "TRIGGER",
        _ => return None,
    })
}

/// The compared kinds, in the order messages list them.
const ORDER: [&str; 14] = [
    "SCHEMA",
    "EXTENSION",
    "TYPE",
    "DOMAIN",
    "TABLE",
    "FOREIGN TABLE",
    "VIEW",
    "MATERIALIZED VIEW",
    "SEQUENCE",
    "FUNCTION",
    "PROCEDURE",
    "INDEX",
    "CONSTRAINT",
    "TRIGGER",
];

/// `(singular, plural)` of a compared kind, for messages.
fn noun(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "SCHEMA" => ("schema", "schemas"),
        "EXTENSION" => ("extension", "extensions"),
        "TABLE" => ("table", "tables"),
        "FOREIGN TABLE" => ("foreign table", "foreign tables"),
        "VIEW" => ("view", "views"),
        "MATERIALIZED VIEW" => ("materialized view", "materialized views"),
        "SEQUENCE" => ("sequence", "sequences"),
        "INDEX" => ("index", "indexes"),
        "FUNCTION" => ("function", "functions"),
        "PROCEDURE" => ("procedure", "procedures"),
        "TYPE" => ("type", "types"),
        "DOMAIN" => ("domain", "domains"),
        "CONSTRAINT" => ("constraint", "constraints"),
        "TRIGGER" => ("trigger", "triggers"),
        _ => ("object", "objects"),
    }
}

/// The restored database's objects of every compared kind as `(kind, "schema tag")` rows, named
/// as pg_dump tags them. Run with `search_path = ''`, as pg_dump runs, so `format_type` names
/// argument types the way pg_dump's function tags do (`public.mood`, `integer`).
pub(crate) const CATALOG_SQL: &str = "\
SELECT 'ROLE', rolname::text FROM pg_catalog.pg_roles
UNION ALL SELECT 'SCHEMA', '- ' || nspname FROM pg_catalog.pg_namespace
UNION ALL SELECT 'EXTENSION', '- ' || extname FROM pg_catalog.pg_extension
UNION ALL SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'f' THEN 'FOREIGN TABLE' \
  WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'INDEX' END, \
  n.nspname || ' ' || c.relname \
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
  WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S', 'i', 'I')
UNION ALL SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, \
  n.nspname || ' ' || p.proname || '(' || coalesce((SELECT string_agg(pg_catalog.format_type(a.t, NULL), ', ' \
  ORDER BY a.i) FROM unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY AS a(t, i)), '') || ')' \
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
UNION ALL SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname || ' ' || t.typname \
  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
UNION ALL SELECT 'CONSTRAINT', n.nspname || ' ' || coalesce(c.relname, t.typname) || ' ' || con.conname \
  FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_namespace n ON n.oid = con.connamespace \
  LEFT JOIN pg_catalog.pg_class c ON c.oid = con.conrelid LEFT JOIN pg_catalog.pg_type t ON t.oid = con.contypid \
  WHERE coalesce(c.relname, t.typname) IS NOT NULL
UNION ALL SELECT 'TRIGGER', n.nspname || ' ' || c.relname || ' ' || tg.tgname \
  FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid \
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE NOT tg.tgisinternal";

/// What the comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compared {
    /// Compared entries per kind (as [`compared_kind`] names them).
    pub(crate) counts: BTreeMap<&'static str, usize>,
    /// The entries with no restored object.
    pub(crate) missing: Vec<TocEntry>,
}

impl Compared {
    /// `3 tables, 1 view, 2 indexes`, in the order pg_dump makes them.
    pub(crate) fn counts_text(&self) -> String {
        ORDER
            .iter()
            .filter_map(|kind| {
                let (one, many) = noun(kind);
                self.counts.get(kind).map(|n| crate::counted(n, one, many))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How many entries were compared.
    pub(crate) fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

/// Compares the backup's entries of the compared kinds with the restored objects (`(kind,
/// "schema tag")` rows of [`CATALOG_SQL`], and `("ROLE", name)` for the roles that may own
/// them). Line breaks in names are spaces on both sides, as pg_restore prints them.
pub(crate) fn compare(entries: &[TocEntry], restored: &[(String, String)]) -> Compared {
    let flat = |s: &str| s.replace(['\n', '\r'], " ");
    let have: HashSet<(String, String)> = restored.iter().map(|(k, n)| (k.clone(), flat(n))).collect();
    let mut counts = BTreeMap::new();
    let mut missing = Vec::new();
    for e in entries {
        let Some(kind) = compared_kind(&e.kind) else { continue };
        *counts.entry(kind).or_insert(0) += 1;
        let key = e.key();
        // An owner with a space in it leaks into the name in `--list` output. Words are
        // dropped from the key's end only when they and the parsed owner name a real role:
        // otherwise `"order items"` would pass for a restored `order`.
        let found = std::iter::once(key.as_str())
            .chain(
                key.match_indices(' ')
                    .rev()
                    .filter(|(i, _)| {
                        have.contains(&("ROLE".to_owned(), format!("{} {}", &key[i + 1..], e.owner)))
                    })
                    .map(|(i, _)| &key[..i]),
            )
            .any(|k| have.contains(&(kind.to_owned(), k.to_owned())));
        if !found {
            missing.push(e.clone());
        }
    }
    Compared { counts, missing }
}

/// The noun for an entry's kind, for naming a missing one: `function`, `index`.
pub(crate) fn kind_noun(entry: &TocEntry) -> &'static str {
    compared_kind(&entry.kind).map_or("object", |k| noun(k).0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Real `pg_restore --list` output (PostgreSQL 15) of a database with a schema whose name
    /// has a space, an extension, a function over a user type, and the rest.
    const LISTED: &str = "\
;
; Archive created at 2026-12-02 02:32:22 UTC
;     dbname: kybexp
;
; Selected TOC Entries:
;
7; 2615 16607 SCHEMA - my schema kyb
2; 3079 16385 EXTENSION - pg_stat_statements 
3404; 0 0 COMMENT - EXTENSION pg_stat_statements 
226; 1255 16636 FUNCTION public f(integer, public.mood, character varying) kyb
218; 1259 16613 TABLE my schema odd name kyb
3394; 0 16619 TABLE DATA public t kyb
3405; 0 0 SEQUENCE OWNED BY public t_id_seq kyb
3240; 2606 16617 CONSTRAINT my schema odd name odd name_pkey kyb
3241; 1259 16626 INDEX public t_n kyb
3244; 2606 16646 FK CONSTRAINT public fk fk_id_fkey kyb
";

    #[test]
    fn list_output_parses_into_kinds_and_keys() {
        let e = parse_list(LISTED);
        let got: Vec<(&str, String, &str)> =
            e.iter().map(|e| (e.kind.as_str(), e.key(), e.owner.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("SCHEMA", "- my schema".to_owned(), "kyb"),
                ("EXTENSION", "- pg_stat_statements".to_owned(), ""),
                ("COMMENT", "- EXTENSION pg_stat_statements".to_owned(), ""),
                ("FUNCTION", "public f(integer, public.mood, character varying)".to_owned(), "kyb"),
                ("TABLE", "my schema odd name".to_owned(), "kyb"),
                ("TABLE DATA", "public t".to_owned(), "kyb"),
                ("SEQUENCE OWNED BY", "public t_id_seq".to_owned(), "kyb"),
                ("CONSTRAINT", "my schema odd name odd name_pkey".to_owned(), "kyb"),
                ("INDEX", "public t_n".to_owned(), "kyb"),
                ("FK CONSTRAINT", "public fk fk_id_fkey".to_owned(), "kyb"),
            ]
        );
    }

    #[test]
    fn plain_headers_parse_and_data_headers_do_not() {
        let mut scan = PlainScan::default();
        let script = "--\n-- Name: f(integer, public.mood); Type: FUNCTION; Schema: public; Owner: kyb\n--\n\n\
                      CREATE FUNCTION public.f() ...;\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: kyb\n\
                      -- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: kyb";
        // Split at every byte: headers come whole however the stream is chunked.
        for b in script.as_bytes().chunks(1) {
            scan.scan(b);
        }
        let got: Vec<(String, String)> = scan.finish().iter().map(|e| (e.kind.clone(), e.key())).collect();
        assert_eq!(
            got,
            vec![
                ("FUNCTION".to_owned(), "public f(integer, public.mood)".to_owned()),
                ("CONSTRAINT".to_owned(), "public t t_pkey".to_owned()),
            ]
        );
    }

    #[test]
    fn comparison_names_what_is_missing() {
        let entries = parse_list(LISTED);
        let restored: Vec<(String, String)> = [
            ("SCHEMA", "- my schema"),
            ("EXTENSION", "- pg_stat_statements"),
            ("TABLE", "my schema odd name"),
            ("CONSTRAINT", "my schema odd name odd name_pkey"),
            ("CONSTRAINT", "public fk fk_id_fkey"),
            ("INDEX", "public t_n"),
        ]
        .iter()
        .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
        .collect();
        let c = compare(&entries, &restored);
        assert_eq!(c.total(), 7);
        // A name with a space is not taken for a shorter restored one, unless the dropped words
        // belong to an owner's name.
        let order = |owner: &str| TocEntry {
            kind: "TABLE".into(),
            schema: "public".into(),
            name: "order items".into(),
            owner: owner.into(),
        };
        let only_order: Vec<(String, String)> = vec![("TABLE".into(), "public order".into())];
        assert_eq!(compare(&[order("kyb")], &only_order).missing.len(), 1);
        let with_role: Vec<(String, String)> =
            [only_order.clone(), vec![("ROLE".into(), "items kyb".into())]].concat();
        assert_eq!(compare(&[order("kyb")], &with_role).missing.len(), 0, "owner `items kyb`");
        assert_eq!(c.missing.len(), 1, "{:?}", c.missing);
        assert_eq!(c.missing[0].display(), "public.f(integer, public.mood, character varying)");
        assert_eq!(kind_noun(&c.missing[0]), "function");
        assert_eq!(c.counts_text(), "1 schema, 1 extension, 1 table, 1 function, 1 index, 2 constraints");
        assert!(ORDER.iter().all(|k| compared_kind(k) == Some(*k)));
    }

    /// Names as pg_dump may print them: any printable text without a line break, spaces and
    /// semicolons included, but no leading or trailing space.
    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_(),.;:\"'$ -]{0,30}[A-Za-z0-9_()\"]"
            .prop_map(|s| s.trim().to_owned())
            .prop_filter("a name is not empty", |s| !s.is_empty())
    }

    /// A schema name without a space (with one, `--list` cannot tell it from the name).
    fn schema() -> impl Strategy<Value = String> {
        prop_oneof![Just("-".to_owned()), "[A-Za-z_][A-Za-z0-9_$]{0,20}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_text_parses_without_panicking(text in "\\PC{0,400}", bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_list(&text);
            let _ = parse_plain_header(&text);
            let lossy = String::from_utf8_lossy(&bytes);
            let _ = parse_list(&lossy);
            let mut scan = PlainScan::default();
            scan.scan(&bytes);
            let _ = scan.finish();
        }

        #[test]
        fn generated_list_lines_parse_back(
            id in 1u32..100_000,
            table_oid in 0u32..5000,
            oid in any::<u32>(),
            kind in proptest::sample::select(KINDS),
            schema in schema(),
            name in name(),
            owner in prop_oneof![Just(String::new()), "[a-z_][a-z0-9_]{0,15}"],
        ) {
            let line = format!("{id}; {table_oid} {oid} {kind} {schema} {name} {owner}");
            let e = parse_list(&format!(";\n; Selected TOC Entries:\n;\n{line}\n"));
            prop_assert_eq!(e.len(), 1, "{}", line);
            // A name that begins like a longer kind's tail is the one ambiguity of the format.
            let ambiguous = KINDS.iter().any(|k| k.len() > kind.len() && format!("{kind} {schema} {name}").starts_with(&format!("{k} ")));
            if !ambiguous {
                prop_assert_eq!(&e[0].kind, kind);
                prop_assert_eq!(e[0].key(), format!("{schema} {name}"));
                prop_assert_eq!(&e[0].owner, &owner);
            }
        }

        #[test]
        fn generated_plain_headers_parse_back_through_any_chunking(
            kind in proptest::sample::select(KINDS),
            schema in schema(),
            name in name().prop_filter("no field separators in the name", |n| !n.contains("; ")),
            owner in prop_oneof![Just(String::new()), "[a-z_][a-z0-9_]{0,15}"],
            split in 1usize..64,
        ) {
            let script = format!("SET x = 1;\n--\n-- Name: {name}; Type: {kind}; Schema: {schema}; Owner: {owner}\n--\nCREATE ...;\n");
            let mut scan = PlainScan::default();
            for chunk in script.as_bytes().chunks(split) {
                scan.scan(chunk);
            }
            let e = scan.finish();
            prop_assert_eq!(e.len(), 1);
            prop_assert_eq!(&e[0].kind, kind);
            prop_assert_eq!(&e[0].schema, &schema);
            prop_assert_eq!(&e[0].name, &name);
            prop_assert_eq!(&e[0].owner, &owner);
        }
    }
}
