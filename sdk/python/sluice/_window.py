"""What a transform sees: the events of one call, stored by column as the
host sends them, and windows that refer to their events by row number.

A window's values come out as plain Python lists, in event-time order
(``window.strs("item_id")``); one event at a time is the friendlier, slower
way (``for event in window: event.str("item_id")``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence


class Trigger(str, enum.Enum):
    """Why a window is being evaluated."""

    #: The watermark passed the window's end.
    CLOSE = "close"
    #: An event arrived (continuous features for online inference).
    EVENT = "event"
    #: An event arrived after close, within the allowed lateness: this
    #: result corrects the one emitted before.
    LATE = "late"


class FieldError(KeyError):
    """A field the manifest does not declare, or not of the asked type."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "field error"


#: Column kinds, as the contract's ``column-data`` cases.
BOOLS, INTS, FLOATS, STRS = "bools", "ints", "floats", "strs"


class Column:
    """One declared event field: one value per row of the call (strings as
    codes into the call's string table), and the rows where it is null."""

    __slots__ = ("kind", "data", "nulls", "_values")

    def __init__(self, kind: str, data: Sequence[Any], nulls: Sequence[int] = ()):
        self.kind = kind
        self.data = data
        self.nulls = nulls
        self._values: Optional[list[Any]] = None

    def values(self, strings: Sequence[str]) -> list[Any]:
        """Every row's value as a Python value (None where null), worked
        out once per call, when a window first asks: the windows of a call
        share their events."""
        if self._values is None:
            data, nulls = self.data, self.nulls
            if self.kind != STRS:
                values = list(data)
                for row in nulls:
                    values[row] = None
            elif nulls:
                # A null row's code need not be in the table (it is empty
                # when every row is null).
                null_rows = set(nulls)
                values = [None if row in null_rows else strings[code] for row, code in enumerate(data)]
            else:
                values = list(map(strings.__getitem__, data))
            self._values = values
        return self._values


class Batch:
    """The events of one call into the module."""

    __slots__ = ("timestamps", "strings", "columns")

    def __init__(self, timestamps: Sequence[int], strings: Sequence[str], columns: dict[str, Column]):
        #: Event time of each row, milliseconds since the Unix epoch.
        self.timestamps = timestamps
        #: The call's string table: string columns hold indices into it.
        self.strings = strings
        self.columns = columns

    def column(self, name: str, *kinds: str) -> Column:
        column = self.columns.get(name)
        if column is None:
            raise FieldError(f"field `{name}` is not declared in the manifest")
        if kinds and column.kind not in kinds:
            wanted = {BOOLS: "a boolean", INTS: "an integer", FLOATS: "a number", STRS: "a string"}[kinds[0]]
            raise FieldError(f"field `{name}` is not {wanted}")
        return column

    def value(self, name: str, row: int) -> Any:
        """Field ``name`` of ``row`` as a Python value (``None`` when null)."""
        return self.column(name).values(self.strings)[row]


def _values(batch: Batch, column: Column, rows: Sequence[int]) -> list[Any]:
    # `map` over `__getitem__` gathers in C, about twice the speed of a
    # comprehension: this runs for every window.
    return list(map(column.values(batch.strings).__getitem__, rows))


@dataclass(frozen=True)
class WindowInfo:
    """A window without its events (what an aggregate's ``finish`` gets)."""

    #: The events' key.
    key: str
    #: Inclusive start, milliseconds since the Unix epoch.
    start: int
    #: Exclusive end, milliseconds since the Unix epoch.
    end: int
    trigger: Trigger


class Window:
    """One key's events in ``[start, end)``, in event-time order."""

    __slots__ = ("key", "start", "end", "trigger", "rows", "_batch")

    def __init__(self, batch: Batch, key: str, start: int, end: int, trigger: Trigger, rows: Sequence[int]):
        self._batch = batch
        #: The events' key.
        self.key = key
        #: Inclusive start, milliseconds since the Unix epoch.
        self.start = start
        #: Exclusive end, milliseconds since the Unix epoch.
        self.end = end
        self.trigger = trigger
        #: The window's rows in the call's events, in event-time order.
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Window(key={self.key!r}, start={self.start}, end={self.end}, trigger={self.trigger.value}, events={len(self)})"

    @property
    def info(self) -> WindowInfo:
        return WindowInfo(self.key, self.start, self.end, self.trigger)

    def timestamps(self) -> list[int]:
        """Each event's time, milliseconds since the Unix epoch."""
        return list(map(self._batch.timestamps.__getitem__, self.rows))

    def strs(self, name: str) -> list[Optional[str]]:
        """String field ``name`` of each event (``None`` where null)."""
        return _values(self._batch, self._batch.column(name, STRS), self.rows)

    def ints(self, name: str) -> list[Optional[int]]:
        """Integer field ``name`` of each event (``None`` where null)."""
        return _values(self._batch, self._batch.column(name, INTS), self.rows)

    def floats(self, name: str) -> list[Optional[float]]:
        """Number field ``name`` of each event, integers as floats (``None``
        where null)."""
        column = self._batch.column(name, FLOATS, INTS)
        values = _values(self._batch, column, self.rows)
        if column.kind == INTS:
            return [None if v is None else float(v) for v in values]
        return values

    def bools(self, name: str) -> list[Optional[bool]]:
        """Boolean field ``name`` of each event (``None`` where null)."""
        return _values(self._batch, self._batch.column(name, BOOLS), self.rows)

    def values(self, name: str) -> list[Any]:
        """Field ``name`` of each event, whatever its type."""
        return _values(self._batch, self._batch.column(name), self.rows)

    def events(self) -> Iterator["Event"]:
        """The events one at a time."""
        batch = self._batch
        return (Event(batch, r) for r in self.rows)

    __iter__ = events


class Event:
    """One event: its time and its declared fields."""

    __slots__ = ("_batch", "row")

    def __init__(self, batch: Batch, row: int):
        self._batch = batch
        self.row = row

    @property
    def timestamp(self) -> int:
        """Event time, milliseconds since the Unix epoch."""
        return self._batch.timestamps[self.row]

    def __getitem__(self, name: str) -> Any:
        return self._batch.value(name, self.row)

    def get(self, name: str, default: Any = None) -> Any:
        """Field ``name`` (``default`` when null or not declared)."""
        if name not in self._batch.columns:
            return default
        value = self._batch.value(name, self.row)
        return default if value is None else value

    def str(self, name: str) -> Optional[str]:
        self._batch.column(name, STRS)
        return self._batch.value(name, self.row)

    def int(self, name: str) -> Optional[int]:
        self._batch.column(name, INTS)
        return self._batch.value(name, self.row)

    def float(self, name: str) -> Optional[float]:
        column = self._batch.column(name, FLOATS, INTS)
        value = self._batch.value(name, self.row)
        return float(value) if column.kind == INTS and value is not None else value

    def bool(self, name: str) -> Optional[bool]:
        self._batch.column(name, BOOLS)
        return self._batch.value(name, self.row)

    def as_dict(self) -> dict[str, Any]:
        """The event's fields and ``timestamp``, as a dict."""
        fields = {name: self._batch.value(name, self.row) for name in self._batch.columns}
        fields["timestamp"] = self.timestamp
        return fields

    def __repr__(self) -> str:
        return f"Event({self.as_dict()!r})"
