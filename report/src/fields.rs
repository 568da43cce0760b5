//! The report's raw values for scripts, straight from the generated types' serde (the proto3
//! JSON mapping, `.proto` field names): `--format json` is the `GetReport` reply itself, and
//! `--format csv` has one column per `ReportRow` field in `.proto` order, read from the embedded
//! descriptor set. A field added to `ReportRow` appears in both with no list to update here.

use std::sync::OnceLock;

use cauda_proto::v1::{GetReportResponse, ReportRow};
use prost::Message;
use prost_types::FileDescriptorSet;
use serde_json::Value;

use crate::{Error, Result};

/// The fully qualified message whose fields are the CSV columns.
const ROW_MESSAGE: &str = "ReportRow";

/// `ReportRow`'s field names in `.proto` order: the CSV header.
pub fn csv_fields() -> Result<&'static [String]> {
    static FIELDS: OnceLock<Option<Vec<String>>> = OnceLock::new();
    FIELDS
        .get_or_init(|| {
            let set = FileDescriptorSet::decode(cauda_proto::FILE_DESCRIPTOR_SET).ok()?;
            let row = set
                .file
                .iter()
                .filter(|f| f.package() == "cauda.v1")
                .flat_map(|f| &f.message_type)
                .find(|m| m.name() == ROW_MESSAGE)?;
            Some(row.field.iter().map(|f| f.name().to_string()).collect())
        })
        .as_deref()
        .ok_or(Error::Descriptor(ROW_MESSAGE))
}

/// A value as one CSV cell: empty when absent or null, numbers as Rust prints them (`100`,
/// `0.7123`), text quoted (RFC 4180), a list of texts joined by `; ` and quoted; a grid
/// coordinate (`{key, value}`) in such a list as `key=value`.
fn csv_cell(value: Option<&Value>) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (None, Some(i), _) => i.to_string(),
            (None, None, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        Some(Value::String(s)) => quote(s),
        Some(Value::Array(items)) => {
            let items: Vec<String> = items
                .iter()
                .map(|v| match (v.as_str(), v.get("key"), v.get("value")) {
                    (Some(text), _, _) => text.to_string(),
                    (None, Some(Value::String(key)), Some(Value::String(value))) => {
                        format!("{key}={value}")
                    }
                    _ => v.to_string(),
                })
                .collect();
            quote(&items.join("; "))
        }
        Some(value @ Value::Object(_)) => quote(&value.to_string()),
    }
}

/// One row as CSV cells under `names`.
fn csv_row(row: &ReportRow, names: &[String]) -> Result<Vec<String>> {
    let value = serde_json::to_value(row)?;
    Ok(names.iter().map(|n| csv_cell(value.get(n))).collect())
}

/// CSV: a header line of `ReportRow`'s field names, then one line per row; accuracies are
/// fractions, a value the row lacks is an empty cell.
pub fn csv(report: &GetReportResponse) -> Result<String> {
    let names = csv_fields()?;
    let mut out = format!("{}\n", names.join(","));
    for row in &report.rows {
        out.push_str(&csv_row(row, names)?.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// JSON: the `GetReport` reply pretty-printed in the proto3 JSON mapping (`experiment_id` as a
/// string, a row's absent optional values left out), with a final newline.
pub fn json(report: &GetReportResponse) -> Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(report)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_columns_are_every_report_row_field_in_proto_order() {
        let names = csv_fields().unwrap();
        assert_eq!(names[..3], ["label", "method", "ratio"]);
        // Every key the generated serde writes is a column (formats_test checks a row with every
        // optional value set has exactly the columns as keys).
        let row = ReportRow {
            ratio: Some(1.0),
            ..ReportRow::default()
        };
        let value = serde_json::to_value(&row).unwrap();
        for key in value.as_object().unwrap().keys() {
            assert!(names.contains(key), "{key} is not a CSV column");
        }
    }

    #[test]
    fn absent_values_are_empty_cells_and_lists_are_joined() {
        assert_eq!(csv_cell(None), "");
        assert_eq!(csv_cell(Some(&Value::Null)), "");
        assert_eq!(csv_cell(Some(&serde_json::json!(0.25))), "0.25");
        assert_eq!(csv_cell(Some(&serde_json::json!(3))), "3");
        assert_eq!(csv_cell(Some(&serde_json::json!("a\"b"))), "\"a\"\"b\"");
        assert_eq!(csv_cell(Some(&serde_json::json!(["x", "y"]))), "\"x; y\"");
    }
}
