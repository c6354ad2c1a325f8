//! The parts of the D1 schema that decide what a write costs (D1 bills rows written:
//! <https://developers.cloudflare.com/d1/platform/pricing/>): every row a statement inserts,
//! updates or deletes, plus one per index the write touches, plus what triggers write. The
//! schema (tables, indexes, triggers) is read from `migrations/*.sql`, so dropping an index
//! there changes the figures; [`super::sqlite`] applies them to the statements it runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The parts of the schema that cost rows written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Index name → (table, indexed columns).
    pub indexes: BTreeMap<String, (String, Vec<String>)>,
    /// Table → tables its `AFTER INSERT` triggers write one row into.
    pub insert_triggers: BTreeMap<String, Vec<String>>,
    /// Trigger name → (table, tables it writes into), so a dropped and recreated trigger counts
    /// once ([`Schema::insert_triggers`] is derived from it).
    triggers: BTreeMap<String, (String, Vec<String>)>,
    /// Tables with a `UNIQUE` constraint beyond the primary key (an implicit index).
    pub unique_constraints: BTreeMap<String, usize>,
    /// Tables with `AUTOINCREMENT` (one `sqlite_sequence` write per insert).
    pub autoincrement: Vec<String>,
}

fn words(sql: &str) -> Vec<String> {
    sql.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_string())
        .collect()
}

fn strip_comments(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Schema {
    /// Reads the schema from migration texts, in order.
    pub fn from_migrations<'a>(texts: impl IntoIterator<Item = &'a str>) -> Schema {
        let mut schema = Schema::default();
        for text in texts {
            let text = strip_comments(text);
            let upper = text.to_uppercase();
            // Statements end at ';' except inside a trigger body (BEGIN … END;).
            let mut start = 0;
            let mut depth = 0;
            let bytes = upper.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if upper[i..].starts_with("BEGIN") {
                    depth += 1;
                    i += 5;
                    continue;
                }
                if upper[i..].starts_with("END;") && depth > 0 {
                    depth -= 1;
                    i += 4;
                    if depth == 0 {
                        schema.apply(&text[start..i]);
                        start = i;
                    }
                    continue;
                }
                if bytes[i] == b';' && depth == 0 {
                    schema.apply(&text[start..i]);
                    start = i + 1;
                }
                i += 1;
            }
        }
        schema
    }

    fn apply(&mut self, statement: &str) {
        let w = words(statement);
        let upper: Vec<String> = w.iter().map(|s| s.to_uppercase()).collect();
        let at = |k: &str| upper.iter().position(|u| u == k);
        // Skips `IF NOT EXISTS` / `IF EXISTS` at position `i`.
        let skip_if_not_exists = |i: usize| match (
            upper.get(i).map(String::as_str),
            upper.get(i + 1).map(String::as_str),
        ) {
            (Some("IF"), Some("NOT")) => i + 3,
            (Some("IF"), _) => i + 2,
            _ => i,
        };
        match (
            upper.first().map(String::as_str),
            upper.get(1).map(String::as_str),
        ) {
            (Some("CREATE"), Some("INDEX")) | (Some("CREATE"), Some("UNIQUE")) => {
                let i = skip_if_not_exists(at("INDEX").unwrap_or(1) + 1);
                let (Some(name), Some(on)) = (w.get(i), at("ON")) else {
                    return;
                };
                let Some(table) = w.get(on + 1) else { return };
                let columns = w[on + 2..]
                    .iter()
                    .take_while(|c| !c.eq_ignore_ascii_case("WHERE"))
                    .cloned()
                    .collect();
                self.indexes.insert(name.clone(), (table.clone(), columns));
            }
            (Some("DROP"), Some("INDEX")) => {
                let i = skip_if_not_exists(2);
                if let Some(name) = w.get(i) {
                    self.indexes.remove(name);
                }
            }
            (Some("DROP"), Some("TRIGGER")) => {
                let i = skip_if_not_exists(2);
                if let Some(name) = w.get(i) {
                    self.triggers.remove(name);
                    self.derive_insert_triggers();
                }
            }
            (Some("CREATE"), Some("TABLE")) => {
                let i = skip_if_not_exists(2);
                let Some(table) = w.get(i) else { return };
                let uniques = upper.iter().filter(|u| *u == "UNIQUE").count();
                if uniques > 0 {
                    self.unique_constraints.insert(table.clone(), uniques);
                }
                if upper.iter().any(|u| u == "AUTOINCREMENT") {
                    self.autoincrement.push(table.clone());
                }
            }
            (Some("CREATE"), Some("TRIGGER")) => {
                let (Some(on), Some(_)) = (at("ON"), at("INSERT")) else {
                    return;
                };
                if !upper.iter().any(|u| u == "AFTER") {
                    return;
                }
                let Some(table) = w.get(on + 1) else { return };
                let Some(name) = w.get(skip_if_not_exists(2)) else {
                    return;
                };
                let targets: Vec<String> = upper
                    .iter()
                    .enumerate()
                    .skip(on + 2)
                    .filter(|(_, u)| *u == "INTO")
                    .filter_map(|(i, _)| w.get(i + 1).cloned())
                    .collect();
                // IF NOT EXISTS: an existing trigger of that name stays as it is.
                self.triggers
                    .entry(name.clone())
                    .or_insert((table.clone(), targets));
                self.derive_insert_triggers();
            }
            _ => {}
        }
    }

    fn derive_insert_triggers(&mut self) {
        self.insert_triggers.clear();
        for (table, targets) in self.triggers.values() {
            self.insert_triggers
                .entry(table.clone())
                .or_default()
                .extend(targets.iter().cloned());
        }
    }

    /// Index writes one inserted (or deleted) row of `table` costs.
    pub fn indexes_on(&self, table: &str) -> u64 {
        let explicit = self.indexes.values().filter(|(t, _)| t == table).count();
        let unique = self.unique_constraints.get(table).copied().unwrap_or(0);
        (explicit + unique) as u64
    }

    /// Index writes one updated row costs when `column` changes.
    pub fn indexes_with(&self, table: &str, column: &str) -> u64 {
        self.indexes
            .values()
            .filter(|(t, cols)| t == table && cols.iter().any(|c| c == column))
            .count() as u64
    }

    /// Rows written by inserting one row into `table`: the row, its indexes, and what its
    /// triggers write (each trigger's upsert writes one row plus that table's indexes).
    pub fn insert_cost(&self, table: &str) -> u64 {
        let mut cost = 1 + self.indexes_on(table);
        if self.autoincrement.iter().any(|t| t == table) {
            cost += 1;
        }
        for target in self.insert_triggers.get(table).into_iter().flatten() {
            cost += 1 + self.indexes_on(target);
        }
        cost
    }
}

