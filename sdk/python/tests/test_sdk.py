"""The SDK run natively: declarations, window views, rows checked as the
host checks them, errors with their tracebacks, aggregates folded in
slices. Each expectation is worked out by hand here."""

from typing import Optional

import pytest

import sluice
from sluice import Feature, FeatureType, Features, Trigger, WindowError, feature
from sluice._features import Declaration, FeatureError
from sluice._transform import AggregateTransform, WindowTransform
from sluice.testing import batch, run, window


def test_a_feature_type_comes_from_its_python_type():
    assert feature("n", int) == Feature("n", FeatureType.INT, False, "")
    assert feature("top", str | None, " The  top\n one. ") == Feature("top", FeatureType.STR, True, "The top one.")
    assert feature("xs", Optional[list[float]]) == Feature("xs", FeatureType.FLOATS, True, "")
    assert feature("b", bool).type is FeatureType.BOOLEAN
    assert feature("ss", list[str]).type is FeatureType.STRS
    for bad in (dict, list, list[dict], bytes, int | str):
        with pytest.raises(TypeError, match="not a feature type"):
            feature("x", bad)
    with pytest.raises(ValueError, match="needs a name"):
        feature("", int)


def test_rows_are_checked_as_the_host_checks_them():
    d = Declaration([feature("count", int), feature("items", list[str]), feature("top", str | None)])
    assert d.row({"count": 2, "items": ["a", None], "top": None}) == [
        ("count", FeatureType.INT, 2),
        ("items", FeatureType.STRS, ["a", None]),
        ("top", None, None),
    ]
    # A nullable feature may be left out.
    assert [name for name, _, _ in d.row({"items": [], "count": 0})] == ["items", "count"]
    cases = [
        ({"count": 1}, "feature `items` is missing (it is not declared nullable)"),
        ({"count": None, "items": []}, "feature `count` is null but not declared nullable"),
        ({"count": 1, "items": [], "extra": 1}, "feature `extra` is not among the module's declared features"),
        ({"count": "1", "items": []}, "feature `count` is declared int but the row holds str '1'"),
        ({"count": True, "items": []}, "feature `count` is declared int but the row holds bool True"),
        ({"count": 1, "items": "ab"}, "feature `items` is declared strs but the row holds str 'ab'"),
        ({"count": 1, "items": ["a", 2]}, "feature `items` is declared strs but the row holds int 2"),
        ({"count": 2**63, "items": []}, "feature `count` is declared int but the row holds int 9223372036854775808"),
    ]
    for row, message in cases:
        with pytest.raises(FeatureError) as e:
            d.row(row)
        assert str(e.value) == message
    with pytest.raises(FeatureError, match="returns a dict of features"):
        d.row([("count", 1)])


def test_every_item_of_a_list_feature_is_checked():
    d = Declaration(
        [
            feature("ints", list[int]),
            feature("floats", list[float]),
            feature("bools", list[bool]),
            feature("strs", list[str]),
        ]
    )

    class Name(str):
        pass

    good = {"ints": (1, None, -(2**63), 2**63 - 1), "floats": [0.5, None, 2], "bools": [True, None], "strs": [Name("a")]}
    assert d.row(good) == [
        ("ints", FeatureType.INTS, [1, None, -(2**63), 2**63 - 1]),
        ("floats", FeatureType.FLOATS, [0.5, None, 2.0]),
        ("bools", FeatureType.BOOLS, [True, None]),
        ("strs", FeatureType.STRS, ["a"]),
    ]
    bad = [
        ("ints", [1, True], "feature `ints` is declared ints but the row holds bool True"),
        ("ints", [None, 2**63], "feature `ints` is declared ints but the row holds int 9223372036854775808"),
        ("ints", [-(2**63) - 1], "feature `ints` is declared ints but the row holds int -9223372036854775809"),
        ("ints", [1.0], "feature `ints` is declared ints but the row holds float 1.0"),
        ("floats", [1.5, "2"], "feature `floats` is declared floats but the row holds str '2'"),
        ("bools", [True, 1], "feature `bools` is declared bools but the row holds int 1"),
        ("strs", ["a", b"b"], "feature `strs` is declared strs but the row holds bytes b'b'"),
    ]
    for name, value, message in bad:
        with pytest.raises(FeatureError) as e:
            d.row({**good, name: value})
        assert str(e.value) == message


def test_a_float_feature_takes_an_int_as_a_float():
    d = Declaration([feature("x", float), feature("xs", list[float])])
    assert d.row({"x": 3, "xs": [1, 2.5]}) == [("x", FeatureType.FLOAT, 3.0), ("xs", FeatureType.FLOATS, [1.0, 2.5])]
    assert isinstance(d.row({"x": 3, "xs": []})[0][2], float)


def test_the_builder_checks_types_and_caps_lists():
    f = Features().int("n", 3).str("top", None).str_list("items", ["a", "b", "c", "d"], last=2).float("x", 1)
    assert f.as_dict() == {"n": 3, "top": None, "items": ["c", "d"], "x": 1}
    assert Features().str_list("items", ["a"], last=5).as_dict() == {"items": ["a"]}
    assert Features().str_list("items", ["a", "b"], last=0).as_dict() == {"items": []}
    with pytest.raises(FeatureError):
        Features().int("n", "3")
    with pytest.raises(FeatureError):
        Features().int("n", True)


