"""The generated clicks of a JSON-lines file, as the Avro scripts send them."""

import json

FIELDS = ("user_id", "item_id", "category")


def clicks(events):
    """Each non-blank line of EVENTS: its number, its text, and the click as
    a record of seed 000's schema v1 (the time as a double)."""
    with open(events) as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    for i, line in enumerate(lines):
        event = json.loads(line)
        record = {name: event[name] for name in FIELDS}
        record["timestamp"] = float(event["timestamp"])
        yield i, line, record
