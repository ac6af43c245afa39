"""Seed 000's clicks as Avro, with confluent-kafka's AvroSerializer.

    produce_avro.py REGISTRY TOKEN BROKERS AVRO_TOPIC JSON_TOPIC EVENTS

Each JSON line of EVENTS goes to JSON_TOPIC as it is and to AVRO_TOPIC in
the wire format: the first half with click schema v1, the rest with v2
(which adds `device_type` with a default), each registered by the
serializer under AVRO_TOPIC-value. Two records no registry can explain go
to AVRO_TOPIC a third of the way in: one naming schema id 999999, one
without the magic byte. Prints the two schema ids.
"""

import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from clicks import clicks

FIELDS = [
    {"name": "user_id", "type": "string"},
    {"name": "timestamp", "type": "double"},
    {"name": "item_id", "type": "string"},
    {"name": "category", "type": "string"},
]
V1 = {"type": "record", "name": "click_event", "namespace": "seed", "fields": FIELDS}
V2 = {**V1, "fields": FIELDS + [{"name": "device_type", "type": ["null", "string"], "default": None}]}
UNKNOWN_ID = 999_999


def main(registry, token, brokers, avro_topic, json_topic, events):
    client = SchemaRegistryClient({"url": registry, "basic.auth.user.info": f"producer:{token}"})
    as_dict = lambda value, ctx: value  # noqa: E731 (the records are dicts already)
    v1 = AvroSerializer(client, json.dumps(V1), as_dict)
    v2 = AvroSerializer(client, json.dumps(V2), as_dict)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    context = SerializationContext(avro_topic, MessageField.VALUE)
    lines = list(clicks(events))
    for i, line, record in lines:
        if i < len(lines) // 2:
            value = v1(record, context)
        else:
            record["device_type"] = ["ios", "android", "web"][i % 3]
            value = v2(record, context)
        producer.produce(avro_topic, value=value, key=record["user_id"])
        producer.produce(json_topic, value=line, key=record["user_id"])
        if i == len(lines) // 3:
            producer.produce(avro_topic, value=b"\x00" + UNKNOWN_ID.to_bytes(4, "big") + b"\x02x")
            producer.produce(avro_topic, value=b'{"user_id": "json, not avro"}')
        producer.poll(0)
    assert producer.flush(60) == 0, "records were not delivered"
    ids = [client.get_version(f"{avro_topic}-value", v).schema_id for v in (1, 2)]
    print(json.dumps({"v1": ids[0], "v2": ids[1], "unknown": UNKNOWN_ID}))


if __name__ == "__main__":
    main(*sys.argv[1:7])
