//! `layout: feast`: what Feast 0.67's Redis online store reads
//! (`feast/infra/online_stores/redis.py`), so `get_online_features`
//! returns Sluice's features with no ingestion job in between.
//!
//! - The key: the entity key serialized as Feast's
//!   `entity_key_serialization_version` 3 does (a count, then per join key
//!   its `STRING` tag, length and name, then per value its `ValueType`,
//!   length and bytes, all `u32` little-endian; a string key as UTF-8, an
//!   integer as 8 bytes little-endian), then the project's name.
//! - A feature's field: MurmurHash3 (x86, 32-bit, seed 0) of
//!   `{feature_view}:{feature}`, 4 bytes little-endian; its value a
//!   serialized Feast `Value` (an empty one for null, so a feature a row
//!   leaves out does not keep an older row's value).
//! - `_ts:{feature_view}`: a serialized `google.protobuf.Timestamp` of the
//!   row's time: its window's end for a row fired on close or a late
//!   correction (the features hold the window's events up to then; a
//!   sliding window's next row often has the same latest event, and must
//!   replace this one), the event's time for a row fired per event.
//!
//! Feast's write rule guards each row: a row older than the `_ts` stored is
//! not written, in one script, so that no other writer can come between
//! the check and the write. Unlike Feast's own writer, a row of the same
//! time is written: it is a late correction of the window stored, or the
//! same row again after a retry or a replay. The script reads the `_ts`
//! any writer stored, Feast's own included. Several views of one entity
//! share its hash, each with its own fields and `_ts`, so pipelines
//! writing views of one entity never touch each other's; the TTL
//! (`EXPIRE`) covers the whole hash, every view of that entity.

mod proto;

use std::sync::Arc;

use prost::Message;
use sluice_sink_api::{EntityKey, FeatureRow, FeatureSchema, FeatureType, FeatureValue, Scalar, Trigger};

use proto::{Val, value_type};

/// `KEYS`: one hash per row. `ARGV[1]`: the TTL in seconds (0: none);
/// `ARGV[2]`: the `_ts:{view}` field; then per row its time in
/// milliseconds, its `_ts` value, how many field-value pairs follow, and
/// the pairs. A row is written unless the hash's `_ts` is later; a
/// `_ts` is a `google.protobuf.Timestamp` (field 1: seconds, field 2:
/// nanoseconds, varints), read here as Redis's Lua has no protobuf.
const WRITE_UNLESS_NEWER: &str = r"
local function millis(stamp)
  local seconds, nanos, at = 0, 0, 1
  while at <= #stamp do
    local tag = string.byte(stamp, at)
    at = at + 1
    local value, scale = 0, 1
    while true do
      local byte = string.byte(stamp, at)
      if not byte then break end
      at = at + 1
      value = value + (byte % 128) * scale
      scale = scale * 128
      if byte < 128 then break end
    end
    if tag == 8 then seconds = value elseif tag == 16 then nanos = value end
  end
  return seconds * 1000 + math.floor(nanos / 1000000)
end
local ttl = tonumber(ARGV[1])
local at, written = 3, 0
for _, key in ipairs(KEYS) do
  local time, stamp, count = tonumber(ARGV[at]), ARGV[at + 1], tonumber(ARGV[at + 2])
  local first, last = at + 3, at + 2 + 2 * count
  at = last + 1
  local stored = redis.call('HGET', key, ARGV[2])
  if not stored or millis(stored) <= time then
    redis.call('HSET', key, ARGV[2], stamp, unpack(ARGV, first, last))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    written = written + 1
  end
end
return written
";

/// Rows per script call: one call blocks Redis while it runs, so a large
/// batch is cut.
const ROWS_PER_CALL: usize = 256;

/// A hash field (a feature's) and its value: a serialized `Value`.
pub type Field = ([u8; 4], Vec<u8>);

/// A declared feature, with its field in the hash.
#[derive(Debug)]
struct Column {
    name: Arc<str>,
    ty: FeatureType,
    field: [u8; 4],
}

/// A Feast feature view's layout in Redis.
#[derive(Debug)]
pub struct FeastLayout {
    project: String,
    view: String,
    join_key: String,
    /// The serialized entity key before the value's tag: the count and
    /// the join key.
    key_head: Vec<u8>,
    ts_field: String,
    columns: Vec<Column>,
    script: redis::Script,
}

