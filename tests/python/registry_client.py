"""Sluice's schema registry, through confluent-kafka's SchemaRegistryClient.

Run by tests/tests/avro.rs against a `sluice serve` host:

    registry_client.py URL TOKEN first          -> prints the ids it registered
    registry_client.py URL TOKEN restarted IDS  -> checks a restarted host kept them

Every route the client calls is exercised; a failed expectation raises.
"""

import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError


def record(name, fields):
    return Schema(json.dumps({"type": "record", "name": name, "namespace": "shop", "fields": fields}), "AVRO")


def field(name, type_, **default):
    return {"name": name, "type": type_, **({"default": default["default"]} if "default" in default else {})}


CLICK_V1 = record("Click", [field("user_id", "string"), field("item_id", "string"), field("ts", "long")])
CLICK_V2 = record(
    "Click",
    [field("user_id", "string"), field("item_id", "string"), field("ts", "long"),
     field("device_type", ["null", "string"], default=None)],
)
# A field added without a default: data written with v2 cannot be read.
CLICK_V3 = record(
    "Click",
    [field("user_id", "string"), field("item_id", "string"), field("ts", "long"),
     field("device_type", ["null", "string"], default=None), field("country", "string")],
)


def refused(call, status, code):
    try:
        call()
    except SchemaRegistryError as e:
        assert (e.http_status_code, e.error_code) == (status, code), (e.http_status_code, e.error_code, e)
        return e.error_message
    raise AssertionError(f"expected {status}/{code}, it was accepted")


def same_json(a, b):
    return json.loads(a) == json.loads(b)


def first(url, token):
    client = SchemaRegistryClient({"url": url, "basic.auth.user.info": f"any-user:{token}"})
    stranger = SchemaRegistryClient({"url": url, "basic.auth.user.info": "any-user:wrong"})
    refused(lambda: stranger.get_subjects(), 401, 401)

    assert client.get_compatibility() == "BACKWARD"
    assert client.get_schema_types() == ["AVRO"]
    subject = "clicks-value"
    id1 = client.register_schema(subject, CLICK_V1)
    # The same schema again: the same id, no new version; under another
    # subject: the same global id.
    assert client.register_schema(subject, CLICK_V1, normalize_schemas=True) == id1
    assert client.register_schema("mirror-value", CLICK_V1) == id1
    id2 = client.register_schema(subject, CLICK_V2)
    assert id2 != id1
    assert client.get_versions(subject) == [1, 2]
    assert sorted(client.get_subjects()) == ["clicks-value", "mirror-value"]

    latest = client.get_latest_version(subject)
    assert (latest.version, latest.schema_id, latest.subject) == (2, id2, subject)
    one = client.get_version(subject, 1)
    assert one.schema_id == id1 and same_json(one.schema.schema_str, CLICK_V1.schema_str)
    assert client.lookup_schema(subject, CLICK_V1).version == 1
    refused(lambda: client.lookup_schema("mirror-value", CLICK_V2), 404, 40403)
    assert same_json(client.get_schema(id1).schema_str, CLICK_V1.schema_str)
    assert sorted((v.subject, v.version) for v in client.get_schema_versions(id1)) == [
        ("clicks-value", 1), ("mirror-value", 1)]
    assert sorted(client.get_subjects_by_schema_id(id1)) == ["clicks-value", "mirror-value"]

    # BACKWARD refuses v3 (a field without a default), as Confluent's does.
    message = refused(lambda: client.register_schema(subject, CLICK_V3), 409, 40901)
    assert "incompatible" in message, message
    assert client.test_compatibility(subject, CLICK_V3) is False
    assert client.test_compatibility(subject, CLICK_V2) is True
    assert client.test_compatibility_all_versions(subject, CLICK_V3) is False
    refused(lambda: client.register_schema(subject, Schema("{not json", "AVRO")), 422, 42201)
    refused(lambda: client.register_schema(subject, Schema('{"type": "record"}', "AVRO")), 422, 42201)

    levels(client)

    # Configuration, global and per subject.
    # set_compatibility answers the registry's body.
    assert client.set_compatibility(level="FULL") == {"compatibility": "FULL"}
    assert client.get_compatibility() == "FULL"
    client.set_compatibility(level="BACKWARD")
    client.set_compatibility(subject, "NONE")
    assert client.get_compatibility(subject) == "NONE"
    refused(lambda: client.get_compatibility("mirror-value"), 404, 40408)
    refused(lambda: client.set_compatibility(subject, "SIDEWAYS"), 422, 42203)
    client.delete_config(subject)
    refused(lambda: client.get_compatibility(subject), 404, 40408)

    # Modes.
    assert client.get_global_mode() == "READWRITE"
    assert client.update_global_mode("READONLY") == "READONLY"
    refused(lambda: client.register_schema("new-value", CLICK_V1), 422, 42205)
    client.update_global_mode("READWRITE")
    assert client.update_mode("mirror-value", "READONLY") == "READONLY"
    assert client.get_mode("mirror-value") == "READONLY"
    refused(lambda: client.register_schema("mirror-value", CLICK_V2), 422, 42205)
    client.delete_mode("mirror-value")
    refused(lambda: client.get_mode("mirror-value"), 404, 40409)
    refused(lambda: client.update_global_mode("SOMETIMES"), 422, 42204)

    # Deletes: soft, then permanent; what is soft-deleted still shows with
    # deleted=true.
    refused(lambda: client.delete_version(subject, 1, permanent=True), 404, 40407)
    assert client.delete_version(subject, 1) == 1
    refused(lambda: client.delete_version(subject, 1), 404, 40406)
    assert client.get_versions(subject) == [2]
    assert client.get_versions(subject, deleted=True) == [1, 2]
    assert client.delete_version(subject, 1, permanent=True) == 1
    assert client.get_versions(subject, deleted=True) == [2]
    refused(lambda: client.delete_subject("mirror-value", permanent=True), 404, 40405)
    assert client.delete_subject("mirror-value") == [1]
    refused(lambda: client.delete_subject("mirror-value"), 404, 40404)
    assert "mirror-value" not in client.get_subjects()
    assert "mirror-value" in client.get_subjects(deleted=True)
    assert client.delete_subject("mirror-value", permanent=True) == [1]
    assert "mirror-value" not in client.get_subjects(deleted=True)
    # Ids are global and stable: the schema of a deleted version is still
    # served by id.
    assert same_json(client.get_schema(id1).schema_str, CLICK_V1.schema_str)

    refused(lambda: client.get_schema(999_999), 404, 40403)
    refused(lambda: client.get_version(subject, 99), 404, 40402)
    refused(lambda: client.get_versions("nobody-value"), 404, 40401)
    refused(lambda: client.get_version(subject, 0), 422, 42202)
    print(json.dumps({"v1": id1, "v2": id2}))


