"""Clicks as an Avro object container file, as a data lake holds them.

    write_avro_file.py EVENTS OUT

Writes each JSON line of EVENTS to OUT with fastavro's writer (the
deflate codec, a block every 4 KB or so, so the file has many blocks), in
seed 000's click schema v2 (v1 and `device_type`, with a default). Prints
the number of records and of blocks.
"""

import json
import sys

import fastavro

from clicks import clicks

SCHEMA = {
    "type": "record",
    "name": "click_event",
    "namespace": "seed",
    "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "timestamp", "type": "double"},
        {"name": "item_id", "type": "string"},
        {"name": "category", "type": "string"},
        {"name": "device_type", "type": ["null", "string"], "default": None},
    ],
}


def main(events, out):
    records = [{**record, "device_type": ["ios", "android", None][i % 3]} for i, _, record in clicks(events)]
    with open(out, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(SCHEMA), records, codec="deflate", sync_interval=4000)
    with open(out, "rb") as f:
        blocks = sum(1 for _ in fastavro.block_reader(f))
    print(json.dumps({"records": len(records), "blocks": blocks}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
