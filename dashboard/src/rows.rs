//! Result rows, whatever store they came from. The SQL API's JSON format quotes 64-bit integers
//! (`"events": "12"`), D1 returns JSON numbers (integers arrive as floats through JavaScript), so
//! every accessor accepts both.

use serde_json::{Map, Value};

/// One result row: column name to value.
pub type Row = Map<String, Value>;

/// The column as a number: a JSON number or a numeric string; `None` when missing, null or not
/// numeric.
pub fn num(row: &Row, column: &str) -> Option<f64> {
    match row.get(column)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
    .filter(|x| x.is_finite())
}

/// The column as a count: [`num`] rounded, 0 when missing or negative.
pub fn count(row: &Row, column: &str) -> u64 {
    num(row, column)
        .map(|x| x.round().max(0.0))
        .map(|x| {
            if x >= u64::MAX as f64 {
                u64::MAX
            } else {
                x as u64
            }
        })
        .unwrap_or(0)
}

/// The column as ms since the epoch: [`num`] as an integer, 0 when missing.
pub fn millis(row: &Row, column: &str) -> i64 {
    num(row, column)
        .filter(|x| x.abs() < 9.0e15)
        .map(|x| x as i64)
        .unwrap_or(0)
}

/// The column as display text: strings as they are, integral numbers without a fraction, null
/// and missing as the empty string.
pub fn text(row: &Row, column: &str) -> String {
    match row.get(column) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(x)) if x.fract() == 0.0 && x.abs() < 9.0e15 => (x as i64).to_string(),
            (None, Some(x)) => x.to_string(),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// Test rows from a JSON array of objects.
#[cfg(test)]
pub(crate) fn rows_from_json(value: Value) -> Vec<Row> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> Row {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn numbers_come_as_numbers_or_strings() {
        let r = row(
            json!({"a": 3, "b": "12", "c": 2.5, "d": null, "e": "x", "f": 5.0, "g": -1, "h": 1e300}),
        );
        assert_eq!(num(&r, "a"), Some(3.0));
        assert_eq!(num(&r, "b"), Some(12.0));
        assert_eq!(num(&r, "c"), Some(2.5));
        assert_eq!(num(&r, "d"), None);
        assert_eq!(num(&r, "e"), None);
        assert_eq!(num(&r, "missing"), None);
        assert_eq!(count(&r, "b"), 12);
        assert_eq!(count(&r, "g"), 0);
        assert_eq!(count(&r, "h"), u64::MAX);
        assert_eq!(millis(&r, "h"), 0);
        assert_eq!(text(&r, "f"), "5");
        assert_eq!(text(&r, "c"), "2.5");
        assert_eq!(text(&r, "d"), "");
        assert_eq!(text(&r, "b"), "12");
        assert_eq!(text(&r, "a"), "3");
    }
}
