//! A writer schema resolved against the declared fields, once per schema:
//! which of the writer's values are wanted and where they go, and how to
//! step over the rest.
//!
//! This is Avro's schema resolution with the manifest as the reader
//! schema: fields are matched by name (a declared field may be a dotted
//! path into nested records), a field the writer lacks is absent (null if
//! optional; a required one makes the writer schema unreadable), a field
//! the reader does not declare is skipped, and the writer's type must
//! promote to the declared one (int → long → float → double, string ↔
//! bytes). Reading a datum then follows the plan in the writer's order,
//! borrowing strings from the record.
//!
//! Why not `apache_avro::from_avro_datum`: it builds every value of the
//! record, field names included, as owned `Value`s and resolves them in a
//! second pass; the pipeline wants a few scalars of each record, with no
//! allocation (the JSON decoder skips what it does not want the same way).
//! The crate parses the schemas and is the reference the tests check this
//! reading against.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use apache_avro::Schema;
use apache_avro::schema::Name;

use super::datum::{Broken, Cursor};
use crate::decode::{FieldType, Found, Scalar};

/// Where a wanted value goes in [`Found`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Key,
    Timestamp,
    Field(usize),
}

/// What the reader declared at a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// The event's key: a string or an integer.
    Key,
    /// The event's time, in the manifest's format or a logical type.
    Timestamp,
    Field {
        ty: FieldType,
        required: bool,
    },
}

impl Expect {
    fn required(self) -> bool {
        match self {
            Expect::Key | Expect::Timestamp => true,
            Expect::Field { required, .. } => required,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Expect::Key => "the key (a string or an integer)",
            Expect::Timestamp => "the timestamp",
            Expect::Field { ty: FieldType::String, .. } => "a string",
            Expect::Field { ty: FieldType::Int, .. } => "an int",
            Expect::Field { ty: FieldType::Float, .. } => "a float",
            Expect::Field { ty: FieldType::Bool, .. } => "a bool",
        }
    }
}

/// The values the reader wants, as a tree of field names.
#[derive(Debug, Default)]
pub(super) struct Wanted {
    here: Option<(Slot, Expect)>,
    below: BTreeMap<String, Wanted>,
}

impl Wanted {
    /// Want the whole value (a Kafka key) in `slot`.
    pub fn whole(slot: Slot, expect: Expect) -> Wanted {
        Wanted { here: Some((slot, expect)), below: BTreeMap::new() }
    }

    /// Want the value at `path` (dotted for nested records) in `slot`.
    pub fn add(&mut self, path: &str, slot: Slot, expect: Expect) {
        let mut at = self;
        for part in path.split('.') {
            at = at.below.entry(part.to_string()).or_default();
        }
        at.here = Some((slot, expect));
    }

    /// Every slot at or under this node, with what it expects.
    fn slots(&self, into: &mut Vec<(Slot, Expect)>) {
        into.extend(self.here);
        for w in self.below.values() {
            w.slots(into);
        }
    }
}

/// A primitive as the writer wrote it.
#[derive(Debug, Clone, PartialEq)]
enum Leaf {
    Null,
    Boolean,
    /// `int` and `long` (one encoding), and the logical types on them
    /// that are not timestamps.
    Long,
    /// A `long` timestamp: how many of its units make a millisecond,
    /// as a divisor (1, 1000, 1 000 000).
    Timestamp(i64),
    Float,
    Double,
    /// `string`, `bytes`, and a `uuid` (which the crate reads as text).
    Text,
    Enum(Vec<String>),
}

/// What reading does with one value of the writer's schema.
#[derive(Debug, Clone)]
enum Node {
    /// A wanted value: into its slot.
    Take(Slot, Leaf),
    /// A record on the way to wanted values: its fields in the writer's
    /// order.
    Record(Vec<Node>),
    /// A union: the branch the datum names.
    Union(Vec<Node>),
    /// A null where a record on the way to wanted values could be: the
    /// values under it are null.
    Nulls(Vec<Slot>),
    /// A value nobody wants.
    Skip(Shape),
}

/// The layout of a value, to step over it.
#[derive(Debug, Clone)]
enum Shape {
    Nothing,
    Boolean,
    Long,
    Float,
    Double,
    Bytes,
    Fixed(usize),
    Array(Box<Shape>),
    Map(Box<Shape>),
    Union(Vec<Shape>),
    Record(Vec<Shape>),
    /// A named type, by its index in [`Plan::named`] (so a recursive type
    /// is a finite plan).
    Named(usize),
}

