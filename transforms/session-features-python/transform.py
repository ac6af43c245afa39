"""Session features of seed 000, in Python: what a user clicked in the last
30 minutes, over a 30-minute window sliding every minute. The same features
as the Rust module `transforms/session-features`, row for row.

The seed's PyFlink `ProcessWindowFunction`, with what a feature store needs
changed: `items_clicked_30m` holds the most recent 100 clicks (a bot clicks
thousands of times in half an hour, and a list that long is no model
input), a tie for the top category goes to the smallest name (the seed's
`max(set(...))` picks by set order, which varies between runs), and no
`computed_at` (a replay must write the same row; the host stamps rows).
"""

from collections import Counter
from typing import Optional

import sluice
from sluice import Window, feature

#: Most items in `items_clicked_30m`: the most recent ones.
MAX_ITEMS = 100


@sluice.window_transform(
    features=[
        feature(
            "items_clicked_30m",
            list[str],
            "The items clicked in the window, oldest first: the most recent 100 when there were more.",
        ),
        feature("item_count_30m", int, "Clicks in the window."),
        feature("distinct_items_30m", int, "Distinct items clicked."),
        feature("distinct_categories_30m", int, "Distinct categories clicked."),
        feature(
            "top_category_30m",
            Optional[str],
            "The category clicked most (the smallest name on a tie); null when no click had one.",
        ),
    ]
)
def session_features(window: Window) -> dict:
    items = [i for i in window.strs("item_id") if i is not None]
    categories = Counter(c for c in window.strs("category") if c is not None)
    top = max(categories.values(), default=0)
    return {
        "items_clicked_30m": items[-MAX_ITEMS:],
        "item_count_30m": len(window),
        "distinct_items_30m": len(set(items)),
        "distinct_categories_30m": len(categories),
        "top_category_30m": min((c for c, n in categories.items() if n == top), default=None),
    }