/// Feast's name for a Sluice feature type, as a `feast.types` expression
/// (what a generated `FeatureView`'s schema says).
pub fn feast_type(ty: FeatureType) -> &'static str {
    match ty {
        FeatureType::Bool => "Bool",
        FeatureType::Int => "Int64",
        FeatureType::Float => "Float64",
        FeatureType::Str => "String",
        FeatureType::Bools => "Array(Bool)",
        FeatureType::Ints => "Array(Int64)",
        FeatureType::Floats => "Array(Float64)",
        FeatureType::Strs => "Array(String)",
    }
}

/// The hash field of `feature` in `view`: MurmurHash3 x86 32-bit (seed 0)
/// of `{view}:{feature}`, little-endian, as Feast's `_mmh3`.
pub fn field(view: &str, feature: &str) -> [u8; 4] {
    let text = format!("{view}:{feature}");
    // Reading from a byte slice cannot fail.
    murmur3::murmur3_32(&mut text.as_bytes(), 0).unwrap_or_default().to_le_bytes()
}

/// When a row's features held, in milliseconds: its `_ts`.
pub fn row_time(row: &FeatureRow) -> i64 {
    match row.trigger {
        Trigger::Close | Trigger::Late => row.window_end,
        Trigger::Event => row.event_time,
    }
}

/// A `google.protobuf.Timestamp` of `millis`, serialized.
fn timestamp(millis: i64) -> Vec<u8> {
    let stamp = prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    };
    stamp.encode_to_vec()
}

/// The serialized Feast `Value` of a feature of type `ty`; an error says
/// why Feast cannot hold it.
fn value(ty: FeatureType, feature: Option<&FeatureValue>) -> Result<Vec<u8>, String> {
    use FeatureValue as V;
    // Lists of `Scalar`s (a transform's mixed lists) are taken item by
    // item, as the declared type says.
    fn items<T>(items: &[Scalar], take: fn(&Scalar) -> Option<T>) -> Result<Vec<T>, String> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Scalar::Null => Err(format!("item {i} is null, and a Feast list cannot hold nulls")),
                other => take(other).ok_or_else(|| format!("item {i} is not of the list's type")),
            })
            .collect()
    }
    let val = match (ty, feature.unwrap_or(&V::Null)) {
        (_, V::Null) => None,
        (_, V::Bool(b)) => Some(Val::Bool(*b)),
        (_, V::Int(i)) => Some(Val::Int64(*i)),
        (_, V::Float(f)) => Some(Val::Double(*f)),
        (_, V::Str(s)) => Some(Val::String(s.clone())),
        (_, V::Bools(v)) => Some(Val::BoolList(proto::BoolList { val: v.clone() })),
        (_, V::Ints(v)) => Some(Val::Int64List(proto::Int64List { val: v.clone() })),
        (_, V::Floats(v)) => Some(Val::DoubleList(proto::DoubleList { val: v.clone() })),
        (_, list @ (V::Strs { .. } | V::Coded { .. })) => {
            let strings = list.str_items().ok_or("a string list's text is broken")?;
            Some(Val::StringList(proto::StringList { val: strings.into_iter().map(str::to_string).collect() }))
        }
        (FeatureType::Bools, V::Mixed(list)) => {
            let val = items(list, |s| if let Scalar::Bool(b) = s { Some(*b) } else { None })?;
            Some(Val::BoolList(proto::BoolList { val }))
        }
        (FeatureType::Ints, V::Mixed(list)) => {
            let val = items(list, |s| if let Scalar::Int(i) = s { Some(*i) } else { None })?;
            Some(Val::Int64List(proto::Int64List { val }))
        }
        (FeatureType::Floats, V::Mixed(list)) => {
            let val = items(list, |s| if let Scalar::Float(f) = s { Some(*f) } else { None })?;
            Some(Val::DoubleList(proto::DoubleList { val }))
        }
        (FeatureType::Strs, V::Mixed(list)) => {
            let val = items(list, |s| if let Scalar::Str(text) = s { Some(text.clone()) } else { None })?;
            Some(Val::StringList(proto::StringList { val }))
        }
        (other, V::Mixed(_)) => return Err(format!("a list where a {} was declared", other.name())),
    };
    Ok(proto::Value { val }.encode_to_vec())
}

