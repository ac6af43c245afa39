"""Tests of the `{{name}}` transform, run natively in CPython: `pytest`."""

from sluice.testing import run, window
from transform import {{function}}


def test_counts_items_and_finds_the_top_one():
    w = window(
        "user-1",
        [
            {"timestamp": 1_000, "item_id": "b"},
            {"timestamp": 2_000, "item_id": "a"},
            {"timestamp": 3_000, "item_id": "b"},
        ],
        start=0,
        end=60_000,
    )
    assert run({{function}}, w) == {
        "event_count": 3,
        "distinct_items": 2,
        "top_item": "b",
        "last_items": ["b", "a", "b"],
    }
