"""``worker.runtime.records`` decodes config.json as strictly as msgspec did: for documents
generated from the records' own annotations, then broken (a value of the wrong type, a field
that does not exist, a required field left out), decoding into the records and msgspec's
conversion into structs built from the same annotations accept and refuse the same inputs,
with the same message and path, and read the same values. Keys are matched as Go matches them
(case-insensitively); the JSON codec is the json package's."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.runtime import jsontext, spec
from worker.runtime.errors import BundleInvalid
from worker.runtime.records import (
    _MISSING,
    DecodeFailed,
    Record,
    _Factory,
    _parse,
    _schema,
    decode_into,
    to_builtins,
)

RECORDS = [c for c in vars(spec).values()
           if isinstance(c, type) and issubclass(c, Record) and c is not Record
           and _schema(c).fields]


def _structs() -> dict[type, type[msgspec.Struct]]:
    """A msgspec struct per record of spec.py, from the record's own annotations and options:
    the reference the records are held to, not a second definition."""
    namespace: dict[str, Any] = {}
    made: dict[type, type[msgspec.Struct]] = {}
    # Leaves first: a struct's annotations name the structs of the records it holds.
    pending = list(RECORDS)
    while pending:
        cls = pending.pop(0)
        schema = _schema(cls)
        try:
            fields = []
            for f in schema.fields:
                kind = eval(f.annotation, {}, namespace)
                default = f.default
                if isinstance(default, _Factory):  # a record made afresh: its struct here
                    make = default.make
                    if isinstance(make, type) and issubclass(make, Record):
                        make = namespace[make.__name__]
                    fields.append((f.name, kind, msgspec.field(default_factory=make)))
                elif default is _MISSING:
                    fields.append((f.name, kind))
                else:
                    fields.append((f.name, kind, default))
        except NameError:
            pending.append(cls)
            continue
        options = schema.options
        struct = msgspec.defstruct(
            cls.__name__, fields, rename=options["rename"],
            forbid_unknown_fields=bool(options["forbid_unknown_fields"]),
            omit_defaults=bool(options["omit_defaults"]))
        namespace[cls.__name__] = struct
        made[cls] = struct
    return made


STRUCTS = _structs()

_INT = st.integers(-(2**63), 2**64 - 1)
_TEXT = st.text(max_size=6)
_JSON = st.recursive(st.none() | st.booleans() | _INT | _TEXT,
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=8)


def _valid(kind: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """Values of the type an annotation names (its JSON form)."""
    tag = kind[0]
    if tag == "str":
        return _TEXT
    if tag == "int":
        return _INT
    if tag == "bool":
        return st.booleans()
    if tag == "object":
        return _JSON
    if tag == "opt":
        return st.none() | _valid(kind[1])
    if tag == "list":
        return st.lists(_valid(kind[1]), max_size=2)
    if tag == "dict":
        return st.dictionaries(_TEXT, _valid(kind[1]), max_size=2)
    if tag == "record":
        return _document(kind[1])
    raise AssertionError(kind)


def _document(cls: type[Record]) -> st.SearchStrategy[dict[str, Any]]:
    fields = _schema(cls).fields
    namespace = vars(spec)
    required = {f.key: st.deferred(lambda f=f: _valid(_parse(f.annotation, namespace)))
                for f in fields if f.default is _MISSING}
    optional = {f.key: st.deferred(lambda f=f: _valid(_parse(f.annotation, namespace)))
                for f in fields if f.default is not _MISSING}
    return st.fixed_dictionaries(required, optional=optional)


@st.composite
def _broken(draw: st.DrawFn, cls: type[Record]) -> dict[str, Any]:
    """A document of ``cls``, perhaps with one object somewhere in it broken."""
    doc = draw(_document(cls))
    objects = [doc]
    stack = [doc]
    while stack:  # every object in the document, any of which may be broken
        node = stack.pop()
        for value in (node.values() if isinstance(node, dict) else node):
            if isinstance(value, (dict, list)):
                stack.append(value)
                if isinstance(value, dict):
                    objects.append(value)
    how = draw(st.sampled_from(["keep", "retype", "unknown", "drop"]))
    target = draw(st.sampled_from(objects))
    if how == "retype" and target:
        key = draw(st.sampled_from(sorted(target)))
        target[key] = draw(_JSON)
    elif how == "unknown":
        target[draw(st.sampled_from(["bogus", "x_y", "Zz"]))] = draw(_JSON)
    elif how == "drop" and target:
        del target[draw(st.sampled_from(sorted(target)))]
    return doc


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_records_accept_and_refuse_as_msgspec_does(cls: type[Record], data: st.DataObject) -> None:
    doc = data.draw(_broken(cls))
    struct = STRUCTS[cls]
    try:
        expected = msgspec.convert(json.loads(json.dumps(doc)), struct)
    except msgspec.ValidationError as exc:
        with pytest.raises(DecodeFailed) as refused:
            decode_into(cls, doc)
        assert str(refused.value) == str(exc)  # noqa: PT017 - the reference's message
    else:  # the same values: the record, written back, is the struct msgspec read
        assert msgspec.convert(to_builtins(decode_into(cls, doc)), struct) == expected


def test_a_whole_config_reads_as_msgspec_reads_it() -> None:
    from tests.helpers.runtime_harness import base_config

    config = base_config(["sh", "-c", "true"])
    data = json.dumps(config).encode()
    struct = STRUCTS[spec.Spec]
    assert msgspec.convert(to_builtins(spec.decode_spec(data)), struct) == msgspec.json.decode(
        data, type=struct)


@pytest.mark.parametrize(("doc", "field", "reason"), [
    ({"ociVersion": "1", "process": {"user": {"uid": "0"}}}, "process.user.uid",
     "Expected `int`, got `str`"),
    ({"ociVersion": "1", "mounts": [{}]}, "mounts[0].destination",
     "Object missing required field `destination`"),
    ({"ociVersion": "1", "linux": {"bogus": 1}}, "linux.bogus",
     "Object contains unknown field `bogus`"),
    ({"ociVersion": "1", "linux": {"sysctl": {"a": 1}}}, "linux.sysctl[...]",
     "Expected `str`, got `int`"),
    ({"ociVersion": "1", "annotations": None}, "annotations", "Expected `object`, got `null`"),
    ({}, "ociVersion", "Object missing required field `ociVersion`"),
])
def test_a_bad_config_is_one_line_naming_the_field(doc: dict[str, Any], field: str,
                                                   reason: str) -> None:
    with pytest.raises(BundleInvalid) as refused:
        spec.decode_spec(json.dumps(doc).encode())
    assert (refused.value.field, refused.value.reason) == (field, reason)


@pytest.mark.parametrize("text", [b"", b"{", b"[1] 2", b'{"ociVersion": NaN}', b"\xff",
                                  b'{"ociVersion": Infinity}'])
def test_what_is_not_json_is_refused_as_such(text: bytes) -> None:
    with pytest.raises(BundleInvalid) as refused:
        spec.decode_spec(text)
    assert refused.value.field == "config.json"
    assert refused.value.reason.startswith("not valid JSON")


def test_keys_match_as_go_matches_them() -> None:
    doc = {"OCIVERSION": "1", "Linux": {"Resources": {"CPU": {"Shares": 5}, "BlockIO": {
        "Weight": 10}, "Memory": {"kernelTCP": 1}}}}
    decoded = spec.decode_spec(json.dumps(doc).encode())
    assert decoded.linux is not None and decoded.linux.resources is not None
    resources = decoded.linux.resources
    assert resources.cpu is not None and resources.cpu.shares == 5
    assert resources.block_IO is not None and resources.block_IO.weight == 10
    assert resources.memory is not None and resources.memory.kernel_TCP == 1


@given(value=_JSON)
def test_jsontext_reads_and_writes_what_json_does(value: Any) -> None:
    text = json.dumps(value)
    assert jsontext.loads(text) == json.loads(text)
    assert jsontext.dumps(value) == json.dumps(value, separators=(",", ":"))
    assert jsontext.dumps(value, indent=2) == json.dumps(value, indent=2)


def test_jsontext_refuses_what_is_not_json() -> None:
    for text in ["", "{", "[1] 2", "NaN", "[Infinity]", '{"a": }']:
        with pytest.raises(ValueError):  # noqa: PT011 - which ValueError is json's to say
            jsontext.loads(text)
    with pytest.raises(ValueError, match="Out of range"):
        jsontext.dumps(math.nan)
