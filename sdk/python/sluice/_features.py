"""A window's features: built with :class:`Features` or returned as a plain
``dict``, then checked against the declaration and put in the contract's
typed form, the same way in the host and in a native test run."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from ._schema import Feature, FeatureType, item_type


class FeatureError(ValueError):
    """A row that breaks its transform's declaration."""


class Features:
    """A feature map under construction, in insertion order::

        Features().int("item_count", len(window)).str_list("items", items, last=100)

    A transform may return a plain ``dict`` instead; the builder's methods
    check each value's type where it is set, and cap lists.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Optional[Mapping[str, Any]] = None):
        self._values: dict[str, Any] = dict(values or {})

    def null(self, name: str) -> "Features":
        self._values[name] = None
        return self

    def bool(self, name: str, value: Optional[bool]) -> "Features":
        return self._set(name, value, (bool,), "a bool")

    def int(self, name: str, value: Optional[int]) -> "Features":
        if isinstance(value, bool):
            raise FeatureError(f"feature `{name}`: {value!r} is a bool, not an int")
        return self._set(name, value, (int,), "an int")

    def float(self, name: str, value: Optional[Union[float, int]]) -> "Features":
        return self._set(name, value, (float, int), "a number")

    def str(self, name: str, value: Optional[str]) -> "Features":
        return self._set(name, value, (str,), "a str")

    def bool_list(self, name: str, values: Iterable[Optional[bool]], last: Optional[int] = None) -> "Features":
        return self._list(name, values, last)

    def int_list(self, name: str, values: Iterable[Optional[int]], last: Optional[int] = None) -> "Features":
        return self._list(name, values, last)

    def float_list(self, name: str, values: Iterable[Optional[float]], last: Optional[int] = None) -> "Features":
        return self._list(name, values, last)

    def str_list(self, name: str, values: Iterable[Optional[str]], last: Optional[int] = None) -> "Features":
        """A list of strings; with ``last``, only the last ``last`` of them
        (the most recent, for a window's values in event-time order), still
        in order: however busy a key, the list stays a usable model input."""
        return self._list(name, values, last)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Features({self._values!r})"

    def _set(self, name: str, value: Any, types: tuple, what: str) -> "Features":
        if value is not None and not isinstance(value, types):
            raise FeatureError(f"feature `{name}`: {value!r} is not {what}")
        self._values[name] = value
        return self

    def _list(self, name: str, values: Iterable[Any], last: Optional[int]) -> "Features":
        items = list(values)
        if last is not None:
            if last < 0:
                raise FeatureError(f"feature `{name}`: last={last} is negative")
            items = items[len(items) - last :] if len(items) > last else items
        self._values[name] = items
        return self


#: One checked feature: name, type (None for a null), value.
Cell = tuple[str, Optional[FeatureType], Any]


class Declaration:
    """A transform's declared features, for checking rows."""

    __slots__ = ("features", "_checks", "_required")

    def __init__(self, features: Sequence[Feature]):
        self.features = list(features)
        self._checks = {f.name: _Check(f) for f in self.features}
        self._required = [f for f in self.features if not f.nullable]

    def row(self, result: Any) -> list[Cell]:
        """A transform's result as checked cells, in the order returned;
        :class:`FeatureError` names the first feature that breaks the
        declaration (as the host's own check would)."""
        if isinstance(result, Features):
            values = result._values
        elif isinstance(result, Mapping):
            values = result
        else:
            raise FeatureError(
                f"a transform returns a dict of features or sluice.Features, not {type(result).__name__}"
            )
        checks = self._checks
        cells: list[Cell] = []
        for name, value in values.items():
            check = checks.get(name)
            if check is None:
                raise FeatureError(f"feature `{name}` is not among the module's declared features")
            if value is None:
                if not check.spec.nullable:
                    raise FeatureError(f"feature `{name}` is null but not declared nullable")
                cells.append((name, None, None))
            else:
                cells.append((name, check.spec.type, check.typed(value)))
        if len(cells) < len(checks):
            for spec in self._required:
                if spec.name not in values:
                    raise FeatureError(f"feature `{spec.name}` is missing (it is not declared nullable)")
        return cells


#: The Python types a list feature's items may have as they are: checking
#: ``set(map(type, value))`` against these is a C loop, and the usual case;
#: anything else takes the item-by-item path, which converts (ints in a
#: float list) or names the offending item.
_PLAIN_ITEMS = {
    FeatureType.BOOLS: frozenset({bool, type(None)}),
    FeatureType.FLOATS: frozenset({float, type(None)}),
    FeatureType.STRS: frozenset({str, type(None)}),
}

#: Each scalar type's exact Python type: one `is` for the usual case.
_EXACT = {FeatureType.BOOLEAN: bool, FeatureType.INT: int, FeatureType.FLOAT: float, FeatureType.STR: str}

_INT64 = range(-(2**63), 2**63)


class _Check:
    """One declared feature's check, worked out once per declaration: a
    row's check runs for every window."""

    __slots__ = ("spec", "is_list", "item", "plain", "exact")

    def __init__(self, spec: Feature):
        self.spec = spec
        self.is_list = spec.type.is_list
        self.item = item_type(spec.type) if self.is_list else spec.type
        self.plain = _PLAIN_ITEMS.get(spec.type)
        self.exact = _EXACT.get(self.item)

    def typed(self, value: Any) -> Any:
        """``value`` in the contract's form; :class:`FeatureError` when it
        is not of the declared type."""
        spec = self.spec
        if not self.is_list:
            if type(value) is self.exact and (self.exact is not int or value in _INT64):
                return value
            return _scalar(spec, self.item, value)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise FeatureError(f"feature `{spec.name}` is declared {spec.type.value} but the row holds {_kind(value)}")
        if self.plain is not None and self.plain.issuperset(map(type, value)):
            return list(value)
        if spec.type is FeatureType.INTS and _plain_ints(value):
            return list(value)
        return [None if v is None else _scalar(spec, self.item, v) for v in value]


def _plain_ints(value: Sequence[Any]) -> bool:
    """Every item an int within 64 bits, or None (checked in C loops)."""
    if not {int, type(None)}.issuperset(map(type, value)):
        return False
    ints = [v for v in value if v is not None] if None in value else value
    return not ints or (min(ints) in _INT64 and max(ints) in _INT64)


def _scalar(spec: Feature, ty: FeatureType, value: Any) -> Any:
    """The item-by-item check: ``value`` as type ``ty`` (an int as a
    float), or :class:`FeatureError` naming it."""
    if ty is FeatureType.BOOLEAN:
        ok = isinstance(value, bool)
    elif ty is FeatureType.INT:
        ok = isinstance(value, int) and not isinstance(value, bool) and value in _INT64
    elif ty is FeatureType.FLOAT:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise FeatureError(f"feature `{spec.name}` is declared {spec.type.value} but the row holds {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:120]
