"""Declaring a transform's features: each named, typed with the Python type
of its values, and described, next to the function that computes them.

The host reads the declaration when the module is loaded (as it reads a
Rust module's): typed outputs such as an Iceberg table's columns are made
from it, and every row is checked against it.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from typing import Any


class FeatureType(enum.Enum):
    """The type of a declared feature (the contract's ``feature-type``)."""

    BOOLEAN = "boolean"
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOLS = "bools"
    INTS = "ints"
    FLOATS = "floats"
    STRS = "strs"

    # Members are singletons compared by identity: the C hash keeps the
    # lookups keyed by type (several per window) off Enum's Python-level
    # `__hash__`.
    __hash__ = object.__hash__

    @property
    def is_list(self) -> bool:
        return self in _ITEM


# A list type's item type.
_ITEM = {
    FeatureType.BOOLS: FeatureType.BOOLEAN,
    FeatureType.INTS: FeatureType.INT,
    FeatureType.FLOATS: FeatureType.FLOAT,
    FeatureType.STRS: FeatureType.STR,
}

_SCALARS: dict[Any, FeatureType] = {
    bool: FeatureType.BOOLEAN,
    int: FeatureType.INT,
    float: FeatureType.FLOAT,
    str: FeatureType.STR,
}

_LISTS = {item: lst for lst, item in _ITEM.items()}


def item_type(list_type: FeatureType) -> FeatureType:
    """The type of a list type's items."""
    return _ITEM[list_type]


@dataclass(frozen=True)
class Feature:
    """One declared feature.

    Make one with :func:`feature`, which reads the type and nullability from
    a Python type.
    """

    name: str
    type: FeatureType
    #: Whether a row may hold ``None`` for it, or leave it out.
    nullable: bool
    #: What it means, for people (catalog comments, the docs).
    description: str = ""


def feature(name: str, python_type: Any, description: str = "") -> Feature:
    """Declare the feature ``name`` whose values are of ``python_type``.

    ``python_type`` is ``bool``, ``int``, ``float``, ``str``, a ``list`` of
    one of them (``list[str]``), or any of these ``| None`` (or
    ``Optional[...]``) when a row may hold ``None`` or leave the feature
    out::

        feature("item_count_30m", int, "Clicks in the window.")
        feature("top_category_30m", str | None, "The category clicked most.")
        feature("items_clicked_30m", list[str], "The items clicked, oldest first.")
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a feature needs a name (got {name!r})")
    nullable, inner = _strip_none(python_type)
    return Feature(name, _feature_type(name, inner), nullable, " ".join(description.split()))


def _strip_none(python_type: Any) -> tuple[bool, Any]:
    """``(nullable, the type without None)`` for ``X | None``/``Optional[X]``."""
    origin = typing.get_origin(python_type)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(python_type) if a is not type(None)]
        if len(args) == 1:
            return True, args[0]
    return False, python_type


def _feature_type(name: str, python_type: Any) -> FeatureType:
    if python_type in _SCALARS:
        return _SCALARS[python_type]
    if typing.get_origin(python_type) is list:
        args = typing.get_args(python_type)
        if len(args) == 1 and args[0] in _SCALARS:
            return _LISTS[_SCALARS[args[0]]]
    raise TypeError(
        f"feature `{name}`: type {python_type!r} is not a feature type (bool, int, float, str, "
        "a list of one of them, or any of these | None)"
    )


def check_declaration(features: list[Feature]) -> list[Feature]:
    """The declaration, checked as the host checks it: named, no name twice."""
    features = list(features)
    seen: set[str] = set()
    for f in features:
        if not isinstance(f, Feature):
            raise TypeError(f"declare features with sluice.feature(...), not {f!r}")
        if f.name in seen:
            raise ValueError(f"feature `{f.name}` is declared twice")
        seen.add(f.name)
    return features
