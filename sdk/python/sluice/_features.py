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

    __slots__ = ("features", "_by_name", "_required")

    def __init__(self, features: Sequence[Feature]):
        self.features = list(features)
        self._by_name = {f.name: f for f in self.features}
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
        cells: list[Cell] = []
        for name, value in values.items():
            spec = self._by_name.get(name)
            if spec is None:
                raise FeatureError(f"feature `{name}` is not among the module's declared features")
            if value is None:
                if not spec.nullable:
                    raise FeatureError(f"feature `{name}` is null but not declared nullable")
                cells.append((name, None, None))
            else:
                cells.append((name, spec.type, _typed(spec, value)))
        for spec in self._required:
            if spec.name not in values:
                raise FeatureError(f"feature `{spec.name}` is missing (it is not declared nullable)")
        return cells


def _typed(spec: Feature, value: Any) -> Any:
    if spec.type.is_list:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise FeatureError(f"feature `{spec.name}` is declared {spec.type.value} but the row holds {_kind(value)}")
        item = item_type(spec.type)
        return [None if v is None else _scalar(spec, item, v) for v in value]
    return _scalar(spec, spec.type, value)


def _scalar(spec: Feature, ty: FeatureType, value: Any) -> Any:
    if ty is FeatureType.BOOLEAN:
        ok = isinstance(value, bool)
    elif ty is FeatureType.INT:
        ok = isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
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
