//! The local Analytics Engine mirror: in local dev `writeDataPoint` discards everything, so the
//! consumer (when `AE_LOCAL_MIRROR` is set) also stores each point in the D1 table
//! `analytics_points_local`, whose columns carry Analytics Engine's SQL names. The same SQL a
//! user runs against the AE SQL API then runs locally.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use analytics_core::datapoint::{DataPoint, BLOBS, DOUBLES};

/// One statement inserting every point of a JSON array bound as `?1`.
pub fn insert_sql() -> String {
    let mut columns = vec![
        "dataset".to_string(),
        "timestamp".into(),
        "_sample_interval".into(),
        "index1".into(),
    ];
    columns.extend((1..=BLOBS.len()).map(|i| format!("blob{i}")));
    columns.extend((1..=DOUBLES.len()).map(|i| format!("double{i}")));
    let values: Vec<String> = (0..columns.len())
        .map(|i| format!("json_extract(value, '$[{i}]')"))
        .collect();
    format!(
        "INSERT INTO analytics_points_local ({}) SELECT {} FROM json_each(?1)",
        columns.join(", "),
        values.join(", ")
    )
}

/// The JSON array of rows for [`insert_sql`]. `written_at` becomes the `timestamp` column, as
/// in Analytics Engine (the time of the write, formatted `YYYY-MM-DD HH:MM:SS`).
pub fn rows_json(dataset: &str, written_at: DateTime<Utc>, points: &[&DataPoint]) -> String {
    let timestamp = written_at.format("%Y-%m-%d %H:%M:%S").to_string();
    let rows: Vec<Value> = points
        .iter()
        .map(|p| {
            let mut row = vec![json!(dataset), json!(timestamp), json!(1), json!(p.index)];
            row.extend(p.blobs.iter().map(|b| json!(b)));
            row.extend(p.doubles.iter().map(|d| json!(d)));
            Value::Array(row)
        })
        .collect();
    Value::Array(rows).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::datapoint::{to_data_point, PointInput};
    use analytics_core::samples;

    #[test]
    fn sql_and_rows_have_the_same_width() {
        let sql = insert_sql();
        let source = samples::source();
        let events = samples::typical_events();
        let point = to_data_point(&PointInput {
            source: &source,
            event: &events[0],
            timestamp_ms: 0,
            skew_ms: 0,
        });
        let json: Value =
            serde_json::from_str(&rows_json("ds", DateTime::UNIX_EPOCH, &[&point, &point]))
                .unwrap();
        let row = json[0].as_array().unwrap();
        assert_eq!(sql.matches("json_extract").count(), row.len());
        assert_eq!(row[1], "1970-01-01 00:00:00");
        assert_eq!(row[3], "5123456789");
        assert!(sql.contains("blob17") && sql.contains("double7"));
    }
}
