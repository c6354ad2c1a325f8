//! docs/privacy.md lists every field stored anywhere: this test fails when a column appears in
//! the Analytics Engine column map or in a migration without a row there.

use std::path::Path;

use analytics_core::datapoint::{BLOBS, DOUBLES};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the repository")
}

fn strip_comments(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `table.column` for every column the migrations create or add, in order.
fn migration_columns() -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join("migrations"))
        .expect("migrations/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut columns = Vec::new();
    for file in files {
        let sql = strip_comments(&std::fs::read_to_string(&file).unwrap());
        for statement in sql.split(';') {
            let words: Vec<&str> = statement.split_whitespace().collect();
            let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
            if upper.len() > 2 && upper[0] == "CREATE" && upper[1] == "TABLE" {
                let name_at = if upper.get(2).map(String::as_str) == Some("IF") {
                    5
                } else {
                    2
                };
                let table = words[name_at].trim_end_matches('(');
                let Some(open) = statement.find('(') else {
                    continue;
                };
                let Some(close) = statement.rfind(')') else {
                    continue;
                };
                let mut depth = 0;
                let mut current = String::new();
                let mut defs = Vec::new();
                for c in statement[open + 1..close].chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        ',' if depth == 0 => {
                            defs.push(std::mem::take(&mut current));
                            continue;
                        }
                        _ => {}
                    }
                    current.push(c);
                }
                defs.push(current);
                for def in defs {
                    let Some(first) = def.split_whitespace().next() else {
                        continue;
                    };
                    let keyword = ["PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "CONSTRAINT"]
                        .contains(&first.to_uppercase().as_str());
                    if !keyword {
                        columns.push(format!("{table}.{first}"));
                    }
                }
            }
            if upper.len() > 5 && upper[0] == "ALTER" && upper[3] == "ADD" {
                let column_at = if upper[4] == "COLUMN" { 5 } else { 4 };
                columns.push(format!("{}.{}", words[2], words[column_at]));
            }
        }
    }
    columns
}

#[test]
fn every_stored_field_has_a_row_in_docs_privacy_md() {
    let doc = std::fs::read_to_string(repo().join("docs/privacy.md")).expect("docs/privacy.md");
    let row = |field: &str| {
        doc.lines()
            .any(|l| l.starts_with(&format!("| `{field}` |")))
    };
    let mut missing = Vec::new();
    let mut ae = vec!["index1".to_string()];
    ae.extend((1..=BLOBS.len()).map(|i| format!("blob{i}")));
    ae.extend((1..=DOUBLES.len()).map(|i| format!("double{i}")));
    for column in ae {
        if !row(&column) {
            missing.push(column);
        }
    }
    let columns = migration_columns();
    assert!(columns.len() > 40, "the migrations parse: {columns:?}");
    for column in columns {
        // The local mirror repeats the Analytics Engine columns; one row covers it.
        let covered =
            column.starts_with("analytics_points_local.") && row("analytics_points_local.*");
        if !covered && !row(&column) {
            missing.push(column);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/privacy.md lacks a row for: {missing:?}"
    );
}

#[test]
fn the_guard_sees_a_new_column() {
    // The parser finds columns added by ALTER TABLE, so a new one cannot slip past.
    let columns = migration_columns();
    assert!(columns.contains(&"processed_envelopes.dropped_cancelled".to_string()));
    assert!(columns.contains(&"error_events.user_id".to_string()));
    assert!(!columns
        .iter()
        .any(|c| c.ends_with(".UNIQUE") || c.ends_with(".PRIMARY")));
}