/// The way to read the datums of one writer schema.
#[derive(Debug)]
pub(super) struct Plan {
    root: Node,
    /// The shapes of named types, for [`Shape::Named`].
    named: Vec<Shape>,
    /// How many declared fields [`Found::fields`] has.
    fields: usize,
}

/// Why a writer schema cannot be read as the declared fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(super) struct Mismatch(pub String);

/// What went wrong reading one datum.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ReadError {
    Broken(Broken),
    /// Bytes left after the datum.
    Trailing(usize),
    /// A text value that is not UTF-8 (`bytes` read as a string).
    NotText(Slot),
}

impl From<Broken> for ReadError {
    fn from(b: Broken) -> Self {
        ReadError::Broken(b)
    }
}

/// Writer types may be nested this deep on the way to a wanted value or
/// in a value skipped; deeper is refused (a stack guard, not a limit any
/// real schema meets).
const MAX_DEPTH: usize = 64;

/// Values of a recursive type are followed this deep when stepped over;
/// a deeper datum is refused (a stack guard: a record that holds itself
/// with no union to end it would otherwise never end).
const MAX_SKIP_DEPTH: usize = 256;

impl Plan {
    /// Resolve `writer` (which may name types of the schemas it
    /// references, `named`) against `wanted`; `fields` is the number of
    /// declared fields; `root` names the whole value in messages (empty
    /// for a record's fields by their own names).
    pub fn new(
        writer: &Schema,
        named: &[Schema],
        wanted: &Wanted,
        fields: usize,
        root: &str,
    ) -> Result<Plan, Mismatch> {
        // The referenced schemas first: the crate resolves in order, and a
        // name must be declared before it is used.
        let schemata = named.iter().chain(std::iter::once(writer)).collect::<Vec<_>>();
        let resolved = apache_avro::schema::ResolvedSchema::try_from(schemata)
            .map_err(|e| Mismatch(format!("the writer schema's names do not resolve: {e}")))?;
        let mut compiler = Compiler { names: resolved.get_names(), named: Vec::new(), index: HashMap::new() };
        let root = compiler.node(writer, wanted, root, 0)?;
        Ok(Plan { root, named: compiler.named, fields })
    }

