"""The module's transform: declared with a decorator, registered once per
module, and evaluated one window (or accumulator group) at a time, an
exception becoming that window's error with its traceback."""

from __future__ import annotations

import pickle
import traceback
from typing import Any, Callable, Optional, Sequence, TypeVar

from ._features import Cell, Declaration, FeatureError
from ._schema import Feature, check_declaration
from ._window import Event, Window, WindowInfo

#: The module of a transform's folder that registers the transform (the
#: build imports it).
ENTRY_MODULE = "transform"

#: Longest error message a window carries to the dead letters: the end of
#: the traceback (where the exception is) is kept.
MAX_ERROR_CHARS = 8_000


#: What user code may raise that is that window's error (`sys.exit()` too:
#: it must not end the module).
USER_ERRORS = (Exception, SystemExit)


class WindowError(Exception):
    """A window (or an accumulator group) the transform could not turn into
    features: its input goes to the dead-letter output with this message."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _error(e: BaseException) -> WindowError:
    """The message of an exception raised by user code: the traceback
    without the SDK's own frame, or just the message for a row the
    declaration refuses."""
    if isinstance(e, (FeatureError, WindowError)):
        return WindowError(str(e))
    # The first frame is the SDK's call into the user's code.
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
    text = "".join(traceback.format_exception(type(e), e, tb))
    if len(text) > MAX_ERROR_CHARS:
        text = "…" + text[-MAX_ERROR_CHARS:]
    return WindowError(text.rstrip())


class WindowTransform:
    """A function over a window, as registered by :func:`window_transform`."""

    kind = "window"

    def __init__(self, function: Callable[[Window], Any], features: Sequence[Feature]):
        self.function = function
        self.declaration = Declaration(check_declaration(list(features)))

    @property
    def features(self) -> list[Feature]:
        return self.declaration.features

    def evaluate(self, window: Window) -> list[Cell]:
        """The window's checked features; :class:`WindowError` otherwise."""
        try:
            result = self.function(window)
        except USER_ERRORS as e:
            raise _error(e) from None
        return _checked(self.declaration, result)


class AggregateTransform:
    """A class with ``create``/``add``/``merge``/``finish``, as registered by
    :func:`aggregate_transform`; ``encode``/``decode`` (accumulator to
    bytes and back) default to :mod:`pickle`."""

    kind = "aggregate"

    def __init__(self, cls: type, features: Sequence[Feature]):
        missing = [m for m in ("create", "add", "merge", "finish") if not callable(getattr(cls, m, None))]
        if missing:
            raise TypeError(f"aggregate transform {cls.__name__} has no {', '.join(missing)} method")
        self.cls = cls
        self.instance = cls()
        self.declaration = Declaration(check_declaration(list(features)))

    @property
    def features(self) -> list[Feature]:
        return self.declaration.features

    def encode(self, acc: Any) -> bytes:
        encode = getattr(self.instance, "encode", None)
        if encode is not None:
            return bytes(encode(acc))
        # Protocol pinned: the bytes are kept in checkpoints, and read back
        # by later builds of the module.
        return pickle.dumps(acc, protocol=4)

    def decode(self, data: bytes) -> Any:
        decode = getattr(self.instance, "decode", None)
        if decode is not None:
            return decode(data)
        return pickle.loads(data)

    def add(self, acc: Optional[bytes], events: Sequence[Event]) -> bytes:
        """Fold ``events`` into the accumulator ``acc`` (a new one when
        ``None``), as bytes."""
        try:
            value = self.instance.create() if acc is None else self.decode(acc)
            add = self.instance.add
            for event in events:
                folded = add(value, event)
                # `add` may fold in place and return nothing.
                if folded is not None:
                    value = folded
            return self.encode(value)
        except USER_ERRORS as e:
            raise _error(e) from None

    def merge(self, accs: Sequence[bytes]) -> bytes:
        """One accumulator of several."""
        try:
            values = [self.decode(a) for a in accs]
            if not values:
                return self.encode(self.instance.create())
            merged = values[0]
            for other in values[1:]:
                result = self.instance.merge(merged, other)
                if result is not None:
                    merged = result
            return self.encode(merged)
        except USER_ERRORS as e:
            raise _error(e) from None

    def finish(self, acc: bytes, window: WindowInfo) -> list[Cell]:
        """The checked features of a window whose accumulator is ``acc``."""
        try:
            result = self.instance.finish(self.decode(acc), window)
        except USER_ERRORS as e:
            raise _error(e) from None
        return _checked(self.declaration, result)


def _checked(declaration: Declaration, result: Any) -> list[Cell]:
    """A result of user code as checked cells: a row that breaks the
    declaration is that window's error."""
    try:
        return declaration.row(result)
    except FeatureError as e:
        raise WindowError(str(e)) from None


Transform = WindowTransform | AggregateTransform

_registered: list[Transform] = []


def _register(transform: Transform, decorated: Any) -> Any:
    """Register the module's transform; ``decorated`` (the function or
    class) is returned as it was, with the transform as its
    ``sluice_transform`` (for :func:`sluice.testing.run`)."""
    if _registered:
        raise RuntimeError("a module holds one transform: this one is its second")
    _registered.append(transform)
    decorated.sluice_transform = transform
    return decorated


def registered() -> Transform:
    """The module's transform."""
    if not _registered:
        raise RuntimeError(
            "no transform registered: decorate a function with @sluice.window_transform or a class with "
            "@sluice.aggregate_transform"
        )
    return _registered[0]


F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


def window_transform(*, features: Sequence[Feature]) -> Callable[[F], F]:
    """Make ``function(window) -> dict | Features`` this module's transform,
    whose rows hold ``features`` (see :func:`sluice.feature`).

    An exception raised by the function sends that window's events to the
    dead-letter output, with the traceback as its message; the pipeline
    goes on. The function is returned unchanged, so tests can call it.
    """

    def register(function: F) -> F:
        return _register(WindowTransform(function, features), function)

    return register


def aggregate_transform(*, features: Sequence[Feature]) -> Callable[[C], C]:
    """Make a class this module's aggregate transform, whose rows hold
    ``features``.

    The host keeps one accumulator per slice of a window and merges them
    when the window fires, so each event is folded once however many
    sliding windows overlap it. The class has:

    - ``create(self)``: a new, empty accumulator;
    - ``add(self, acc, event)``: fold one :class:`sluice.Event` in (return
      the new accumulator, or ``None`` after changing ``acc`` in place);
    - ``merge(self, acc, other)``: fold ``other`` into ``acc`` (same);
    - ``finish(self, acc, window)``: the features of a window
      (:class:`sluice.WindowInfo`) whose accumulator is ``acc``;
    - optionally ``encode(self, acc) -> bytes`` and ``decode(self, data)``:
      the host stores accumulators as bytes, in its state and checkpoints
      (default: :mod:`pickle`).
    """

    def register(cls: C) -> C:
        return _register(AggregateTransform(cls, features), cls)

    return register
