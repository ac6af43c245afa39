//! The part of Feast's `feast/types/Value.proto` Sluice writes: a `Value`
//! holds one of these, under Feast's field numbers (an empty `Value` is a
//! null feature). Encoded by prost, as Feast's Python protobuf decodes it.

/// `feast.types.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(oneof = "Val", tags = "2, 4, 5, 7, 12, 14, 15, 17")]
    pub val: Option<Val>,
}

/// `Value.val`, the kinds Sluice's feature types map to (Feast's
/// `string_val`, `int64_val`, … by their tags).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Val {
    #[prost(string, tag = "2")]
    String(String),
    #[prost(int64, tag = "4")]
    Int64(i64),
    #[prost(double, tag = "5")]
    Double(f64),
    #[prost(bool, tag = "7")]
    Bool(bool),
    #[prost(message, tag = "12")]
    StringList(StringList),
    #[prost(message, tag = "14")]
    Int64List(Int64List),
    #[prost(message, tag = "15")]
    DoubleList(DoubleList),
    #[prost(message, tag = "17")]
    BoolList(BoolList),
}

/// `feast.types.StringList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringList {
    #[prost(string, repeated, tag = "1")]
    pub val: Vec<String>,
}

/// `feast.types.Int64List`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64List {
    #[prost(int64, repeated, tag = "1")]
    pub val: Vec<i64>,
}

/// `feast.types.DoubleList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DoubleList {
    #[prost(double, repeated, tag = "1")]
    pub val: Vec<f64>,
}

/// `feast.types.BoolList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BoolList {
    #[prost(bool, repeated, tag = "1")]
    pub val: Vec<bool>,
}

/// Feast's `ValueType` numbers, which its entity key serialization tags
/// each part with.
pub mod value_type {
    pub const STRING: u32 = 2;
    pub const INT64: u32 = 4;
}
