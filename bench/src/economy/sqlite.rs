//! A stand-in for D1 in the simulator: an in-memory SQLite with the repository's migrations,
//! which runs the consumer's real statements and counts the rows written the way D1 bills them:
//! each row a statement inserts, updates or deletes, one more per index the write touches, and
//! the rows its triggers write (with their indexes). SQLite reports the rows a statement changed
//! (`changes`) and, with its triggers, in all (`total_changes`); the indexes and triggers come
//! from the same migrations ([`Schema`]).

use ingest_policy::{SqlValue, Statement};
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::Connection;
use serde_json::{Map, Value};

use super::d1_cost::{repository_migrations, Schema};

/// The database and what it has been billed.
pub struct D1 {
    conn: Connection,
    schema: Schema,
    /// Rows written so far, as D1 bills them.
    pub rows_written: u64,
}

/// Why a statement could not run.
#[derive(Debug)]
pub struct D1Error(pub String);

impl std::fmt::Display for D1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for D1Error {}

fn bind(value: &SqlValue) -> Sql {
    match value {
        SqlValue::Text(t) => Sql::Text(t.clone()),
        SqlValue::Integer(n) => Sql::Integer(*n),
        SqlValue::Real(x) => Sql::Real(*x),
        SqlValue::Blob(b) => Sql::Blob(b.clone()),
        SqlValue::Null => Sql::Null,
    }
}

fn json(value: ValueRef) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::from(n),
        ValueRef::Real(x) => Value::from(x),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).to_string()),
        ValueRef::Blob(b) => Value::from(b.to_vec()),
    }
}

/// The table a statement writes, and for updates the text of its `SET` clause.
fn target(sql: &str) -> (String, Option<String>) {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    let after = |key: &str| {
        upper
            .iter()
            .position(|w| w == key)
            .and_then(|i| words.get(i + 1))
            .map(|w| w.trim_matches(|c| c == '(' || c == ';').to_string())
            .unwrap_or_default()
    };
    match upper.first().map(String::as_str) {
        Some("INSERT") => (after("INTO"), None),
        Some("DELETE") => (after("FROM"), None),
        Some("UPDATE") => {
            let set = sql.to_uppercase().find(" SET ").map(|i| {
                let rest = &sql[i + 5..];
                let end = rest.to_uppercase().find(" WHERE ").unwrap_or(rest.len());
                rest[..end].to_string()
            });
            (words.get(1).map(|w| w.to_string()).unwrap_or_default(), set)
        }
        _ => (String::new(), None),
    }
}

impl D1 {
    /// A fresh database with every migration of the repository applied.
    pub fn new() -> Result<D1, D1Error> {
        let conn = Connection::open_in_memory().map_err(|e| D1Error(e.to_string()))?;
        D1::migrated(conn)
    }

