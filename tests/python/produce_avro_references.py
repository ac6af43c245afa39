"""Clicks whose schema references another subject's, as a producer's
AvroSerializer writes them.

    produce_avro_references.py REGISTRY TOKEN BROKERS AVRO_TOPIC JSON_TOPIC EVENTS

Registers `seed.Device` (os, model) under the subject `device`, then
produces each JSON line of EVENTS to AVRO_TOPIC with a click schema whose
`device` field is of that named type, declared only by a schema reference
(`SchemaReference("seed.Device", "device", 1)`), so a reader must fetch the
referenced subject's version to read it; and the same line as it is to
JSON_TOPIC. Prints the click schema's id.
"""

import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from clicks import clicks

DEVICE = {
    "type": "record",
    "name": "Device",
    "namespace": "seed",
    "fields": [{"name": "os", "type": "string"}, {"name": "model", "type": "string"}],
}
CLICK = {
    "type": "record",
    "name": "click_with_device",
    "namespace": "seed",
    "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "timestamp", "type": "double"},
        {"name": "device", "type": "seed.Device"},
        {"name": "item_id", "type": "string"},
        {"name": "category", "type": "string"},
    ],
}


def main(registry, token, brokers, avro_topic, json_topic, events):
    client = SchemaRegistryClient({"url": registry, "basic.auth.user.info": f"producer:{token}"})
    client.register_schema("device", Schema(json.dumps(DEVICE), "AVRO"))
    click = Schema(json.dumps(CLICK), "AVRO", [SchemaReference("seed.Device", "device", 1)])
    serialize = AvroSerializer(client, click, lambda value, ctx: value)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    context = SerializationContext(avro_topic, MessageField.VALUE)
    for i, line, record in clicks(events):
        record["device"] = {"os": ["ios", "android", "web"][i % 3], "model": f"m{i % 7}"}
        producer.produce(avro_topic, value=serialize(record, context), key=record["user_id"])
        producer.produce(json_topic, value=line, key=record["user_id"])
        producer.poll(0)
    assert producer.flush(60) == 0, "records were not delivered"
    latest = client.get_latest_version(f"{avro_topic}-value")
    assert [(r.name, r.subject, r.version) for r in latest.schema.references] == [("seed.Device", "device", 1)]
    print(json.dumps({"click": latest.schema_id}))


if __name__ == "__main__":
    main(*sys.argv[1:7])