    /// The wanted values of one datum, which must be all of `bytes`.
    pub fn read<'a>(&self, bytes: &'a [u8]) -> Result<Found<'a>, ReadError> {
        let mut found = Found { key: None, timestamp: None, fields: (0..self.fields).map(|_| None).collect() };
        let mut cursor = Cursor::new(bytes);
        self.node(&self.root, &mut cursor, &mut found)?;
        match cursor.rest() {
            0 => Ok(found),
            n => Err(ReadError::Trailing(n)),
        }
    }

    /// The length of the datum `bytes` starts with (which it need not
    /// end with): where the next of a run of datums starts.
    pub fn prefix(&self, bytes: &[u8]) -> Result<usize, ReadError> {
        let mut found = Found { key: None, timestamp: None, fields: (0..self.fields).map(|_| None).collect() };
        let mut cursor = Cursor::new(bytes);
        self.node(&self.root, &mut cursor, &mut found)?;
        Ok(bytes.len() - cursor.rest())
    }

    fn node<'a>(&self, node: &Node, cursor: &mut Cursor<'a>, found: &mut Found<'a>) -> Result<(), ReadError> {
        match node {
            Node::Take(slot, leaf) => {
                let value = leaf_value(leaf, *slot, cursor)?;
                *slot_of(found, *slot) = Some(value);
            }
            Node::Record(fields) => {
                for field in fields {
                    self.node(field, cursor, found)?;
                }
            }
            Node::Union(branches) => {
                let branch = cursor.index("union branch", branches.len())?;
                self.node(&branches[branch], cursor, found)?;
            }
            Node::Nulls(slots) => {
                for slot in slots {
                    *slot_of(found, *slot) = Some(Scalar::Null);
                }
            }
            Node::Skip(shape) => self.skip(shape, cursor, 0)?,
        }
        Ok(())
    }

    fn skip(&self, shape: &Shape, cursor: &mut Cursor<'_>, depth: usize) -> Result<(), Broken> {
        if depth > MAX_SKIP_DEPTH {
            return Err(Broken::TooDeep(MAX_SKIP_DEPTH));
        }
        match shape {
            Shape::Nothing => {}
            Shape::Boolean => {
                cursor.boolean()?;
            }
            Shape::Long => {
                cursor.long()?;
            }
            Shape::Float => {
                cursor.take(4)?;
            }
            Shape::Double => {
                cursor.take(8)?;
            }
            Shape::Bytes => {
                cursor.bytes()?;
            }
            Shape::Fixed(n) => {
                cursor.take(*n)?;
            }
            Shape::Array(item) => {
                let empty = self.empty(item, 0);
                self.blocks(cursor, empty, |plan, c| plan.skip(item, c, depth + 1))?
            }
            // A map's item has its key first: never empty.
            Shape::Map(value) => self.blocks(cursor, false, |plan, c| {
                c.bytes()?;
                plan.skip(value, c, depth + 1)
            })?,
            Shape::Union(branches) => {
                let branch = cursor.index("union branch", branches.len())?;
                self.skip(&branches[branch], cursor, depth + 1)?;
            }
            Shape::Record(fields) => {
                for field in fields {
                    self.skip(field, cursor, depth + 1)?;
                }
            }
            Shape::Named(i) => self.skip(&self.named[*i], cursor, depth + 1)?,
        }
        Ok(())
    }

    /// Whether a value of `shape` is written as no bytes at all (a null,
    /// a record of nulls): an array of them is stepped over by its counts
    /// alone, however many it claims.
    fn empty(&self, shape: &Shape, depth: usize) -> bool {
        match shape {
            Shape::Nothing | Shape::Fixed(0) => true,
            Shape::Record(fields) => depth < MAX_DEPTH && fields.iter().all(|f| self.empty(f, depth + 1)),
            Shape::Named(i) => depth < MAX_DEPTH && self.empty(&self.named[*i], depth + 1),
            _ => false,
        }
    }

    /// Step over an array's or a map's blocks, by their byte size when the
    /// writer gave it; `empty`: its items take no bytes.
    fn blocks(
        &self,
        cursor: &mut Cursor<'_>,
        empty: bool,
        item: impl Fn(&Plan, &mut Cursor<'_>) -> Result<(), Broken>,
    ) -> Result<(), Broken> {
        loop {
            match cursor.block()? {
                (0, _) => return Ok(()),
                (_, Some(size)) => {
                    cursor.take(size)?;
                }
                (_, None) if empty => {}
                // Each item takes a byte at least: a count past the bytes
                // left is a lie, refused before it is counted out.
                (count, None) if count > cursor.rest() => return Err(Broken::TooManyItems(count)),
                (count, None) => {
                    for _ in 0..count {
                        item(self, cursor)?;
                    }
                }
            }
        }
    }
}

fn slot_of<'f, 'a>(found: &'f mut Found<'a>, slot: Slot) -> &'f mut Option<Scalar<'a>> {
    match slot {
        Slot::Key => &mut found.key,
        Slot::Timestamp => &mut found.timestamp,
        Slot::Field(i) => &mut found.fields[i],
    }
}

fn leaf_value<'a>(leaf: &Leaf, slot: Slot, cursor: &mut Cursor<'a>) -> Result<Scalar<'a>, ReadError> {
    Ok(match leaf {
        Leaf::Null => Scalar::Null,
        Leaf::Boolean => Scalar::Bool(cursor.boolean()?),
        Leaf::Long => Scalar::Int(cursor.long()?),
        // The event's time from a timestamp type, whatever the manifest's
        // format says; as any other field, the writer's number.
        Leaf::Timestamp(per_ms) if slot == Slot::Timestamp => Scalar::Millis(cursor.long()?.div_euclid(*per_ms)),
        Leaf::Timestamp(_) => Scalar::Int(cursor.long()?),
        Leaf::Float => Scalar::Float(f64::from(cursor.float()?)),
        Leaf::Double => Scalar::Float(cursor.double()?),
        Leaf::Text => {
            let bytes = cursor.bytes()?;
            Scalar::Str(Cow::Borrowed(std::str::from_utf8(bytes).map_err(|_| ReadError::NotText(slot))?))
        }
        Leaf::Enum(symbols) => Scalar::Str(Cow::Owned(symbols[cursor.index("enum symbol", symbols.len())?].clone())),
    })
}

