"""Run a transform natively, in CPython, on sample windows: unit-test
features before building the module. What a test gets is what the host
writes, the same code checking it (the declaration, the feature types).

::

    from sluice.testing import window, run
    from transform import click_features

    def test_counts_clicks():
        w = window("u1", [
            {"timestamp": 1_000, "item_id": "a", "category": "shoes"},
            {"timestamp": 2_000, "item_id": "b", "category": "shoes"},
        ], start=0, end=1_800_000)
        assert run(click_features, w)["item_count"] == 2
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from ._transform import AggregateTransform, WindowError, WindowTransform
from ._window import BOOLS, FLOATS, INTS, STRS, Batch, Column, Event, Trigger, Window

__all__ = ["WindowError", "batch", "run", "window"]


def batch(
    events: Sequence[Mapping[str, Any]],
    timestamp: str = "timestamp",
    fields: Optional[Mapping[str, type]] = None,
) -> Batch:
    """The events as the host sends them: by column, strings in one table.

    Each event is a dict of its fields and its time (``timestamp``,
    milliseconds since the Unix epoch). A field's type is that of its
    values (integers and floats together make a float field), or as
    ``fields`` says (``{"category": str}``: needed for a field that is null
    in every event); ``None`` or a missing key is null.
    """
    fields = dict(fields or {})
    names: list[str] = []
    for e in events:
        for name in e:
            if name != timestamp and name not in names:
                names.append(name)
    codes: dict[str, int] = {}
    columns: dict[str, Column] = {}
    names += [n for n in fields if n not in names]
    for name in names:
        values = [e.get(name) for e in events]
        present = [v for v in values if v is not None]
        kind = _DECLARED.get(fields[name]) if name in fields else _kind(name, present)
        if kind is None:
            raise ValueError(f"field `{name}`: {fields[name]!r} is not a field type (str, int, float, bool)")
        nulls = [row for row, v in enumerate(values) if v is None]
        if kind == STRS:
            data = [codes.setdefault(v, len(codes)) if v is not None else 0 for v in values]
        elif kind == FLOATS:
            data = [float(v) if v is not None else 0.0 for v in values]
        else:
            data = [v if v is not None else (False if kind == BOOLS else 0) for v in values]
        columns[name] = Column(kind, data, nulls)
    strings = list(codes)
    timestamps = []
    for row, e in enumerate(events):
        t = e.get(timestamp)
        if not isinstance(t, int) or isinstance(t, bool):
            raise ValueError(f"event #{row + 1} has no integer `{timestamp}` (milliseconds since the Unix epoch)")
        timestamps.append(t)
    return Batch(timestamps, strings, columns)


_DECLARED = {str: STRS, int: INTS, float: FLOATS, bool: BOOLS}


def _kind(name: str, values: list[Any]) -> str:
    if not values:
        raise ValueError(f"field `{name}` is null in every event: give its type, as fields={{{name!r}: str}}")
    if all(isinstance(v, bool) for v in values):
        return BOOLS
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return INTS
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return FLOATS
    if all(isinstance(v, str) for v in values):
        return STRS
    raise ValueError(f"field `{name}` mixes types: {sorted({type(v).__name__ for v in values})}")


def window(
    key: str,
    events: Sequence[Mapping[str, Any]],
    start: int = 0,
    end: Optional[int] = None,
    trigger: Trigger | str = Trigger.CLOSE,
    timestamp: str = "timestamp",
    fields: Optional[Mapping[str, type]] = None,
) -> Window:
    """A window of ``key`` holding ``events`` (sorted by time here, as the
    host sorts them), from ``start`` (inclusive) to ``end`` (exclusive; by
    default just after the last event). ``fields``: as for :func:`batch`."""
    ordered = sorted(events, key=lambda e: e.get(timestamp, 0))
    b = batch(ordered, timestamp, fields)
    if end is None:
        end = max(b.timestamps, default=start) + 1
    outside = [t for t in b.timestamps if not start <= t < end]
    if outside:
        raise ValueError(f"event time {outside[0]} is outside the window [{start}, {end})")
    return Window(b, key, start, end, Trigger(trigger), list(range(len(ordered))))


def run(transform: Any, w: Window, slices: int = 2) -> dict[str, Any]:
    """The features ``transform`` (a decorated function or class) gives
    ``w``, as a dict in the order returned; a window the host would send to
    the dead letters raises :class:`sluice.WindowError` with the message the
    dead letter would carry.

    An aggregate is run as the host runs it: the events folded in
    ``slices`` accumulators, each encoded to bytes and back, merged, then
    finished.
    """
    registered = getattr(transform, "sluice_transform", transform)
    if isinstance(registered, WindowTransform):
        cells = registered.evaluate(w)
    elif isinstance(registered, AggregateTransform):
        events = [Event(w._batch, r) for r in w.rows]
        size = max(1, -(-len(events) // max(1, slices)))
        parts = [events[i : i + size] for i in range(0, len(events), size)] or [[]]
        accs = [registered.add(None, part) for part in parts]
        cells = registered.finish(registered.merge(accs), w.info)
    else:
        raise TypeError(f"{transform!r} is not a Sluice transform (decorate it with @sluice.window_transform)")
    return {name: value for name, _, value in cells}
