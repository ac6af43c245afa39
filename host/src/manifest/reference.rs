//! The manifest reference in Markdown, generated from the config structs'
//! doc comments (through their JSON schema), so the docs cannot drift from
//! the code. The README's reference section is this output.

use serde_json::Value;

use super::Manifest;

/// The reference as Markdown.
pub fn markdown() -> String {
    let schema = schemars::schema_for!(Manifest);
    let root = schema.as_value();
    let mut out = String::new();
    out.push_str("| field | type | default | description |\n|---|---|---|---|\n");
    walk(root, root, "", &mut out);
    out
}

/// The `type` tags of an internally tagged enum's variants, each with its
/// doc comment (one line): the kinds of source or sink a manifest names.
pub fn tags<T: schemars::JsonSchema>() -> Vec<(String, String)> {
    let schema = schemars::schema_for!(T);
    let root = schema.as_value();
    let variants = root.get("oneOf").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    variants
        .iter()
        .filter_map(|v| {
            let v = resolve(root, v);
            let tag = v.get("properties")?.get("type")?.get("const")?.as_str()?;
            let description = v.get("description").and_then(Value::as_str).map(one_line).unwrap_or_default();
            Some((tag.to_string(), description))
        })
        .collect()
}

fn resolve<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => root.get("$defs").and_then(|d| d.get(name)).map_or(v, |d| resolve(root, d)),
        None => v,
    }
}

/// The non-null alternative of an `Option<T>` schema.
fn unwrap_option<'a>(root: &'a Value, v: &'a Value) -> (&'a Value, bool) {
    if let Some(any) = v.get("anyOf").and_then(Value::as_array) {
        let non_null: Vec<&Value> =
            any.iter().filter(|a| a.get("type").and_then(Value::as_str) != Some("null")).collect();
        if non_null.len() == 1 && any.len() == 2 {
            return (resolve(root, non_null[0]), true);
        }
    }
    if let Some(types) = v.get("type").and_then(Value::as_array)
        && types.iter().any(|t| t == "null")
    {
        return (v, true);
    }
    (resolve(root, v), false)
}

fn type_name(root: &Value, v: &Value) -> String {
    let (v, optional) = unwrap_option(root, v);
    let base = if let Some(values) = enum_values(root, v) {
        values.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" \\| ")
    } else if v.get("format").and_then(Value::as_str) == Some("duration") {
        "duration".to_string()
    } else if v.get("properties").is_some() || v.get("oneOf").is_some() {
        "object".to_string()
    } else if let Some(any) = v.get("anyOf").and_then(Value::as_array) {
        // An untagged enum: one of several shapes (`key: user_id` or
        // `key: {from: kafka_key}`).
        any.iter().map(|a| type_name(root, a)).collect::<Vec<_>>().join(" or ")
    } else {
        match v.get("type") {
            Some(Value::String(t)) if t == "array" => {
                let item = v.get("items").map_or("value".to_string(), |i| type_name(root, i));
                format!("list of {item}")
            }
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => {
                ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect::<Vec<_>>().join(" or ")
            }
            _ => "value".to_string(),
        }
    };
    if optional { format!("{base} (optional)") } else { base }
}

/// Values of a string enum, however schemars spelled it.
fn enum_values(root: &Value, v: &Value) -> Option<Vec<String>> {
    if let Some(e) = v.get("enum").and_then(Value::as_array) {
        return Some(e.iter().filter_map(Value::as_str).map(str::to_string).collect());
    }
    let variants = v.get("oneOf").and_then(Value::as_array)?;
    variants
        .iter()
        .map(|x| {
            let x = resolve(root, x);
            x.get("const").and_then(Value::as_str).map(str::to_string).or_else(|| {
                x.get("enum")
                    .and_then(Value::as_array)
                    .and_then(|e| e.first())
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn walk(root: &Value, v: &Value, path: &str, out: &mut String) {
    let v = resolve(root, v);
    if let Some(props) = v.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = v
            .get("required")
            .and_then(Value::as_array)
            .map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
        for (name, prop) in props {
            let full = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            let (inner, _) = unwrap_option(root, prop);
            let description = prop
                .get("description")
                .or_else(|| inner.get("description"))
                .and_then(Value::as_str)
                .map(one_line)
                .unwrap_or_default();
            let default = match prop.get("default") {
                Some(Value::Null) => "none".to_string(),
                Some(Value::Object(_)) => String::new(),
                Some(d) => format!("`{}`", d.to_string().trim_matches('"')),
                None if required.contains(&name.as_str()) => "required".to_string(),
                None => String::new(),
            };
            if name == "type" && inner.get("const").is_some() {
                continue;
            }
            out.push_str(&format!("| `{full}` | {} | {default} | {description} |\n", type_name(root, prop)));
            let item = if inner.get("type").and_then(Value::as_str) == Some("array") {
                inner.get("items").map(|i| (resolve(root, i), format!("{full}[]")))
            } else {
                Some((inner, full.clone()))
            };
            if let Some((node, p)) = item
                && enum_values(root, node).is_none()
            {
                walk(root, node, &p, out);
            }
        }
    }
    // The object shapes of an untagged enum, field by field.
    if let Some(any) = v.get("anyOf").and_then(Value::as_array) {
        for shape in any.iter().map(|a| resolve(root, a)).filter(|a| a.get("properties").is_some()) {
            walk(root, shape, path, out);
        }
    }
    if let Some(variants) = v.get("oneOf").and_then(Value::as_array) {
        if enum_values(root, v).is_some() {
            return;
        }
        for variant in variants {
            let variant = resolve(root, variant);
            let description = variant.get("description").and_then(Value::as_str).map(one_line).unwrap_or_default();
            let props = variant.get("properties").and_then(Value::as_object);
            let tag = props.and_then(|p| p.get("type")).and_then(|t| t.get("const")).and_then(Value::as_str);
            if let Some(tag) = tag {
                out.push_str(&format!("| `{path}.type: {tag}` | | | {description} |\n"));
                walk(root, variant, path, out);
                continue;
            }
            // Externally tagged: a plain value, or an object of one key.
            let plain = variant.get("const").or_else(|| variant.get("enum").and_then(|e| e.get(0)));
            let row = match (plain.and_then(Value::as_str), props.filter(|p| p.len() == 1)) {
                (Some(value), _) => format!("| `{path}: {value}` | | | {description} |\n"),
                (None, Some(props)) => {
                    let Some((key, inner)) = props.iter().next() else { continue };
                    let about = inner.get("description").and_then(Value::as_str).map(one_line).unwrap_or_default();
                    let ty = type_name(root, inner);
                    format!("| `{path}: {{{key}: …}}` | {ty} | | {description} {about} |\n")
                }
                (None, None) => format!("| `{path}` | value | | {description} |\n"),
            };
            out.push_str(&row);
        }
    }
}