struct Compiler<'s> {
    names: &'s apache_avro::schema::NamesRef<'s>,
    named: Vec<Shape>,
    index: HashMap<Name, usize>,
}

impl Compiler<'_> {
    /// What to do with a value of `schema` where `wanted` says what is
    /// wanted of it; `at` is its path, for messages.
    fn node(&mut self, schema: &Schema, wanted: &Wanted, at: &str, depth: usize) -> Result<Node, Mismatch> {
        if depth > MAX_DEPTH {
            return Err(Mismatch(format!("`{at}` is nested deeper than {MAX_DEPTH} types")));
        }
        if let Schema::Ref { name } = schema {
            let target = self.names.get(name).ok_or_else(|| Mismatch(format!("no type named `{name}`")))?;
            return self.node(target, wanted, at, depth + 1);
        }
        if wanted.here.is_none() && wanted.below.is_empty() {
            return Ok(Node::Skip(self.shape(schema, depth)?));
        }
        if let Schema::Union(union) = schema {
            let branches = union.variants().iter().map(|v| self.node(v, wanted, at, depth + 1));
            return Ok(Node::Union(branches.collect::<Result<_, _>>()?));
        }
        if let (Schema::Null, None) = (schema, wanted.here) {
            let mut slots = Vec::new();
            wanted.slots(&mut slots);
            return Ok(Node::Nulls(slots.into_iter().map(|(slot, _)| slot).collect()));
        }
        if let Some((slot, expect)) = wanted.here {
            if !wanted.below.is_empty() {
                let first = wanted.below.keys().next().map(String::as_str).unwrap_or_default();
                return Err(Mismatch(format!("`{at}` is declared as a field and as a record (`{at}.{first}`)")));
            }
            return leaf(schema, expect, at).map(|leaf| Node::Take(slot, leaf));
        }
        let Schema::Record(record) = schema else {
            let path = wanted.below.keys().next().map(String::as_str).unwrap_or_default();
            return Err(Mismatch(format!(
                "`{at}` is {} in the writer schema, not a record with `{path}`",
                kind(schema)
            )));
        };
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let path = if at.is_empty() { field.name.clone() } else { format!("{at}.{}", field.name) };
            let node = match wanted.below.get(&field.name) {
                Some(w) => self.node(&field.schema, w, &path, depth + 1)?,
                None => Node::Skip(self.shape(&field.schema, depth + 1)?),
            };
            fields.push(node);
        }
        for (name, w) in &wanted.below {
            if record.lookup.contains_key(name) {
                continue;
            }
            let mut slots = Vec::new();
            w.slots(&mut slots);
            if slots.iter().any(|(_, expect)| expect.required()) {
                let path = if at.is_empty() { name.clone() } else { format!("{at}.{name}") };
                return Err(Mismatch(format!(
                    "the writer schema has no field `{path}`, which is required (declare it `required: false` to \
                     read records without it as null)"
                )));
            }
        }
        Ok(Node::Record(fields))
    }

    /// How to step over a value of `schema`.
    fn shape(&mut self, schema: &Schema, depth: usize) -> Result<Shape, Mismatch> {
        if depth > MAX_DEPTH {
            return Err(Mismatch(format!("the writer schema nests deeper than {MAX_DEPTH} types")));
        }
        Ok(match schema {
            Schema::Null => Shape::Nothing,
            Schema::Boolean => Shape::Boolean,
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Shape::Long,
            Schema::Float => Shape::Float,
            Schema::Double => Shape::Double,
            Schema::Bytes | Schema::String | Schema::Uuid | Schema::BigDecimal => Shape::Bytes,
            Schema::Fixed(f) => Shape::Fixed(f.size),
            Schema::Duration => Shape::Fixed(12),
            Schema::Decimal(d) => self.shape(&d.inner, depth + 1)?,
            Schema::Enum(_) => Shape::Long,
            Schema::Array(a) => Shape::Array(Box::new(self.shape(&a.items, depth + 1)?)),
            Schema::Map(m) => Shape::Map(Box::new(self.shape(&m.types, depth + 1)?)),
            Schema::Union(u) => {
                Shape::Union(u.variants().iter().map(|v| self.shape(v, depth + 1)).collect::<Result<_, _>>()?)
            }
            Schema::Record(r) => {
                // A named record, as a slot first: a field of its own type
                // refers back to it.
                let i = self.named.len();
                self.index.insert(r.name.clone(), i);
                self.named.push(Shape::Nothing);
                let fields = r.fields.iter().map(|f| self.shape(&f.schema, depth + 1)).collect::<Result<_, _>>()?;
                self.named[i] = Shape::Record(fields);
                Shape::Named(i)
            }
            Schema::Ref { name } => match self.index.get(name) {
                Some(&i) => Shape::Named(i),
                None => {
                    let target = self.names.get(name).ok_or_else(|| Mismatch(format!("no type named `{name}`")))?;
                    self.shape(target, depth + 1)?
                }
            },
        })
    }
}