/// A Feast value as JSON (null for an empty one, and for a kind Sluice
/// does not write).
fn json(val: Option<Val>) -> serde_json::Value {
    use serde_json::Value;
    match val {
        None => Value::Null,
        Some(Val::String(s)) => Value::String(s),
        Some(Val::Int64(i)) => Value::from(i),
        Some(Val::Double(f)) => Value::from(f),
        Some(Val::Bool(b)) => Value::Bool(b),
        Some(Val::StringList(list)) => Value::from(list.val),
        Some(Val::Int64List(list)) => Value::from(list.val),
        Some(Val::DoubleList(list)) => Value::from(list.val),
        Some(Val::BoolList(list)) => Value::from(list.val),
    }
}

impl FeastLayout {
    /// The layout of `view` in `project`, keyed by `join_key`, for rows of
    /// `schema`.
    pub fn new(project: &str, view: &str, join_key: &str, schema: &FeatureSchema) -> FeastLayout {
        let mut key_head = Vec::with_capacity(12 + join_key.len());
        key_head.extend_from_slice(&1u32.to_le_bytes());
        key_head.extend_from_slice(&value_type::STRING.to_le_bytes());
        key_head.extend_from_slice(&(join_key.len() as u32).to_le_bytes());
        key_head.extend_from_slice(join_key.as_bytes());
        let columns = schema
            .specs()
            .iter()
            .map(|spec| Column { name: spec.name.clone(), ty: spec.ty, field: field(view, &spec.name) })
            .collect();
        FeastLayout {
            project: project.to_string(),
            view: view.to_string(),
            join_key: join_key.to_string(),
            key_head,
            ts_field: format!("_ts:{view}"),
            columns,
            script: redis::Script::new(WRITE_UNLESS_NEWER),
        }
    }

    /// The hash key of an entity.
    pub fn key(&self, entity: &EntityKey) -> Vec<u8> {
        let mut key = self.key_head.clone();
        let (tag, bytes): (u32, std::borrow::Cow<'_, [u8]>) = match entity {
            EntityKey::Str(s) => (value_type::STRING, s.as_bytes().into()),
            EntityKey::Int(i) => (value_type::INT64, i.to_le_bytes().to_vec().into()),
        };
        key.extend_from_slice(&tag.to_le_bytes());
        key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        key.extend_from_slice(&bytes);
        key.extend_from_slice(self.project.as_bytes());
        key
    }

    /// The key as a person reads it, for messages.
    pub fn describe(&self, entity: &EntityKey) -> String {
        format!(
            "the Feast key {}={} of view `{}` in project `{}`",
            self.join_key,
            entity.text(),
            self.view,
            self.project
        )
    }

    /// The field-value pairs of a row: every declared feature, a missing
    /// one as null. An error says which feature Feast cannot hold and why.
    pub fn fields(&self, row: &FeatureRow) -> Result<Vec<Field>, String> {
        self.columns
            .iter()
            .map(|c| {
                let value =
                    value(c.ty, row.features.get(&c.name)).map_err(|why| format!("feature `{}`: {why}", c.name))?;
                Ok((c.field, value))
            })
            .collect()
    }

    /// The fields [`FeastLayout::read`] reads, in its order: every
    /// declared feature's, then `_ts`.
    pub fn read_fields(&self) -> Vec<Vec<u8>> {
        let mut fields: Vec<Vec<u8>> = self.columns.iter().map(|c| c.field.to_vec()).collect();
        fields.push(self.ts_field.as_bytes().to_vec());
        fields
    }

    /// What an entity's hash holds of this view, from the values of
    /// [`FeastLayout::read_fields`] (`None` when it holds nothing of it).
    pub fn read(&self, values: &[Option<Vec<u8>>]) -> Option<crate::Stored> {
        if values.iter().all(Option::is_none) {
            return None;
        }
        let features = self
            .columns
            .iter()
            .zip(values)
            .map(|(c, value)| {
                let json = value
                    .as_deref()
                    .and_then(|bytes| proto::Value::decode(bytes).ok())
                    .map_or(serde_json::Value::Null, |v| json(v.val));
                (c.name.to_string(), json)
            })
            .collect();
        let time = values.get(self.columns.len()).and_then(Option::as_deref).and_then(|bytes| {
            let stamp = prost_types::Timestamp::decode(bytes).ok()?;
            Some(stamp.seconds * 1000 + i64::from(stamp.nanos) / 1_000_000)
        });
        Some(crate::Stored { time, features })
    }

