"""The `{{name}}` transform: features of a window of events.

Fields are the ones the manifest declares under `events.fields`; each
feature is declared below with its type and what it means. Test it with
`pytest` in this folder; build it with `sluice transform build .`.
"""

from collections import Counter

import sluice
from sluice import Window, feature


@sluice.window_transform(
    features=[
        feature("event_count", int, "Events in the window."),
        feature("distinct_items", int, "Distinct items in the window."),
        feature("top_item", str | None, "The item seen most (the smallest on a tie); null when none had one."),
        feature("last_items", list[str], "The last 10 items, oldest first."),
    ]
)
def {{function}}(window: Window) -> dict:
    items = [i for i in window.strs("item_id") if i is not None]
    counts = Counter(items)
    top = max(counts.values(), default=0)
    return {
        "event_count": len(window),
        "distinct_items": len(counts),
        "top_item": min((i for i, n in counts.items() if n == top), default=None),
        "last_items": items[-10:],
    }