/// Every `migrations/*.sql` of the repository, in name order: its path and its text.
pub fn repository_migrations() -> std::io::Result<Vec<(PathBuf, String)>> {
    let dir = e2e_tests::repo_root().join("migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read_to_string(&p).map(|text| (p, text)))
        .collect()
}

impl Schema {
    /// The schema of migrations read by [`repository_migrations`].
    pub fn from_files(migrations: &[(PathBuf, String)]) -> Schema {
        Schema::from_migrations(migrations.iter().map(|(_, text)| text.as_str()))
    }
}

/// The schema of the repository's migrations (empty when they cannot be read).
pub fn repository_schema() -> Schema {
    Schema::from_files(&repository_migrations().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, a INTEGER, b TEXT) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS t_by_a ON t (a, b);
        CREATE INDEX IF NOT EXISTS t_by_b ON t (b);
        CREATE TABLE g (k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
        CREATE INDEX g_by_n ON g (n);
        CREATE TRIGGER IF NOT EXISTS t_group AFTER INSERT ON t
        BEGIN
            INSERT INTO g (k, n) VALUES (NEW.k, 1) ON CONFLICT (k) DO UPDATE SET n = n + 1;
        END;
        CREATE TABLE r (id INTEGER PRIMARY KEY AUTOINCREMENT, q TEXT, m TEXT, UNIQUE (q, m));
    ";

    #[test]
    fn inserts_count_the_row_its_indexes_and_its_triggers() {
        let schema = Schema::from_migrations([SCHEMA]);
        assert_eq!(schema.insert_cost("t"), 1 + 2 + (1 + 1));
        assert_eq!(
            schema.insert_cost("r"),
            1 + 1 + 1,
            "unique index and sqlite_sequence"
        );
        assert_eq!(schema.indexes_with("t", "b"), 2);
        assert_eq!(schema.indexes_with("t", "k"), 0);
    }

    #[test]
    fn a_dropped_index_costs_nothing() {
        let schema = Schema::from_migrations([SCHEMA, "DROP INDEX IF EXISTS t_by_b;"]);
        assert_eq!(schema.insert_cost("t"), 1 + 1 + 2);
    }

    #[test]
    fn a_dropped_and_recreated_trigger_counts_once() {
        let trigger = "CREATE TRIGGER IF NOT EXISTS t_group AFTER INSERT ON t BEGIN \
                       INSERT INTO g (n) VALUES (NEW.b) ON CONFLICT (n) DO UPDATE SET c = c + 1; END;";
        let once = Schema::from_migrations([SCHEMA]);
        let again = Schema::from_migrations([
            SCHEMA,
            &format!("DROP TRIGGER IF EXISTS t_group;\n{trigger}"),
        ]);
        assert_eq!(again.insert_cost("t"), once.insert_cost("t"));
        let dropped = Schema::from_migrations([SCHEMA, "DROP TRIGGER IF EXISTS t_group;"]);
        assert!(dropped.insert_cost("t") < once.insert_cost("t"));
    }

    #[test]
    fn the_repository_schema_parses() {
        let schema = repository_schema();
        assert!(schema.insert_cost("error_events") >= 3, "{schema:?}");
        assert!(schema.insert_triggers.contains_key("error_events"));
    }
}
