//! Reading the JSON-lines files a pipeline reads and writes.

use std::path::Path;

use serde_json::Value;

/// Field types, as a manifest declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Number,
}

/// One input line as the host must see it: `None` when the host must
/// reject it (dead-letter output), else key, time (ms) and the JSON.
pub type Parsed = Option<(String, i64, Value)>;

/// Validate a line like the example manifests do: `user_id` key,
/// `timestamp` in seconds (at most a minute in the future), and `fields`.
pub fn parse_line(line: &str, fields: &[(&str, Type)], now_ms: i64) -> Parsed {
    let v: Value = serde_json::from_str(line).ok()?;
    let key = match v.get("user_id")? {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() => n.to_string(),
        _ => return None,
    };
    let ms = (v.get("timestamp")?.as_f64()? * 1000.0).round() as i64;
    if ms > now_ms + 60_000 {
        return None;
    }
    for (name, ty) in fields {
        let ok = matches!(
            (ty, v.get(*name)),
            (Type::String, Some(Value::String(_))) | (Type::Number, Some(Value::Number(_)))
        );
        if !ok {
            return None;
        }
    }
    Some((key, ms, v))
}

/// Parse every non-blank line of a file.
pub fn parse_file(path: &Path, fields: &[(&str, Type)], now_ms: i64) -> std::io::Result<Vec<Parsed>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().filter(|l| !l.trim().is_empty()).map(|l| parse_line(l, fields, now_ms)).collect())
}

/// Every line of an output file, as JSON (a missing file reads as empty).
pub fn read_output(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect()
}