def levels(client):
    """Each level with a case it accepts and one it refuses, over a
    subject whose history is s1 {a} then s2 {b} (registered under NONE).
    A case is never a version the subject has: that one is found, not
    checked."""
    s1 = [field("a", "string")]
    s2 = [field("b", "string")]
    cases = {
        # The new schema reads the latest version's data.
        "BACKWARD": ([field("c", "string")], s2 + [field("c", "string", default="")]),
        # ... and every version's.
        "BACKWARD_TRANSITIVE": (s2 + [field("c", "string", default="")], [field("c", "string", default="")]),
        # The latest version reads the new schema's data.
        "FORWARD": (s1 + [field("z", "int")], s2 + [field("z", "int")]),
        # ... and every version reads it.
        "FORWARD_TRANSITIVE": (s2 + [field("z", "int")], s1 + s2),
        "FULL": (s2 + [field("c", "string")], s2 + [field("c", "string", default="")]),
        "FULL_TRANSITIVE": (
            s2 + [field("c", "string", default="")],
            [field("a", "string", default=""), field("b", "string", default="")],
        ),
    }
    for level, (refuse, accept) in cases.items():
        subject = f"level-{level.lower()}"
        client.set_compatibility(subject, "NONE")
        client.register_schema(subject, record("R", s1))
        client.register_schema(subject, record("R", s2))
        assert client.set_compatibility(subject, level) == {"compatibility": level}
        refused(lambda: client.register_schema(subject, record("R", refuse)), 409, 40901)
        assert client.test_compatibility(subject, record("R", refuse)) is (level.endswith("TRANSITIVE")), level
        client.register_schema(subject, record("R", accept))
        assert client.get_versions(subject) == [1, 2, 3], level
    # NONE takes an incompatible schema, and refuses only what is not one.
    client.set_compatibility("level-none", "NONE")
    client.register_schema("level-none", record("R", s1))
    client.register_schema("level-none", record("R", [field("z", "int")]))
    refused(lambda: client.register_schema("level-none", Schema('{"type": "nothing"}', "AVRO")), 422, 42201)


def restarted(url, token, ids):
    client = SchemaRegistryClient({"url": url, "basic.auth.user.info": f"any-user:{token}"})
    assert same_json(client.get_schema(ids["v1"]).schema_str, CLICK_V1.schema_str)
    assert same_json(client.get_schema(ids["v2"]).schema_str, CLICK_V2.schema_str)
    assert client.get_latest_version("clicks-value").schema_id == ids["v2"]
    # Registering again finds the same ids; a new schema gets a new one.
    assert client.register_schema("clicks-value", CLICK_V2) == ids["v2"]
    assert client.register_schema("again-value", CLICK_V1) == ids["v1"]
    assert client.register_schema("again-value", CLICK_V2) == ids["v2"]
    fresh = client.register_schema("fresh-value", record("Fresh", [field("x", "int")]))
    assert fresh not in ids.values()
    print(json.dumps({"fresh": fresh}))


if __name__ == "__main__":
    url, token, phase = sys.argv[1:4]
    if phase == "first":
        first(url, token)
    else:
        restarted(url, token, json.loads(sys.argv[4]))
