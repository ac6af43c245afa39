//! The table's columns: made from the module's declared features, checked
//! against an existing table, and filled from feature rows as Arrow
//! batches.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, FieldRef, SchemaRef};
use iceberg::spec::{
    ListType, NestedField, PrimitiveType, Schema, SchemaRef as IcebergSchemaRef, Transform, Type, UnboundPartitionSpec,
};
use sluice_sink_api::{EntityKey, FeatureRow, FeatureSchema, FeatureType, FeatureValue, KeyType, Scalar, Trigger};

/// The row's own columns, ahead of the features: name and whether it is a
/// time (microseconds, UTC) or a string.
const FIXED: [(&str, Fixed); 6] = [
    ("key", Fixed::Key),
    ("window_start", Fixed::Time),
    ("window_end", Fixed::Time),
    ("trigger", Fixed::Str),
    ("event_time", Fixed::Time),
    ("computed_at", Fixed::Time),
];

/// The names of the row's own columns, in order: every other column of
/// the table is a feature.
pub fn row_columns() -> impl Iterator<Item = &'static str> {
    FIXED.iter().map(|(name, _)| *name)
}

#[derive(Clone, Copy)]
enum Fixed {
    /// The entity key: a string or a long, as the pipeline types it.
    Key,
    Str,
    Time,
}

/// The column the table is partitioned by (its day).
const PARTITION_SOURCE: &str = "window_end";

pub struct Columns {
    features: Arc<FeatureSchema>,
    /// The schema the features make (ids as a new table gets them).
    wanted: Schema,
    /// The table's schema in Arrow, once bound to a table.
    arrow: Option<SchemaRef>,
}

fn primitive(ty: FeatureType) -> PrimitiveType {
    match ty {
        FeatureType::Bool | FeatureType::Bools => PrimitiveType::Boolean,
        FeatureType::Int | FeatureType::Ints => PrimitiveType::Long,
        FeatureType::Float | FeatureType::Floats => PrimitiveType::Double,
        FeatureType::Str | FeatureType::Strs => PrimitiveType::String,
    }
}

fn is_list(ty: FeatureType) -> bool {
    matches!(ty, FeatureType::Bools | FeatureType::Ints | FeatureType::Floats | FeatureType::Strs)
}

/// Whether two types are the same but for field ids.
fn same_type(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Primitive(a), Type::Primitive(b)) => a == b,
        (Type::List(a), Type::List(b)) => {
            a.element_field.required == b.element_field.required
                && same_type(&a.element_field.field_type, &b.element_field.field_type)
        }
        _ => false,
    }
}

impl Columns {
    /// The columns of `features`; an error names a feature that clashes
    /// with a column of the row's own.
    pub fn new(features: &Arc<FeatureSchema>, key_type: KeyType) -> Result<Columns, String> {
        let mut fields = Vec::new();
        let mut id = 0;
        for (name, fixed) in FIXED {
            id += 1;
            let ty = match fixed {
                Fixed::Key if key_type == KeyType::Int => PrimitiveType::Long,
                Fixed::Key | Fixed::Str => PrimitiveType::String,
                Fixed::Time => PrimitiveType::Timestamptz,
            };
            fields.push(Arc::new(NestedField::required(id, name, Type::Primitive(ty))));
        }
        // List elements are numbered after the columns.
        let mut element_id = (FIXED.len() + features.specs().len()) as i32;
        for spec in features.specs() {
            if FIXED.iter().any(|(n, _)| *n == &*spec.name) {
                return Err(format!(
                    "the module's feature `{}` has the name of one of the row's own columns ({})",
                    spec.name,
                    FIXED.map(|(n, _)| n).join(", ")
                ));
            }
            id += 1;
            let item = Type::Primitive(primitive(spec.ty));
            let ty = if is_list(spec.ty) {
                element_id += 1;
                Type::List(ListType::new(Arc::new(NestedField::optional(element_id, "element", item))))
            } else {
                item
            };
            let field = NestedField::new(id, &*spec.name, ty, !spec.nullable);
            let field = if spec.description.is_empty() { field } else { field.with_doc(&spec.description) };
            fields.push(Arc::new(field));
        }
        let wanted = Schema::builder()
            .with_fields(fields)
            .build()
            .map_err(|e| format!("the features do not make a table schema: {e}"))?;
        Ok(Columns { features: features.clone(), wanted, arrow: None })
    }

    /// The schema of a new table.
    pub fn schema(&self) -> &Schema {
        &self.wanted
    }

