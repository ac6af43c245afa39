"""A Python transform that misbehaves on purpose, for the host's failure
tests (as transforms/misbehave does in Rust). What it does depends on the
window's key:

- `raise`: raises an exception (the traceback must reach the dead letter);
- `loop`: loops forever (the host's deadline must stop it);
- `hog`: asks for a gibibyte, far past the memory limit the tests set
  (the limit must stop it; at once, so that the deadline never gets there
  first, however loaded the machine: a hoard grown a mebibyte at a time
  took 20-40 ms, and once, on a loaded machine, ran past a 500 ms
  deadline);
- `set-order`: returns 50 strings in a set's iteration order (which
  depends on the interpreter's hash seed: the same on every instance and
  run of one build);
- anything else: `{"count": <events>}`.
"""

import sluice
from sluice import Window, feature


def explode(window: Window) -> int:
    return len(window) // (len(window) - len(window))


@sluice.window_transform(
    features=[
        feature("count", int, "Events in the window."),
        feature("set_order", str | None, "50 strings in a set's order (key `set-order` only)."),
    ]
)
def misbehave(window: Window) -> dict:
    if window.key == "raise":
        return {"count": explode(window)}
    if window.key == "loop":
        n = 0
        while True:
            n += 1
    if window.key == "hog":
        return {"count": len(bytearray(1 << 30))}
    if window.key == "set-order":
        return {"count": len(window), "set_order": ",".join({f"s{i}" for i in range(50)})}
    sluice.log("debug", "misbehave: behaving")
    return {"count": len(window)}
