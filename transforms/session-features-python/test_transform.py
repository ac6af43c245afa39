"""Session features on hand-made windows, run natively: `pytest` in this
folder (with the SDK on the path: `PYTHONPATH=../../sdk/python`)."""

import pytest

from sluice.testing import run, window
from transform import MAX_ITEMS, session_features

MINUTE = 60_000


def click(minute: int, item: str, category: str | None) -> dict:
    return {"timestamp": minute * MINUTE, "item_id": item, "category": category}


def test_counts_distincts_and_the_top_category():
    w = window(
        "u1",
        [click(1, "a", "shoes"), click(2, "b", "hats"), click(3, "a", "shoes"), click(4, "c", None)],
        start=0,
        end=30 * MINUTE,
    )
    assert run(session_features, w) == {
        "items_clicked_30m": ["a", "b", "a", "c"],
        "item_count_30m": 4,
        "distinct_items_30m": 3,
        "distinct_categories_30m": 2,
        "top_category_30m": "shoes",
    }


def test_a_tie_goes_to_the_smallest_category_and_no_category_is_null():
    tie = window("u1", [click(1, "a", "toys"), click(2, "b", "books")], end=30 * MINUTE)
    assert run(session_features, tie)["top_category_30m"] == "books"
    none = window("u2", [click(1, "a", None)], end=30 * MINUTE, fields={"category": str})
    assert run(session_features, none)["top_category_30m"] is None


def test_the_item_list_keeps_the_most_recent_clicks():
    clicks = [{"timestamp": i, "item_id": f"i{i}", "category": "c"} for i in range(MAX_ITEMS + 20)]
    features = run(session_features, window("bot", clicks, end=30 * MINUTE))
    assert features["item_count_30m"] == MAX_ITEMS + 20
    assert features["items_clicked_30m"] == [f"i{i}" for i in range(20, MAX_ITEMS + 20)]


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__]))
