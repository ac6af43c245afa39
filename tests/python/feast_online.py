"""Read a pipeline's features back through Feast, as a model server does.

    feast_online.py REPO VIEW JOIN_KEY FEATURES_JSONL

REPO is a Feast repository `feast apply` took (made by `sluice feast
generate`); FEATURES_JSONL the pipeline's feature rows (its file sink,
written from the same batches as its Redis sink). For every key in the
file, the row Redis should hold is the newest by the Feast layout's time
(the window's end for a row fired on close or a late correction, the
event's time for one fired per event; of rows of the same time, the last
written). `FeatureStore.get_online_features` is asked for every feature of
VIEW for every key (and for a key no row has); each value is compared with
that row's. Prints a summary as JSON: keys and values compared, how many
were null and not, the Python types seen per feature, and the first
mismatches.
"""

import json
import sys

from feast import FeatureStore


def expected(path):
    """The newest row of each key in PATH, by the Feast layout's time."""
    newest = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            time = row["event_time"] if row["trigger"] == "event" else row["window_end"]
            held = newest.get(row["key"])
            if held is None or time >= held[0]:
                newest[row["key"]] = (time, row["features"])
    return newest


def main(repo, view_name, join_key, features_path):
    store = FeatureStore(repo_path=repo)
    view = store.get_feature_view(view_name)
    names = [f.name for f in view.features]
    want = expected(features_path)
    keys = sorted(want, key=str)
    # A key no row has: Feast answers it with every value null.
    absent = -1 if isinstance(keys[0], int) else "nobody-at-all"
    rows = [{join_key: k} for k in keys + [absent]]
    got = store.get_online_features(features=[f"{view_name}:{n}" for n in names], entity_rows=rows).to_dict()

    summary = {"keys": 0, "values": 0, "null": 0, "non_null": 0, "types": {}, "mismatches": [], "absent": None}
    for i, key in enumerate(keys + [absent]):
        if got[join_key][i] != key:
            summary["mismatches"].append({"key": key, "answered_for": got[join_key][i]})
            continue
        if key == absent:
            summary["absent"] = [got[n][i] for n in names]
            continue
        summary["keys"] += 1
        for name in names:
            value, wanted = got[name][i], want[key][1].get(name)
            summary["values"] += 1
            summary["null" if value is None else "non_null"] += 1
            summary["types"].setdefault(name, set()).add(type(value).__name__)
            if value != wanted or type(value) is not type(wanted):
                summary["mismatches"].append({"key": key, "feature": name, "feast": value, "sluice": wanted})
    summary["types"] = {name: sorted(types) for name, types in summary["types"].items()}
    summary["mismatches"] = summary["mismatches"][:10]
    json.dump(summary, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