    /// By day of `window_end`.
    pub fn partition_spec(&self) -> UnboundPartitionSpec {
        let source = self.wanted.field_by_name(PARTITION_SOURCE).map_or(3, |f| f.id);
        UnboundPartitionSpec::builder()
            .add_partition_field(source, "window_end_day", Transform::Day)
            .map(|b| b.build())
            .unwrap_or_else(|_| UnboundPartitionSpec::builder().build())
    }

    /// Whether an existing table can take the rows: every wanted column
    /// there with its type and nullability; any other column nullable.
    pub fn check(&self, existing: &Schema) -> Result<(), String> {
        for want in self.wanted.as_struct().fields() {
            let Some(have) = existing.field_by_name(&want.name) else {
                return Err(format!(
                    "has no column `{}`, which the module's features make (write to a new table, or add the column)",
                    want.name
                ));
            };
            if !same_type(&have.field_type, &want.field_type) || have.required != want.required {
                let shown =
                    |f: &NestedField| format!("{}{}", f.field_type, if f.required { "" } else { " (optional)" });
                return Err(format!(
                    "has column `{}` as {}, the module's features make it {} \
                     (write to a new table, or declare the feature as the table has it)",
                    want.name,
                    shown(have),
                    shown(want)
                ));
            }
        }
        for have in existing.as_struct().fields() {
            if have.required && self.wanted.field_by_name(&have.name).is_none() {
                return Err(format!(
                    "has a required column `{}` the module's features do not fill (write to a new table, or declare it)",
                    have.name
                ));
            }
        }
        Ok(())
    }

    /// The columns of `features` bound to themselves: rows as Arrow
    /// batches without a table (a training set's scratch files).
    pub fn standalone(features: &Arc<FeatureSchema>, key_type: KeyType) -> Result<Columns, String> {
        let mut columns = Columns::new(features, key_type)?;
        columns.bind(&Arc::new(columns.wanted.clone()))?;
        Ok(columns)
    }

    /// The Arrow schema rows are made in, once bound.
    pub fn arrow_schema(&self) -> Option<&SchemaRef> {
        self.arrow.as_ref()
    }

    /// Fill rows into the columns of `table` (its schema as it is).
    pub fn bind(&mut self, table: &IcebergSchemaRef) -> Result<(), String> {
        let arrow = iceberg::arrow::schema_to_arrow_schema(table).map_err(|e| format!("the table's schema: {e}"))?;
        self.arrow = Some(Arc::new(arrow));
        Ok(())
    }

    /// `rows` as an Arrow batch of the bound table's columns.
    pub fn batch(&self, rows: &[FeatureRow]) -> Result<RecordBatch, String> {
        let Some(arrow) = &self.arrow else {
            return Err("no table bound".to_string());
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(arrow.fields().len());
        for field in arrow.fields() {
            let name = field.name().as_str();
            let column: ArrayRef = match name {
                "key" if field.data_type() == &DataType::Int64 => {
                    // A key that is not an integer makes a null, which the
                    // required column refuses below.
                    let ints = rows.iter().map(|r| match &r.key {
                        EntityKey::Int(i) => Some(*i),
                        EntityKey::Str(text) => text.parse().ok(),
                    });
                    Arc::new(Int64Array::from_iter(ints))
                }
                "key" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.key.text()))),
                "trigger" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| trigger(r.trigger)))),
                "window_start" => time(rows, field, |r| r.window_start),
                "window_end" => time(rows, field, |r| r.window_end),
                "event_time" => time(rows, field, |r| r.event_time),
                "computed_at" => time(rows, field, |r| r.computed_at),
                _ => match self.features.get(name) {
                    Some(spec) => feature(rows, name, spec.ty, field)?,
                    None => arrow_array::new_null_array(field.data_type(), rows.len()),
                },
            };
            columns.push(column);
        }
        RecordBatch::try_new(arrow.clone(), columns).map_err(|e| format!("rows that do not fit the table: {e}"))
    }
}

fn trigger(t: Trigger) -> &'static str {
    match t {
        Trigger::Close => "close",
        Trigger::Event => "event",
        Trigger::Late => "late",
    }
}

/// Milliseconds as the column's microseconds, with its time zone.
fn time(rows: &[FeatureRow], field: &FieldRef, ms: fn(&FeatureRow) -> i64) -> ArrayRef {
    let array = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| ms(r).saturating_mul(1000)));
    match field.data_type() {
        DataType::Timestamp(_, Some(tz)) => Arc::new(array.with_timezone(tz.clone())),
        _ => Arc::new(array),
    }
}

