//! Tables as data: every table of every page, for its CSV export (`?format=csv&table=<name>`),
//! and the HTML of the owner-analytics pages, so a page and its CSV show the same numbers.
//!
//! CSV follows RFC 4180: fields separated by `,`, records by CRLF, a field with `,`, `"`, CR or
//! LF is quoted with its `"` doubled. A text field that a spreadsheet would run as a formula
//! (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`: stored names and messages
//! come from users. Numbers are plain (no thousands separators), ratios are fractions (0.25),
//! times are `YYYY-MM-DD HH:MM:SS` UTC, days `YYYY-MM-DD`.

use crate::html::{count, decimal, duration, escape, percent};
use crate::model::Section;
use crate::timefmt::{display, sql_datetime};

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text (escaped in HTML, guarded against formulas in CSV).
    Text(String),
    /// A count: `1,234` on the page, `1234` in CSV.
    Count(u64),
    /// A number: one decimal on the page; `None`: unknown.
    Number(Option<f64>),
    /// A ratio: `25.0 %` on the page, `0.25` in CSV; `None`: undefined.
    Ratio(Option<f64>),
    /// A duration in ms.
    Ms(Option<f64>),
    /// An instant, ms since the epoch.
    Time(i64),
    /// A UTC day, given by its start in ms.
    Day(i64),
    /// A ratio shown as a shaded cell (retention); `None`: not reached yet (blank).
    Heat(Option<f64>),
}

impl Cell {
    /// Its CSV field (before quoting).
    pub fn csv(&self) -> String {
        let number = |v: &Option<f64>| {
            v.filter(|x| x.is_finite())
                .map(|x| {
                    if x.fract() == 0.0 && x.abs() < 9.0e15 {
                        format!("{}", x as i64)
                    } else {
                        format!("{x}")
                    }
                })
                .unwrap_or_default()
        };
        match self {
            Cell::Text(t) => guard(t),
            Cell::Count(n) => n.to_string(),
            Cell::Number(v) | Cell::Ms(v) => number(v),
            Cell::Ratio(v) | Cell::Heat(v) => v
                .filter(|x| x.is_finite())
                .map(|x| format!("{:.4}", x))
                .unwrap_or_default(),
            Cell::Time(ms) => sql_datetime(*ms),
            Cell::Day(ms) => sql_datetime(*ms)[..10].to_string(),
        }
    }

    /// Its HTML `<td>`.
    pub fn html(&self) -> String {
        match self {
            Cell::Text(t) => format!(
                "<td>{}</td>",
                escape(&analytics_core::text::ellipsize(t, 200))
            ),
            Cell::Count(n) => format!("<td class=\"num\">{}</td>", count(*n)),
            Cell::Number(v) => format!("<td class=\"num\">{}</td>", decimal(*v)),
            Cell::Ratio(v) => format!("<td class=\"num\">{}</td>", percent(*v)),
            Cell::Ms(v) => format!("<td class=\"num\">{}</td>", duration(*v)),
            Cell::Time(ms) => format!("<td>{}</td>", display(*ms)),
            Cell::Day(ms) => format!("<td>{}</td>", &sql_datetime(*ms)[..10]),
            Cell::Heat(None) => "<td class=\"num heat\"></td>".into(),
            Cell::Heat(Some(v)) => {
                let shade = (v.clamp(0.0, 1.0) * 10.0).round() as u8;
                format!("<td class=\"num heat h{shade}\">{}</td>", percent(Some(*v)))
            }
        }
    }
}

