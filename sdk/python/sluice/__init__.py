"""Sluice guest SDK for Python.

Write a Sluice transform as a Python function over a window of events,
declare the features it returns next to it, and build the module with
``sluice transform build DIR`` (componentize-py): the host handles Kafka,
event time, watermarks, window state and sinks; the transform only turns
window contents into features. The same transform runs natively in
CPython for tests (:mod:`sluice.testing`).

A window transform::

    import sluice
    from sluice import Window, feature

    @sluice.window_transform(features=[
        feature("item_count", int, "Clicks in the window."),
        feature("distinct_items", int, "Distinct items clicked."),
        feature("items", list[str], "The last 100 items clicked, oldest first."),
        feature("top_category", str | None, "The category clicked most."),
    ])
    def click_features(window: Window) -> dict:
        items = window.strs("item_id")          # fields the manifest declares
        return {
            "item_count": len(window),
            "distinct_items": len(set(items)),
            "items": items[-100:],
            "top_category": None,
        }

An exception raised by the function sends that window's events to the
dead-letter output with the traceback as the message; the pipeline goes
on. Modules get no filesystem, network or clock (``time.time()`` is 0) and
a fixed random seed, so a window gives the same features on every run;
:func:`log` is the one thing they can call. Pure-Python dependencies are
bundled by the build; native extensions (numpy) are not available.
"""

from ._features import FeatureError, Features
from ._log import Level, log
from ._schema import Feature, FeatureType, feature
from ._transform import WindowError, aggregate_transform, registered, window_transform
from ._window import Event, FieldError, Trigger, Window, WindowInfo

__all__ = [
    "Event",
    "Feature",
    "FeatureError",
    "FeatureType",
    "Features",
    "FieldError",
    "Level",
    "Trigger",
    "Window",
    "WindowError",
    "WindowInfo",
    "aggregate_transform",
    "feature",
    "log",
    "registered",
    "window_transform",
]