/// A list column's builder, its items typed as the table's.
fn list<B: ArrayBuilder>(items: B, field: &FieldRef) -> ListBuilder<B> {
    match field.data_type() {
        DataType::List(element) => ListBuilder::new(items).with_field(element.clone()),
        _ => ListBuilder::new(items),
    }
}

/// A scalar column: `value` reads a row's value (`None` for another kind).
fn scalars<'a, B, T>(
    values: impl Iterator<Item = Option<&'a FeatureValue>>,
    mut b: B,
    value: fn(&FeatureValue) -> Option<T>,
    wrong: impl Fn(&FeatureValue) -> String,
) -> Result<ArrayRef, String>
where
    B: ArrayBuilder + Extend<Option<T>>,
{
    for v in values {
        let item = match v {
            None => None,
            Some(v) => Some(value(v).ok_or_else(|| wrong(v))?),
        };
        b.extend(std::iter::once(item));
    }
    Ok(b.finish())
}

/// A list column of plain items: `plain` reads a row's list (`None` for
/// another kind), `item` an item of a mixed list (`None` for a null or
/// another kind).
fn lists<'a, B, T: Copy>(
    values: impl Iterator<Item = Option<&'a FeatureValue>>,
    mut b: ListBuilder<B>,
    plain: fn(&FeatureValue) -> Option<&[T]>,
    item: fn(&Scalar) -> Option<T>,
    wrong: impl Fn(&FeatureValue) -> String,
) -> Result<ArrayRef, String>
where
    B: ArrayBuilder + Extend<Option<T>>,
{
    for v in values {
        match v {
            None => b.append_null(),
            Some(FeatureValue::Mixed(xs)) => {
                b.values().extend(xs.iter().map(item));
                b.append(true);
            }
            Some(v) => {
                let xs = plain(v).ok_or_else(|| wrong(v))?;
                b.values().extend(xs.iter().map(|&x| Some(x)));
                b.append(true);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

fn feature(rows: &[FeatureRow], name: &str, ty: FeatureType, field: &FieldRef) -> Result<ArrayRef, String> {
    use FeatureValue as V;
    let values = rows.iter().map(|r| r.features.get(name).filter(|v| !matches!(v, V::Null)));
    let wrong = |v: &FeatureValue| format!("feature `{name}` is declared {} but a row holds {v:?}", ty.name());
    let n = rows.len();
    match ty {
        FeatureType::Bool => scalars(
            values,
            BooleanBuilder::with_capacity(n),
            |v| if let V::Bool(x) = v { Some(*x) } else { None },
            wrong,
        ),
        FeatureType::Int => {
            scalars(values, Int64Builder::with_capacity(n), |v| if let V::Int(x) = v { Some(*x) } else { None }, wrong)
        }
        FeatureType::Float => scalars(
            values,
            Float64Builder::with_capacity(n),
            |v| if let V::Float(x) = v { Some(*x) } else { None },
            wrong,
        ),
        FeatureType::Str => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for v in values {
                match v {
                    None => b.append_null(),
                    Some(V::Str(x)) => b.append_value(x),
                    Some(v) => return Err(wrong(v)),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        FeatureType::Bools => lists(
            values,
            list(BooleanBuilder::new(), field),
            |v| if let V::Bools(xs) = v { Some(xs) } else { None },
            |x| if let Scalar::Bool(x) = x { Some(*x) } else { None },
            wrong,
        ),
        FeatureType::Ints => lists(
            values,
            list(Int64Builder::new(), field),
            |v| if let V::Ints(xs) = v { Some(xs) } else { None },
            |x| if let Scalar::Int(x) = x { Some(*x) } else { None },
            wrong,
        ),
        FeatureType::Floats => lists(
            values,
            list(Float64Builder::new(), field),
            |v| if let V::Floats(xs) = v { Some(xs) } else { None },
            |x| if let Scalar::Float(x) = x { Some(*x) } else { None },
            wrong,
        ),
        FeatureType::Strs => {
            let mut b = list(StringBuilder::new(), field);
            for v in values {
                match v {
                    None => b.append_null(),
                    Some(V::Mixed(xs)) => {
                        b.values().extend(xs.iter().map(|x| if let Scalar::Str(x) = x { Some(x) } else { None }));
                        b.append(true);
                    }
                    Some(v) => {
                        b.values().extend(v.str_items().ok_or_else(|| wrong(v))?.into_iter().map(Some));
                        b.append(true);
                    }
                }
            }
            Ok(Arc::new(b.finish()))
        }
    }
}
