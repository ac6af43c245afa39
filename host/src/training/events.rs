//! A view's raw events, decoded as its pipeline decodes them, into a
//! scratch Parquet file the exact mode sorts with the labels.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{BATCH_ROWS, Error, View};
use crate::backfill::{History, read_history};
use crate::decode::{self, FieldType};
use crate::source::{FileSource, KafkaSource, Polled, Source, SourceConfig};

/// Decode the view's raw events into `out` (key, time in milliseconds,
/// number in the order read, the declared fields): how many there were,
/// and how many the pipeline would have dead-lettered.
///
/// A file is read whole. A topic is read from the time the windows ending
/// at `first_ms` (the first label's time) may begin (the backfill's
/// [`History`] rule: a window's size, a day for sessions, and the
/// out-of-orderness before it, by the brokers' offsets for times) to the
/// partitions' ends, in a consumer group of its own; `None` (no label)
/// reads nothing.
pub(super) fn decode(view: &View, out: &Path, first_ms: Option<i64>) -> Result<(u64, u64), Error> {
    let spec = &view.pipeline;
    let failed = |message: String| Error::Table { view: view.name.clone(), message };
    let unreadable_source = |e: crate::source::Error| failed(format!("its events: {e}"));
    let mut source: Option<Box<dyn Source>> = match (&spec.source, first_ms) {
        (SourceConfig::File(file), _) => {
            Some(Box::new(FileSource::open(&file.path, 4_096, spec.max_event_bytes, None).map_err(unreadable_source)?))
        }
        (SourceConfig::Kafka(kafka), Some(first_ms)) => {
            let mut kafka = kafka.clone();
            read_history(&mut kafka, History::before(spec, first_ms, None).read_from_ms, "training");
            Some(Box::new(KafkaSource::open(&kafka, spec.max_event_bytes, None).map_err(unreadable_source)?))
        }
        (SourceConfig::Kafka(_), None) => None,
    };
    let mut decoder = spec.schema.decoder().map_err(|e| failed(format!("its events' decoder: {e}")))?;
    let mut fields = vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("t", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
    ];
    for (name, ty) in spec.fields() {
        let data_type = match ty {
            FieldType::String => DataType::Utf8,
            FieldType::Int => DataType::Int64,
            FieldType::Float => DataType::Float64,
            FieldType::Bool => DataType::Boolean,
        };
        fields.push(Field::new(name, data_type, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut writer = super::ParquetFile::create(out, schema.clone())?;
    let mut builders = EventBuilders::new(&spec.fields());
    let (mut events, mut unreadable) = (0u64, 0u64);
    let now = crate::time::now_ms();
    while let Some(source) = source.as_mut() {
        let chunk = match source.poll().map_err(unreadable_source)? {
            Polled::Chunk { chunk, .. } => chunk,
            Polled::End => break,
            // Assignments, partitions finished, idle polls: nothing to read.
            _ => continue,
        };
        decoder.prepare(&chunk).map_err(|e| failed(format!("its events: {e}")))?;
        unreadable += chunk.unreadable().len() as u64;
        for record in chunk.records() {
            match decoder.decode(&record, now) {
                Ok(event) => {
                    builders.push(&event);
                    events += 1;
                }
                Err(_) => unreadable += 1,
            }
        }
        if builders.len() >= BATCH_ROWS {
            writer.write(&builders.finish(&schema).map_err(|e| failed(e.to_string()))?)?;
        }
    }
    writer.write(&builders.finish(&schema).map_err(|e| failed(e.to_string()))?)?;
    writer.close()?;
    Ok((events, unreadable))
}

/// Arrow builders of decoded events.
struct EventBuilders {
    key: StringBuilder,
    time: Int64Builder,
    /// Each event's number in the order read: the order of events of one
    /// time (of one key: a key's records are in one partition).
    seq: Int64Builder,
    next: i64,
    fields: Vec<FieldBuilder>,
    rows: usize,
}

enum FieldBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
}

impl EventBuilders {
    fn new(fields: &[(String, FieldType)]) -> EventBuilders {
        let fields = fields
            .iter()
            .map(|(_, ty)| match ty {
                FieldType::String => FieldBuilder::Str(StringBuilder::new()),
                FieldType::Int => FieldBuilder::Int(Int64Builder::new()),
                FieldType::Float => FieldBuilder::Float(Float64Builder::new()),
                FieldType::Bool => FieldBuilder::Bool(BooleanBuilder::new()),
            })
            .collect();
        EventBuilders {
            key: StringBuilder::new(),
            time: Int64Builder::new(),
            seq: Int64Builder::new(),
            next: 0,
            fields,
            rows: 0,
        }
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn push(&mut self, event: &decode::Event<'_>) {
        self.key.append_value(&event.key);
        self.time.append_value(event.time);
        self.seq.append_value(self.next);
        self.next += 1;
        for (builder, value) in self.fields.iter_mut().zip(&event.values) {
            match (builder, value) {
                (FieldBuilder::Str(b), decode::Value::Str(s)) => b.append_value(s),
                (FieldBuilder::Int(b), decode::Value::Int(i)) => b.append_value(*i),
                (FieldBuilder::Float(b), decode::Value::Float(x)) => b.append_value(*x),
                (FieldBuilder::Bool(b), decode::Value::Bool(x)) => b.append_value(*x),
                (FieldBuilder::Str(b), _) => b.append_null(),
                (FieldBuilder::Int(b), _) => b.append_null(),
                (FieldBuilder::Float(b), _) => b.append_null(),
                (FieldBuilder::Bool(b), _) => b.append_null(),
            }
        }
        self.rows += 1;
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(self.key.finish()), Arc::new(self.time.finish()), Arc::new(self.seq.finish())];
        for builder in &mut self.fields {
            columns.push(match builder {
                FieldBuilder::Str(b) => Arc::new(b.finish()),
                FieldBuilder::Int(b) => Arc::new(b.finish()),
                FieldBuilder::Float(b) => Arc::new(b.finish()),
                FieldBuilder::Bool(b) => Arc::new(b.finish()),
            });
        }
        self.rows = 0;
        RecordBatch::try_new(schema.clone(), columns)
    }
}
