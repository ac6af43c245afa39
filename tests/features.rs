//! What the example transforms must return for a window's events,
//! computed directly from the input JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

fn str_field<'a>(event: &'a Value, name: &str) -> &'a str {
    event.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// The most items `session-features` lists (its `MAX_ITEMS`).
pub const SESSION_MAX_ITEMS: usize = 100;

/// `session-features`: seed 000's items clicked in the window; the list
/// holds the last [`SESSION_MAX_ITEMS`] (events are in event-time order).
pub fn session_features(events: &[&Value]) -> Map<String, Value> {
    let items: Vec<&str> = events.iter().map(|e| str_field(e, "item_id")).collect();
    let listed = &items[items.len().saturating_sub(SESSION_MAX_ITEMS)..];
    let categories: Vec<&str> = events.iter().map(|e| str_field(e, "category")).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &categories {
        *counts.entry(c).or_default() += 1;
    }
    // Most frequent; ties to the smallest (BTreeMap iterates in order and
    // max_by_key keeps the last maximum, so reverse first).
    let top = counts.iter().rev().max_by_key(|(_, n)| **n).map(|(c, _)| c.to_string());
    let mut m = Map::new();
    m.insert("items_clicked_30m".into(), json!(listed));
    m.insert("item_count_30m".into(), json!(items.len()));
    m.insert("distinct_items_30m".into(), json!(items.iter().collect::<BTreeSet<_>>().len()));
    m.insert("distinct_categories_30m".into(), json!(counts.len()));
    m.insert("top_category_30m".into(), json!(top));
    m
}

/// `tx-velocity`: count, sum and distinct merchants.
pub fn tx_velocity(events: &[&Value]) -> Map<String, Value> {
    let sum: f64 = events.iter().filter_map(|e| e.get("amount").and_then(Value::as_f64)).sum();
    let merchants: BTreeSet<&str> = events.iter().map(|e| str_field(e, "merchant_id")).collect();
    let mut m = Map::new();
    m.insert("tx_count".into(), json!(events.len()));
    m.insert("tx_sum".into(), json!(sum));
    m.insert("distinct_merchants".into(), json!(merchants.len()));
    m
}

/// `user-session`: clicks in the session and its duration in whole
/// seconds. `times` are the events' times in milliseconds.
pub fn user_session(times: &[i64]) -> Map<String, Value> {
    let first = times.iter().min().copied().unwrap_or(0);
    let last = times.iter().max().copied().unwrap_or(0);
    let mut m = Map::new();
    m.insert("clicks_in_session".into(), json!(times.len()));
    m.insert("session_duration_s".into(), json!((last - first) / 1000));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_features_by_hand() {
        let events = [
            json!({"item_id": "i1", "category": "b"}),
            json!({"item_id": "i2", "category": "a"}),
            json!({"item_id": "i1", "category": "b"}),
            json!({"item_id": "i3", "category": "a"}),
        ];
        let refs: Vec<&Value> = events.iter().collect();
        let f = session_features(&refs);
        assert_eq!(f["items_clicked_30m"], json!(["i1", "i2", "i1", "i3"]));
        assert_eq!(f["item_count_30m"], json!(4));
        assert_eq!(f["distinct_items_30m"], json!(3));
        assert_eq!(f["distinct_categories_30m"], json!(2));
        // a and b both twice: the smaller wins.
        assert_eq!(f["top_category_30m"], json!("a"));
    }

    #[test]
    fn the_item_list_keeps_the_most_recent_hundred() {
        let events: Vec<Value> = (0..250).map(|i| json!({"item_id": format!("i{i}"), "category": "c"})).collect();
        let refs: Vec<&Value> = events.iter().collect();
        let f = session_features(&refs);
        let listed: Vec<String> = (150..250).map(|i| format!("i{i}")).collect();
        assert_eq!(f["items_clicked_30m"], json!(listed));
        assert_eq!(f["item_count_30m"], json!(250));
        assert_eq!(f["distinct_items_30m"], json!(250));
    }

    #[test]
    fn tx_velocity_and_sessions_by_hand() {
        let events = [json!({"amount": 10.5, "merchant_id": "m1"}), json!({"amount": 2, "merchant_id": "m1"})];
        let refs: Vec<&Value> = events.iter().collect();
        let f = tx_velocity(&refs);
        assert_eq!(
            (f["tx_count"].clone(), f["tx_sum"].clone(), f["distinct_merchants"].clone()),
            (json!(2), json!(12.5), json!(1))
        );
        let s = user_session(&[1_000, 61_999, 30_000]);
        assert_eq!((s["clicks_in_session"].clone(), s["session_duration_s"].clone()), (json!(3), json!(60)));
    }
}
