"""Build a Python transform into a Sluice module (a WebAssembly component)
with componentize-py::

    python -m sluice.build transforms/session-features-python --out session-features-python.wasm

The folder holds ``transform.py`` (the module that registers the transform)
and may hold ``vendor/``, pure-Python dependencies installed there with
``pip install --target vendor PACKAGE``; they are bundled. Native
extensions (numpy) cannot be: no WASI builds of them are published.

componentize-py runs the module once at build time and keeps the
interpreter's state (imports done, hash seed drawn) in the component, so
every instance of one build starts from the same state: ``set`` iteration
order and ``hash()`` are the same on every worker and after every restart.
``sluice transform build DIR`` runs this with the SDK and contract the host
binary carries.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ._transform import ENTRY_MODULE

_ENTRY = """\
# Written by sluice.build: the component's entry point.
import {module}  # noqa: F401 (registers the transform)
from sluice._component import AggregateTransform, Guest, WindowTransform  # noqa: F401
"""


class BuildError(Exception):
    pass


def _componentize_py(given: str | None) -> str:
    if given:
        return given
    # Installed beside this interpreter (a virtualenv's bin/), else on PATH.
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("componentize-py")
    if found is None:
        raise BuildError("componentize-py is not installed: pip install componentize-py==0.25.1")
    return found


def _default_wit() -> Path:
    # In a Sluice checkout: sdk/python/sluice/build.py -> sdk/wit.
    return Path(__file__).resolve().parents[2] / "wit"


def build(folder: Path, out: Path, wit: Path | None = None, componentize_py: str | None = None) -> Path:
    """Build ``folder`` into the component ``out``; the path written."""
    folder = folder.resolve()
    if not (folder / f"{ENTRY_MODULE}.py").is_file():
        raise BuildError(f"{folder} has no {ENTRY_MODULE}.py (the module that registers the transform)")
    wit = (wit or _default_wit()).resolve()
    if not wit.exists():
        raise BuildError(f"the contract {wit} is not there: give it with --wit")
    sdk = Path(__file__).resolve().parents[1]
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sluice-build-") as tmp:
        entry = Path(tmp) / "sluice_entry.py"
        entry.write_text(_ENTRY.format(module=ENTRY_MODULE))
        paths = [tmp, str(folder), str(sdk)]
        if (folder / "vendor").is_dir():
            paths.append(str(folder / "vendor"))
        command = [_componentize_py(componentize_py), "-q", "-d", str(wit), "-w", "transform", "componentize"]
        for p in paths:
            command += ["-p", p]
        command += ["sluice_entry", "-o", str(out)]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"componentize-py failed ({done.returncode}):\n{done.stderr.strip() or done.stdout.strip()}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sluice.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the transform's folder (holding transform.py)")
    parser.add_argument("--out", type=Path, help="the component to write (default: FOLDER/NAME.wasm)")
    parser.add_argument("--wit", type=Path, help="the contract's WIT folder (default: the checkout's sdk/wit)")
    parser.add_argument("--componentize-py", dest="componentize_py", help="the componentize-py command")
    args = parser.parse_args(argv)
    out = args.out or args.folder / f"{args.folder.resolve().name}.wasm"
    try:
        written = build(args.folder, out, args.wit, args.componentize_py)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"built {written} ({written.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
