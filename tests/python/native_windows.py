"""Run a Python transform natively (the SDK's sluice.testing) on windows
given as JSON lines on stdin ({"key", "start", "end", "trigger",
"events": [{"timestamp": ms, field: value...}]}); print each window's
features (or {"error": message}) as a JSON line, in order.

usage: native_windows.py TRANSFORM_DIR FUNCTION FIELDS
(FIELDS: the declared fields' types as JSON, {"category": "str"}; the SDK
on PYTHONPATH)
"""

import importlib
import json
import sys

from sluice import WindowError
from sluice.testing import run, window


def main(folder: str, function: str, fields: str) -> None:
    sys.path.insert(0, folder)
    transform = getattr(importlib.import_module("transform"), function)
    types = {name: {"str": str, "int": int, "float": float, "bool": bool}[t] for name, t in json.loads(fields).items()}
    for line in sys.stdin:
        w = json.loads(line)
        view = window(w["key"], w["events"], start=w["start"], end=w["end"], trigger=w["trigger"], fields=types)
        try:
            print(json.dumps({"features": run(transform, view)}))
        except WindowError as e:
            print(json.dumps({"error": e.message}))


if __name__ == "__main__":
    main(*sys.argv[1:])