/// How the writer's `schema` is read as what the reader expects, where
/// Avro's promotions allow it.
fn leaf(schema: &Schema, expect: Expect, at: &str) -> Result<Leaf, Mismatch> {
    use FieldType as T;
    let leaf = match schema {
        Schema::Null => Some(Leaf::Null),
        Schema::Boolean => Some(Leaf::Boolean),
        Schema::Int | Schema::Long | Schema::Date | Schema::TimeMillis | Schema::TimeMicros => Some(Leaf::Long),
        Schema::TimestampMillis | Schema::LocalTimestampMillis => Some(Leaf::Timestamp(1)),
        Schema::TimestampMicros | Schema::LocalTimestampMicros => Some(Leaf::Timestamp(1_000)),
        Schema::TimestampNanos | Schema::LocalTimestampNanos => Some(Leaf::Timestamp(1_000_000)),
        Schema::Float => Some(Leaf::Float),
        Schema::Double => Some(Leaf::Double),
        Schema::String | Schema::Bytes | Schema::Uuid => Some(Leaf::Text),
        Schema::Enum(e) => Some(Leaf::Enum(e.symbols.clone())),
        _ => None,
    };
    let fits = match (&leaf, expect) {
        (None, _) => false,
        (Some(Leaf::Null), _) => true,
        (Some(Leaf::Long | Leaf::Text | Leaf::Enum(_)), Expect::Key) => true,
        (Some(Leaf::Long | Leaf::Timestamp(_) | Leaf::Float | Leaf::Double | Leaf::Text), Expect::Timestamp) => true,
        (Some(Leaf::Text | Leaf::Enum(_)), Expect::Field { ty: T::String, .. }) => true,
        (Some(Leaf::Long | Leaf::Timestamp(_)), Expect::Field { ty: T::Int | T::Float, .. }) => true,
        (Some(Leaf::Float | Leaf::Double), Expect::Field { ty: T::Float, .. }) => true,
        (Some(Leaf::Boolean), Expect::Field { ty: T::Bool, .. }) => true,
        _ => false,
    };
    match leaf {
        Some(leaf) if fits => Ok(leaf),
        _ => Err(Mismatch(format!(
            "`{at}` is {} in the writer schema, which cannot be read as {}",
            kind(schema),
            expect.name()
        ))),
    }
}

/// A writer type as messages name it.
fn kind(schema: &Schema) -> String {
    let name = match schema {
        Schema::Record(r) => return format!("the record `{}`", r.name),
        Schema::Enum(e) => return format!("the enum `{}`", e.name),
        Schema::Fixed(f) => return format!("the fixed `{}`", f.name),
        Schema::Ref { name } => return format!("`{name}`"),
        Schema::Null => "null",
        Schema::Boolean => "boolean",
        Schema::Int => "int",
        Schema::Long => "long",
        Schema::Float => "float",
        Schema::Double => "double",
        Schema::Bytes => "bytes",
        Schema::String => "string",
        Schema::Array(_) => "an array",
        Schema::Map(_) => "a map",
        Schema::Union(_) => "a union",
        Schema::Decimal(_) | Schema::BigDecimal => "decimal",
        Schema::Uuid => "uuid",
        Schema::Date => "date",
        Schema::TimeMillis => "time-millis",
        Schema::TimeMicros => "time-micros",
        Schema::TimestampMillis => "timestamp-millis",
        Schema::TimestampMicros => "timestamp-micros",
        Schema::TimestampNanos => "timestamp-nanos",
        Schema::LocalTimestampMillis => "local-timestamp-millis",
        Schema::LocalTimestampMicros => "local-timestamp-micros",
        Schema::LocalTimestampNanos => "local-timestamp-nanos",
        Schema::Duration => "duration",
    };
    format!("`{name}`")
}
