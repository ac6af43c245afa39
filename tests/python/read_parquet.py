"""Print a Parquet file as one JSON object, as pyarrow reads it: its
schema (`name: type` strings) and its rows (times in milliseconds since
the epoch), for the tests to compare."""
import datetime
import json
import sys

import pyarrow.parquet as pq


def plain(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return round(value.timestamp() * 1000)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


table = pq.read_table(sys.argv[1])
print(json.dumps({
    "schema": [f"{f.name}: {f.type}" for f in table.schema],
    "rows": [{k: plain(v) for k, v in row.items()} for row in table.to_pylist()],
}))
