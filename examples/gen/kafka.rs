//! Topics for the examples and tests: create them, and produce generated
//! lines keyed by entity, so each key's events stay in one partition.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// Create `topic` with `partitions` partitions unless it exists.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = runtime.block_on(admin.create_topics([&new], &options))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

/// A producer for generated events; `properties` are librdkafka's.
pub fn producer(brokers: &str, properties: &[(&str, &str)]) -> anyhow::Result<BaseProducer> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("linger.ms", "5");
    for (k, v) in properties {
        config.set(*k, *v);
    }
    Ok(config.create()?)
}

/// The entity key of a generated line: its `user_id`, when it has one.
pub fn key_of(line: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    match &v["user_id"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Queue one record, waiting while the producer's queue is full.
pub fn send(producer: &BaseProducer, topic: &str, key: Option<&str>, payload: &[u8]) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).payload(payload);
    if let Some(k) = key {
        record = record.key(k);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Produce every line of `text` to `topic`, keyed by `user_id`, in order
/// per partition; returns the number of records.
pub fn produce_lines(brokers: &str, topic: &str, text: &[u8]) -> anyhow::Result<u64> {
    let producer = producer(brokers, &[])?;
    let mut n = 0;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        send(&producer, topic, key_of(line).as_deref(), line)?;
        n += 1;
        if n % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(n)
}

/// Every record of `topic`, read from the beginning of each partition
/// to its end (as the broker's fetch responses report it: Tansu's
/// ListOffsets answer is short of the true end), in offset order per
/// partition.
pub fn read_all(brokers: &str, topic: &str) -> anyhow::Result<Vec<OwnedMessage>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "sluice-read-all")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics() {
        if let Some(e) = t.error() {
            anyhow::bail!("topic {topic}: {e:?}");
        }
        for p in t.partitions() {
            assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    let mut open: std::collections::BTreeSet<i32> = assignment.elements().iter().map(|e| e.partition()).collect();
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !open.is_empty() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "reading {topic}: no end after 60 s");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => records.push(m.detach()),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(records)
}