    /// Queue the writes of `rows` on `pipe` (each call of the script is a
    /// command of it); the rows Feast cannot hold are returned, each with
    /// why, and not written.
    pub fn queue<'r>(
        &self,
        pipe: &mut redis::Pipeline,
        rows: &'r [FeatureRow],
        ttl_seconds: u64,
    ) -> Vec<(&'r FeatureRow, String)> {
        // Cheap when loaded already, and Redis forgets scripts when it
        // restarts.
        pipe.load_script(&self.script).ignore();
        let mut refused = Vec::new();
        for chunk in rows.chunks(ROWS_PER_CALL) {
            let mut call = self.script.prepare_invoke();
            call.arg(ttl_seconds).arg(&self.ts_field);
            let mut queued = 0;
            for row in chunk {
                let fields = match self.fields(row) {
                    Ok(fields) => fields,
                    Err(why) => {
                        refused.push((row, why));
                        continue;
                    }
                };
                let time = row_time(row);
                call.key(self.key(&row.key));
                call.arg(time).arg(timestamp(time)).arg(fields.len());
                for (field, value) in &fields {
                    call.arg(&field[..]).arg(value);
                }
                queued += 1;
            }
            if queued > 0 {
                pipe.invoke_script(&call).ignore();
            }
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sink_api::{FeatureSpec, Features};

    /// Bytes Feast 0.67 writes, taken from its Python (`_redis_key`,
    /// `_mmh3`, `ValueProto(...).SerializeToString()`).
    #[test]
    fn keys_fields_and_values_are_feast_s_bytes() {
        let schema = FeatureSchema::new(vec![FeatureSpec {
            name: "tx_count".into(),
            ty: FeatureType::Int,
            nullable: false,
            description: String::new(),
        }])
        .unwrap_or_default();
        let layout = FeastLayout::new("shop", "tx_velocity", "user_id", &schema);
        // _redis_key("shop", EntityKey(join_keys=["user_id"], entity_values=[Value(string_val="u1")]))
        let mut want = b"\x01\x00\x00\x00\x02\x00\x00\x00\x07\x00\x00\x00user_id".to_vec();
        want.extend_from_slice(b"\x02\x00\x00\x00\x02\x00\x00\x00u1shop");
        assert_eq!(layout.key(&EntityKey::Str("u1".into())), want);
        let mut want = b"\x01\x00\x00\x00\x02\x00\x00\x00\x07\x00\x00\x00user_id".to_vec();
        want.extend_from_slice(b"\x04\x00\x00\x00\x08\x00\x00\x00\x2a\x00\x00\x00\x00\x00\x00\x00shop");
        assert_eq!(layout.key(&EntityKey::Int(42)), want);
        // mmh3.hash("tx_velocity:tx_count", signed=False) == 928983946
        assert_eq!(field("tx_velocity", "tx_count"), 928_983_946u32.to_le_bytes());
        // ValueProto(int64_list_val=Int64List(val=[1, 2])).SerializeToString()
        assert_eq!(
            value(FeatureType::Ints, Some(&FeatureValue::Ints(vec![1, 2]))),
            Ok(b"r\x04\n\x02\x01\x02".to_vec())
        );
        assert_eq!(value(FeatureType::Str, None), Ok(Vec::new()));
        let mixed = FeatureValue::Mixed(vec![Scalar::Int(1), Scalar::Null]);
        assert!(value(FeatureType::Ints, Some(&mixed)).is_err_and(|why| why.contains("item 1 is null")));
        let row = FeatureRow {
            key: "u1".into(),
            window_start: 0,
            window_end: 60_000,
            event_time: 59_000,
            trigger: Trigger::Close,
            features: Features(Vec::new()),
            computed_at: 0,
        };
        assert_eq!(row_time(&row), 60_000);
        assert_eq!(row_time(&FeatureRow { trigger: Trigger::Event, ..row }), 59_000);
        // Timestamp(seconds=1, nanos=500000000).SerializeToString()
        assert_eq!(timestamp(1_500), b"\x08\x01\x10\x80\xca\xb5\xee\x01".to_vec());
    }
}
