"""Read a pipeline's Avro and JSON feature topics back, as consumers do.

    consume_avro.py REGISTRY TOKEN BROKERS AVRO_TOPIC JSON_TOPIC

Reads each topic's one partition from its start to its end (the
partition's end as the fetch says it, not the watermark offsets, which
Tansu may give short): the Avro one
with confluent-kafka's AvroDeserializer (the schema fetched from REGISTRY
by the id each record names), the JSON one with json.loads. Prints both
lists of rows, each with its Kafka key and row-id header, the Avro rows'
timestamps (timestamp-millis, which the deserializer makes datetimes)
as milliseconds again, for the caller to compare.
"""

import datetime
import json
import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
TIMES = ("window_start", "window_end", "event_time", "computed_at")


def records(brokers, topic):
    """Every record of partition 0 of TOPIC, in order, to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"read-{topic}",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    while True:
        message = consumer.poll(30)
        assert message is not None, f"{topic}: no end after {len(out)} records"
        if message.error() and message.error().code() == KafkaError._PARTITION_EOF:
            break
        assert message.error() is None, message.error()
        out.append(message)
    consumer.close()
    return out


def row(message, value):
    headers = dict(message.headers() or [])
    return {"key": message.key().decode(), "row_id": headers["__sluice.row_id"].decode(), "value": value}


def millis(value):
    return (value - EPOCH) // datetime.timedelta(milliseconds=1)


def main(registry, token, brokers, avro_topic, json_topic):
    client = SchemaRegistryClient({"url": registry, "basic.auth.user.info": f"consumer:{token}"})
    deserialize = AvroDeserializer(client)
    context = SerializationContext(avro_topic, MessageField.VALUE)
    avro = []
    for message in records(brokers, avro_topic):
        value = deserialize(message.value(), context)
        for name in TIMES:
            value[name] = millis(value[name])
        avro.append(row(message, value))
    rows = [row(message, json.loads(message.value())) for message in records(brokers, json_topic)]
    print(json.dumps({"avro": avro, "json": rows}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
