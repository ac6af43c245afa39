"""Seed 001's features computed the plain way, for the user-activity test:
every one-hour window sliding every five minutes (starts at multiples of
five minutes since the epoch) that holds an event, per user, from the raw
JSON lines, with no Sluice code. One JSON object per window on stdout:
{"key", "start", "end", "features"}.

usage: activity_reference.py EVENTS.jsonl
"""

import json
import sys
from collections import defaultdict

HOUR, SLIDE = 3_600_000, 300_000


def main(path: str) -> None:
    windows = defaultdict(list)
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            e = json.loads(line)
            t = round(e["timestamp"] * 1000)
            # Window starts s with s <= t < s + HOUR.
            first = (t - HOUR) // SLIDE + 1
            for k in range(first, t // SLIDE + 1):
                windows[(e["user_id"], k * SLIDE)].append((t, e))
    for (user, start), events in sorted(windows.items()):
        latest = max((t, e["action"]) for t, e in events)
        features = {
            "event_count_1h": len(events),
            "unique_actions_1h": len({e["action"] for _, e in events}),
            "avg_value_1h": sum(e["value"] for _, e in events) / len(events),
            "last_action": latest[1],
        }
        print(json.dumps({"key": user, "start": start, "end": start + HOUR, "features": features}))


if __name__ == "__main__":
    main(sys.argv[1])
