"""The one thing a module may do besides returning features: send a line to
the host's log. Run natively (tests), lines go to Python's ``logging``."""

from __future__ import annotations

import enum
import logging
from typing import Callable


class Level(enum.Enum):
    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


_PYTHON_LEVELS = {
    Level.TRACE: logging.DEBUG,
    Level.DEBUG: logging.DEBUG,
    Level.INFO: logging.INFO,
    Level.WARN: logging.WARNING,
    Level.ERROR: logging.ERROR,
}


def _to_logging(level: Level, message: str) -> None:
    logging.getLogger("sluice.transform").log(_PYTHON_LEVELS[level], message)


#: Where lines go: the host's log inside a component (set by the
#: component's glue), Python's logging otherwise.
sink: Callable[[Level, str], None] = _to_logging


def log(level: Level | str, message: str) -> None:
    """Send ``message`` to the host's log at ``level`` (a :class:`Level` or
    its name: ``"info"``, ``"warn"``...)."""
    sink(Level(level) if isinstance(level, str) else level, str(message))
