"""Seed 000's PyFlink job, as the peer of Sluice's session-features bench.

The seed's own classes, unchanged: `ClickEvent`, `ParseClickEvent`,
`ClickEventTimestampAssigner` and `SessionFeatureWindowFunction` over a
30-minute window sliding every minute, 30 s of out-of-orderness. What the
seed reads from Kafka is read here from the bench's JSON-lines file (a
bounded source, so the job ends when the last window fires), and what it
writes to Redis is written as JSON lines to a file, as Sluice's bench
writes its rows: the comparison is of the window function and the engine
around it, not of the connectors.

    python session_features_job.py INPUT OUT_DIR PARALLELISM

prints one line: `<net runtime s> <wall s> <rows> <peak MiB>`: the job's
net runtime (Flink's own figure: from the job's start to its end, task
deployment and the Python workers' start-up included), the whole run's
wall time (the JVM's start too), the feature rows written, and the peak
resident memory of this process and every process under it (the JVM and
the Python workers), sampled every 50 ms.
"""

import json
import os
import sys
import threading
import time

from pyflink.common import Duration, Encoder, Types
from pyflink.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import FileSink, FileSource, StreamFormat
from pyflink.datastream.functions import MapFunction, ProcessWindowFunction
from pyflink.datastream.window import SlidingEventTimeWindows, Time


# --- The seed's code (seed 000, pipeline/session_features_job.py) ---


class ClickEvent:
    def __init__(self, user_id: str, item_id: str, category: str, timestamp: float):
        self.user_id = user_id
        self.item_id = item_id
        self.category = category
        self.timestamp = timestamp

    @classmethod
    def from_json(cls, json_str: str) -> "ClickEvent":
        d = json.loads(json_str)
        return cls(
            user_id=d["user_id"],
            item_id=d["item_id"],
            category=d.get("category", "unknown"),
            timestamp=d["timestamp"],  # Unix epoch float
        )


class ParseClickEvent(MapFunction):
    """Parse raw JSON click events. Route malformed events to side output."""

    def map(self, raw: str):
        try:
            return ClickEvent.from_json(raw)
        except (json.JSONDecodeError, KeyError):
            return None


class ClickEventTimestampAssigner(TimestampAssigner):
    def extract_timestamp(self, element, record_timestamp: int) -> int:
        return int(element.timestamp * 1000)


class SessionFeatureWindowFunction(ProcessWindowFunction):
    """Computes session features from a 30-minute sliding window of click
    events. Called once per window per user when the watermark passes the
    window end."""

    def process(self, key: str, context, elements):
        clicks = list(elements)
        if not clicks:
            return

        item_ids = [c.item_id for c in clicks]
        categories = [c.category for c in clicks]

        feature_vector = {
            "user_id": key,
            "items_clicked_30m": item_ids,
            "item_count_30m": len(item_ids),
            "distinct_items_30m": len(set(item_ids)),
            "distinct_categories_30m": len(set(categories)),
            "top_category_30m": max(set(categories), key=categories.count),
            "window_end": context.window().end / 1000,  # back to seconds
            "computed_at": time.time(),
        }

        yield feature_vector


# --- The bench around it ---


def _tree_rss_kib(root: int) -> int:
    """Resident memory of `root` and its descendants, KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def main() -> None:
    input_path, out_dir, parallelism = sys.argv[1], sys.argv[2], int(sys.argv[3])
    started = time.monotonic()
    peak = [0]
    running = [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], _tree_rss_kib(os.getpid()))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    # The Python workers run the interpreter that runs this file (the
    # default is whatever `python` is on PATH).
    env.set_python_executable(sys.executable)
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), input_path).build()
    sink = FileSink.for_row_format(out_dir, Encoder.simple_string_encoder()).build()
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(30)).with_timestamp_assigner(
        ClickEventTimestampAssigner()
    )
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "clicks")
        .map(ParseClickEvent(), output_type=Types.PICKLED_BYTE_ARRAY())
        .filter(lambda x: x is not None)
        .assign_timestamps_and_watermarks(watermarks)
        .key_by(lambda event: event.user_id)
        .window(SlidingEventTimeWindows.of(Time.minutes(30), Time.minutes(1)))
        .process(SessionFeatureWindowFunction())
        .map(json.dumps, output_type=Types.STRING())
        .sink_to(sink)
    )
    result = env.execute("session-feature-pipeline")
    wall = time.monotonic() - started
    running[0] = False
    sampler.join()
    rows = 0
    for folder, _, files in os.walk(out_dir):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                rows += sum(1 for _ in f)
    print(f"{result.get_net_runtime() / 1000:.3f} {wall:.3f} {rows} {peak[0] // 1024}")


if __name__ == "__main__":
    main()