    /// A fresh database in a file (which must not exist yet), in WAL mode, with every migration
    /// applied: what `make scale` times, closer to a database on disk than [`D1::new`].
    pub fn open_file(path: &std::path::Path) -> Result<D1, D1Error> {
        let conn = Connection::open(path).map_err(|e| D1Error(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| D1Error(e.to_string()))?;
        D1::migrated(conn)
    }

    /// Bytes each table holds with its indexes (SQLite's `dbstat`: the pages in use), by
    /// table name, largest first; SQLite's own tables left out.
    pub fn table_bytes(&self) -> Result<Vec<(String, u64)>, D1Error> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name \
                 WHERE m.tbl_name NOT LIKE 'sqlite_%' AND m.tbl_name NOT LIKE 'd1_%' AND m.tbl_name NOT LIKE '_cf_%' \
                 GROUP BY m.tbl_name ORDER BY 2 DESC",
            )
            .map_err(|e| D1Error(e.to_string()))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(|e| D1Error(e.to_string()))?;
        rows.map(|r| {
            r.map(|(t, b)| (t, b.max(0) as u64))
                .map_err(|e| D1Error(e.to_string()))
        })
        .collect()
    }

    fn migrated(conn: Connection) -> Result<D1, D1Error> {
        let migrations = repository_migrations().map_err(|e| D1Error(e.to_string()))?;
        for (file, sql) in &migrations {
            conn.execute_batch(sql)
                .map_err(|e| D1Error(format!("{}: {e}", file.display())))?;
        }
        Ok(D1 {
            conn,
            schema: Schema::from_files(&migrations),
            rows_written: 0,
        })
    }

    /// Rows written by a statement that changed `direct` rows of `table` itself and `total`
    /// rows with its triggers.
    fn bill(schema: &Schema, table: &str, set: Option<&str>, direct: u64, total: u64) -> u64 {
        let per_row = match set {
            // An update writes the indexes that hold a column it sets.
            Some(set) => {
                1 + schema
                    .indexes
                    .values()
                    .filter(|(t, cols)| t == table && cols.iter().any(|c| set.contains(c.as_str())))
                    .count() as u64
            }
            None => 1 + schema.indexes_on(table),
        };
        let triggered = total.saturating_sub(direct);
        let trigger_cost = schema
            .insert_triggers
            .get(table)
            .and_then(|targets| targets.first())
            .map_or(1, |t| 1 + schema.indexes_on(t));
        direct * per_row + triggered * trigger_cost
    }

    /// Runs the statements in one transaction (as D1's `batch()` does) and returns each one's
    /// rows as JSON objects keyed by column, as D1 answers.
    pub fn batch(&mut self, statements: &[Statement]) -> Result<Vec<Vec<Value>>, D1Error> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| D1Error(e.to_string()))?;
        let mut answers = Vec::with_capacity(statements.len());
        let mut billed = 0;
        for statement in statements {
            let before = tx.total_changes();
            let mut stmt = tx
                .prepare_cached(&statement.sql)
                .map_err(|e| D1Error(format!("{e}: {}", statement.sql)))?;
            let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
            let params: Vec<Sql> = statement.params.iter().map(bind).collect();
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(|e| D1Error(format!("{e}: {}", statement.sql)))?;
            let mut answer = Vec::new();
            while let Some(row) = rows.next().map_err(|e| D1Error(e.to_string()))? {
                let mut object = Map::new();
                for (i, name) in names.iter().enumerate() {
                    object.insert(
                        name.clone(),
                        json(row.get_ref(i).map_err(|e| D1Error(e.to_string()))?),
                    );
                }
                answer.push(Value::Object(object));
            }
            drop(rows);
            drop(stmt);
            let (table, set) = target(&statement.sql);
            if !table.is_empty() {
                let direct = tx.changes();
                let total = tx.total_changes() - before;
                billed += Self::bill(&self.schema, &table, set.as_deref(), direct, total);
            }
            answers.push(answer);
        }
        tx.commit().map_err(|e| D1Error(e.to_string()))?;
        self.rows_written += billed;
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest_policy::StatementRole;

    fn write(sql: &str, params: Vec<SqlValue>) -> Statement {
        Statement {
            sql: sql.into(),
            params,
            role: StatementRole::Write,
        }
    }

    #[test]
    fn an_error_event_costs_its_row_its_indexes_and_the_group_upsert() {
        let mut d1 = D1::new().unwrap();
        let insert = "INSERT OR IGNORE INTO error_events (event_id, fingerprint, occurred_at, received_at, kind, message, location, user_id, chat_id, bot, release) VALUES (?,?,?,?,?,?,?,?,?,?,?)";
        let row = |id: &str| {
            vec![
                SqlValue::Text(id.into()),
                SqlValue::Text("fp".into()),
                SqlValue::Integer(1),
                SqlValue::Integer(2),
                SqlValue::Text("k".into()),
                SqlValue::Text("m".into()),
                SqlValue::Null,
                SqlValue::Integer(42),
                SqlValue::Null,
                SqlValue::Text("bot".into()),
                SqlValue::Text("1".into()),
            ]
        };
        d1.batch(&[write(insert, row("e1"))]).unwrap();
        let schema = super::super::d1_cost::repository_schema();
        let one = d1.rows_written;
        assert_eq!(one, schema.insert_cost("error_events"));
        // The same event again is ignored: nothing written.
        d1.batch(&[write(insert, row("e1"))]).unwrap();
        assert_eq!(d1.rows_written, one);
    }

    #[test]
    fn reads_return_rows_and_cost_nothing() {
        let mut d1 = D1::new().unwrap();
        let answer = d1
            .batch(&[Statement {
                sql: "SELECT count(*) AS n FROM error_events".into(),
                params: vec![],
                role: StatementRole::Write,
            }])
            .unwrap();
        assert_eq!(answer[0][0]["n"], 0);
        assert_eq!(d1.rows_written, 0);
    }
}