/// A spreadsheet would run text starting with these as a formula.
fn guard(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// One CSV field, quoted when it must be (RFC 4180).
pub fn quote(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// A table of a page: its name (the `table` parameter), its column headers and its rows (or
/// why its query failed).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The `table` parameter that exports it.
    pub name: &'static str,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Section<Vec<Vec<Cell>>>,
}

impl Table {
    /// A table from static headers.
    pub fn new(name: &'static str, columns: &[&str], rows: Section<Vec<Vec<Cell>>>) -> Table {
        Table {
            name,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        }
    }

    /// Its CSV: a header record, then a record per row, each ending in CRLF; `Err` when its
    /// query failed.
    pub fn csv(&self) -> Result<String, String> {
        let rows = self.rows.as_ref().map_err(Clone::clone)?;
        let mut out = String::new();
        let record = |fields: Vec<String>| {
            let quoted: Vec<String> = fields.iter().map(|f| quote(f)).collect();
            format!("{}\r\n", quoted.join(","))
        };
        out.push_str(&record(self.columns.iter().map(|c| guard(c)).collect()));
        for row in rows {
            out.push_str(&record(row.iter().map(Cell::csv).collect()));
        }
        Ok(out)
    }

    /// Its HTML table (the caller handles a failed query and an empty table).
    pub fn html(&self, rows: &[Vec<Cell>]) -> String {
        let mut out = format!(
            "<table class=\"data\" id=\"table-{}\"><thead><tr>",
            self.name
        );
        let numeric: Vec<bool> = match rows.first() {
            Some(first) => first
                .iter()
                .map(|c| !matches!(c, Cell::Text(_) | Cell::Time(_) | Cell::Day(_)))
                .collect(),
            None => vec![false; self.columns.len()],
        };
        for (i, column) in self.columns.iter().enumerate() {
            let class = if numeric.get(i).copied().unwrap_or(false) {
                " class=\"num\""
            } else {
                ""
            };
            out.push_str(&format!("<th{class}>{}</th>", escape(column)));
        }
        out.push_str("</tr></thead><tbody>");
        for row in rows {
            out.push_str("<tr>");
            for cell in row {
                out.push_str(&cell.html());
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote(""), "");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
        assert_eq!(quote("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(quote("ünï ✓"), "ünï ✓");
    }

    #[test]
    fn a_table_becomes_csv_with_formulas_defused() {
        let table = Table::new(
            "t",
            &["name", "users", "share", "day", "at"],
            Ok(vec![
                vec![
                    Cell::Text("=HYPERLINK(\"x\")".into()),
                    Cell::Count(1234),
                    Cell::Ratio(Some(0.25)),
                    Cell::Day(1_764_000_000_000),
                    Cell::Time(1_764_000_000_000),
                ],
                vec![
                    Cell::Text("a, \"b\"".into()),
                    Cell::Count(0),
                    Cell::Ratio(None),
                    Cell::Day(0),
                    Cell::Time(0),
                ],
            ]),
        );
        assert_eq!(
            table.csv().unwrap(),
            "name,users,share,day,at\r\n\
             \"'=HYPERLINK(\"\"x\"\")\",1234,0.2500,2025-11-24,2025-11-24 16:00:00\r\n\
             \"a, \"\"b\"\"\",0,,1970-01-01,1970-01-01 00:00:00\r\n"
        );
        let failed = Table::new("t", &["x"], Err("boom".into()));
        assert_eq!(failed.csv(), Err("boom".into()));
        assert_eq!(Cell::Number(Some(2.5)).csv(), "2.5");
        assert_eq!(Cell::Number(Some(-3.0)).csv(), "-3");
        assert_eq!(Cell::Text("-1".into()).csv(), "'-1");
    }

    #[test]
    fn cells_render_escaped_and_shaded() {
        assert_eq!(
            Cell::Text("<b>".into()).html(),
            "<td>&lt;b&gt;</td>".to_string()
        );
        assert_eq!(
            Cell::Heat(Some(0.44)).html(),
            "<td class=\"num heat h4\">44.0 %</td>"
        );
        assert_eq!(
            Cell::Heat(Some(1.0)).html(),
            "<td class=\"num heat h10\">100.0 %</td>"
        );
        assert_eq!(Cell::Heat(None).html(), "<td class=\"num heat\"></td>");
        assert_eq!(Cell::Count(12345).html(), "<td class=\"num\">12,345</td>");
    }
}