def test_a_window_shows_its_columns_in_event_time_order_with_nulls():
    w = window(
        "k",
        [
            {"timestamp": 30, "s": "b", "i": 2, "f": 0.5, "b": True},
            {"timestamp": 10, "s": "a", "i": None, "f": 1, "b": False},
            {"timestamp": 20, "s": None, "i": 7, "f": 2.0, "b": None},
        ],
        start=0,
        end=100,
        trigger="late",
    )
    assert (w.key, w.start, w.end, w.trigger, len(w)) == ("k", 0, 100, Trigger.LATE, 3)
    assert w.timestamps() == [10, 20, 30]
    assert w.strs("s") == ["a", None, "b"]
    assert w.ints("i") == [None, 7, 2]
    assert w.floats("i") == [None, 7.0, 2.0]
    assert w.floats("f") == [1.0, 2.0, 0.5]
    assert w.bools("b") == [False, None, True]
    events = list(w)
    assert [e.timestamp for e in events] == [10, 20, 30]
    assert events[0]["s"] == "a" and events[1].str("s") is None and events[1].int("i") == 7
    assert events[2].as_dict() == {"s": "b", "i": 2, "f": 0.5, "b": True, "timestamp": 30}
    with pytest.raises(sluice.FieldError, match="field `s` is not an integer"):
        w.ints("s")
    with pytest.raises(sluice.FieldError, match="field `nope` is not declared in the manifest"):
        w.strs("nope")
    # A string field null in every event: an empty string table.
    w = window("k", [{"timestamp": 1, "s": None}, {"timestamp": 2, "s": None}], end=100, fields={"s": str})
    assert w.strs("s") == [None, None] and [e.str("s") for e in w] == [None, None]


def test_strings_share_one_table_as_the_host_sends_them():
    b = batch([{"timestamp": 1, "a": "x", "c": "y"}, {"timestamp": 2, "a": "y", "c": "x"}])
    assert b.strings == ["x", "y"]
    assert b.columns["a"].data == [0, 1] and b.columns["c"].data == [1, 0]
    with pytest.raises(ValueError, match="null in every event"):
        batch([{"timestamp": 1, "a": None}])
    assert batch([{"timestamp": 1, "a": None}], fields={"a": str}).columns["a"].kind == "strs"
    with pytest.raises(ValueError, match="mixes types"):
        batch([{"timestamp": 1, "a": 1}, {"timestamp": 2, "a": "x"}])


def _window_transform(function, features):
    # Not registered: a test module may hold several.
    return WindowTransform(function, features)


def test_an_exception_is_the_windows_error_with_its_traceback():
    def fails(w):
        items = w.strs("item")
        return {"n": len(items) // 0}

    t = _window_transform(fails, [feature("n", int)])
    with pytest.raises(WindowError) as e:
        run(t, window("k", [{"timestamp": 1, "item": "a"}]))
    message = e.value.message
    assert message.startswith("Traceback (most recent call last):")
    assert 'in fails\n    return {"n": len(items) // 0}' in message
    assert message.endswith("ZeroDivisionError: integer division or modulo by zero")
    # The SDK's own frame is left out.
    assert "_transform.py" not in message


def test_a_row_breaking_the_declaration_is_an_error_without_traceback():
    t = _window_transform(lambda w: {"n": "many"}, [feature("n", int)])
    with pytest.raises(WindowError) as e:
        run(t, window("k", [{"timestamp": 1, "x": 1}]))
    assert e.value.message == "feature `n` is declared int but the row holds str 'many'"


class _Spend:
    def create(self):
        return {"count": 0, "total": 0.0, "merchants": set()}

    def add(self, acc, event):
        acc["count"] += 1
        acc["total"] += event.float("amount")
        acc["merchants"].add(event.str("merchant"))

    def merge(self, acc, other):
        return {
            "count": acc["count"] + other["count"],
            "total": acc["total"] + other["total"],
            "merchants": acc["merchants"] | other["merchants"],
        }

    def finish(self, acc, w):
        return {"count": acc["count"], "total": acc["total"], "merchants": len(acc["merchants"]), "key": w.key}


def test_an_aggregate_is_folded_in_slices_encoded_and_merged():
    t = AggregateTransform(
        _Spend, [feature("count", int), feature("total", float), feature("merchants", int), feature("key", str)]
    )
    events = [{"timestamp": i, "amount": a, "merchant": m} for i, (a, m) in enumerate([(1.5, "m1"), (2, "m2"), (4.0, "m1")])]
    w = window("u1", events, end=10)
    expected = {"count": 3, "total": 7.5, "merchants": 2, "key": "u1"}
    for slices in (1, 2, 3, 5):
        assert run(t, w, slices=slices) == expected
    # Accumulators cross as bytes.
    acc = t.add(None, list(w))
    assert isinstance(acc, bytes)
    assert t.decode(t.add(acc, [])) == t.decode(acc)


def test_an_aggregate_needs_its_four_methods():
    class Half:
        def create(self):
            return 0

    with pytest.raises(TypeError, match="has no add, merge, finish method"):
        AggregateTransform(Half, [feature("n", int)])


def test_a_declaration_names_each_feature_once():
    with pytest.raises(ValueError, match="feature `n` is declared twice"):
        WindowTransform(lambda w: {}, [feature("n", int), feature("n", str)])
