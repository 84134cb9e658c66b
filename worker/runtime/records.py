"""Record classes for the runtime: fields declared as class annotations, and strict decoding of
JSON-shaped data (what ``json.loads`` returns) into them by those annotations.

A runtime command runs once per container operation, and what it imports is most of what it
costs: dataclasses (with inspect) and msgspec (with typing) cost more than the container. A
``Record`` subclass gets an ``__init__`` taking its fields by position or name, equality,
``repr`` and ``replace`` from one generic implementation, with nothing generated per class.
``decode`` refuses unknown fields (or ignores them, as the class says), wrong types and missing
fields with the JSON path of the offending one and msgspec's wording (``Expected `int`, got
`str```), and matches keys case-insensitively where the class folds case (as Go's
encoding/json does for runc). ``to_builtins`` is the way back to JSON.

The annotations are read as text (postponed annotations), on first use: ``int``, ``str``,
``bool``, ``float``, ``bytes`` (base64 text in JSON), ``object`` (any JSON value),
``list[X]``, ``dict[str, X]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``X | None`` and record
classes named in the defining module.
"""

from __future__ import annotations

import sys

from worker.runtime import jsontext

TYPE_CHECKING = False  # typing costs a runtime command milliseconds to import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform

    T = TypeVar("T")
    R = TypeVar("R", bound="Record")
else:
    def dataclass_transform(**_kwargs: object) -> Callable[[type], type]:
        return lambda cls: cls

_MISSING = object()


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A field whose default is made by ``default_factory`` for each record."""
    return _Factory(default_factory)  # type: ignore[return-value]


class DecodeFailed(ValueError):
    """``doc`` does not fit the record: ``path`` names the offending field
    (``process.user.uid``, ``mounts[0].destination``, ``linux.sysctl[...]``; an unknown or
    missing field's own name included; empty for the document itself), ``reason`` what is
    wrong. The message is msgspec's: the reason, and the path of the object that has it."""

    def __init__(self, path: str, reason: str, *, key: str | None = None) -> None:
        super().__init__(f"{reason} - at `${path}`" if path else reason)
        self.path = (f"{path}.{key}" if key is not None else path).lstrip(".")
        self.reason = reason


class _Field:
    __slots__ = ("annotation", "default", "exact", "key", "kind", "name", "nullable")

    def __init__(self, name: str, key: str, annotation: str, default: object) -> None:
        self.name = name
        self.key = key
        self.annotation = annotation
        self.default = default
        # Set on first decode: the parsed annotation; for str, int and bool (or one of them |
        # None), the type a JSON value must have, checked inline; whether None is accepted.
        self.kind: tuple[Any, ...] = ()
        self.exact: type | None = None
        self.nullable = False

    def fresh_default(self) -> object:
        d = self.default
        if type(d) is list:
            return list(d)
        if type(d) is dict:
            return dict(d)
        if type(d) is _Factory:
            return d.make()
        return d


class _Schema:
    __slots__ = ("by_key", "by_name", "defaults", "fields", "folded", "fresh", "options",
                 "ready", "required")

    def __init__(self, fields: list[_Field], options: dict[str, object]) -> None:
        self.fields = fields
        self.by_name = {f.name: f for f in fields}
        self.by_key = {f.key: f for f in fields}
        self.folded = {f.key.lower(): f for f in fields}
        self.options = options
        # For decoding: the defaults shared as they are (immutable), the fields whose default
        # is made afresh for each record, the fields without a default.
        self.defaults = {f.name: f.default for f in fields
                         if f.default is not _MISSING and type(f.default) not in _FRESH}
        self.fresh = [f for f in fields if type(f.default) in _FRESH]
        self.required = [f for f in fields if f.default is _MISSING]
        self.ready = False  # the annotations are parsed on first decode


def camel_key(name: str) -> str:
    """msgspec's ``rename="camel"`` (``kernel_TCP`` is ``kernelTcp``: folding takes Go's
    ``kernelTCP``)."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


_SCHEMAS: dict[type, _Schema] = {}
_FRESH = (list, dict, _Factory)


def prepare(*classes: type[Record]) -> None:
    """Build the classes' schemas now rather than at their first use: a process that forks
    children which construct them builds each schema once for all of them."""
    for cls in classes:
        _schema(cls)


def _schema(cls: type[Record]) -> _Schema:
    found = _SCHEMAS.get(cls)
    if found is not None:
        return found
    options: dict[str, object] = cls._record_options
    annotations: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is not Record and issubclass(klass, Record):
            # Not inspect.get_annotations: inspect costs milliseconds to import.
            own = klass.__dict__.get("__annotations__", {})  # noqa: RUF063
            annotations.update({k: v for k, v in own.items() if not k.startswith("_")})
    fields = []
    for name, annotation in annotations.items():
        if annotation.startswith("ClassVar"):
            continue
        key = camel_key(name) if options["rename"] == "camel" else name
        fields.append(_Field(name, key, annotation, getattr(cls, name, _MISSING)))
    schema = _SCHEMAS[cls] = _Schema(fields, options)
    return schema


@dataclass_transform(field_specifiers=(field,), frozen_default=True)
class Record:
    """Base of the runtime's record classes. Class keywords: ``frozen`` (for the type checker;
    default True), ``rename`` ("camel": JSON keys are the camelCase of the field names),
    ``forbid_unknown_fields`` (decode refuses keys it does not know, default False),
    ``omit_defaults`` (``to_builtins`` leaves out fields at their default), ``fold_case``
    (decode matches a key no field has exactly case-insensitively, as Go does)."""

    _record_options: dict[str, object] = {
        "rename": None, "forbid_unknown_fields": False, "omit_defaults": False,
        "fold_case": False}

    def __init_subclass__(cls, *, frozen: bool = True, rename: str | None = None,
                          forbid_unknown_fields: bool | None = None,
                          omit_defaults: bool | None = None, fold_case: bool | None = None,
                          **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        options = dict(cls._record_options)
        given = {"rename": rename, "forbid_unknown_fields": forbid_unknown_fields,
                 "omit_defaults": omit_defaults, "fold_case": fold_case}
        options.update({k: v for k, v in given.items() if v is not None})
        cls._record_options = options

    def __init__(self, *args: object, **kwargs: object) -> None:
        schema = _SCHEMAS.get(type(self)) or _schema(type(self))
        fields = schema.fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} fields, "
                            f"got {len(args)} positional arguments")
        values = dict(schema.defaults)
        for f, value in zip(fields, args, strict=False):
            if f.name in kwargs:
                raise TypeError(f"{type(self).__name__}: {f.name!r} given twice")
            values[f.name] = value
        if kwargs:
            if not kwargs.keys() <= schema.by_name.keys():
                unknown = sorted(kwargs.keys() - schema.by_name.keys())
                raise TypeError(f"{type(self).__name__} has no field {unknown[0]!r}")
            values.update(kwargs)
        if len(values) < len(fields):
            for f in schema.fresh:
                if f.name not in values:
                    values[f.name] = f.fresh_default()
            for f in schema.required:
                if f.name not in values:
                    raise TypeError(f"{type(self).__name__}: missing field {f.name!r}")
        self.__dict__ = values

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        values = self.__dict__
        return hash((type(self), *(values[f.name] for f in _schema(type(self)).fields)))

    def __repr__(self) -> str:
        values = self.__dict__
        inner = ", ".join(f"{f.name}={values[f.name]!r}" for f in _schema(type(self)).fields)
        return f"{type(self).__name__}({inner})"

    def replace(self: R, **changes: object) -> R:
        """A copy with ``changes`` (field names) applied."""
        by_name = _schema(type(self)).by_name
        for name in changes:
            if name not in by_name:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new


# --- decoding ------------------------------------------------------------------------------

def _split_outside_brackets(text: str, separator: str) -> list[str]:
    """``text`` split at each ``separator`` (a character) that is outside brackets."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == separator and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


_SCALARS = {"int", "str", "bool", "float", "bytes", "object", "None"}


def _parse(annotation: str, namespace: dict[str, object]) -> tuple[Any, ...]:
    """An annotation's text as a kind: ("int",), ("list", item), ("opt", inner), ..."""
    text = annotation.strip()
    members = _split_outside_brackets(text, "|")
    if len(members) > 1:
        inner = [m for m in members if m != "None"]
        if len(inner) != 1 or len(members) != 2:
            raise TypeError(f"unsupported annotation {annotation!r}")
        return ("opt", _parse(inner[0], namespace))
    if text in _SCALARS:
        return (text,)
    head, bracket, rest = text.partition("[")
    if bracket:
        args = _split_outside_brackets(rest[:-1], ",")
        if head == "list":
            return ("list", _parse(args[0], namespace))
        if head == "dict":
            return ("dict", _parse(args[1], namespace))
        if head == "tuple":
            if len(args) == 2 and args[1] == "...":
                return ("list", _parse(args[0], namespace))
            return ("tuple", tuple(_parse(a, namespace) for a in args))
        raise TypeError(f"unsupported annotation {annotation!r}")
    target = namespace.get(text)
    if isinstance(target, type) and issubclass(target, Record):
        return ("record", target)
    raise TypeError(f"unsupported annotation {annotation!r}")


def _prepare(cls: type[Record], schema: _Schema) -> None:
    """Parse the annotations of ``cls``'s fields (names resolved in its module)."""
    namespace = vars(sys.modules[cls.__module__])
    for f in schema.fields:
        f.kind = _parse(f.annotation, namespace)
        inner = f.kind[1] if f.kind[0] == "opt" else f.kind
        f.nullable = f.kind[0] == "opt"
        f.exact = {"str": str, "int": int, "bool": bool}.get(inner[0])
    schema.ready = True


if TYPE_CHECKING:
    # A path in the document, made text only when an error names it: (parent, ".key" or
    # "[i]"), None for the document itself.
    Path = tuple[Any, str] | None


def _text(path: Path) -> str:
    pieces = []
    while path is not None:
        path, piece = path
        pieces.append(piece)
    return "".join(reversed(pieces))


_JSON_NAMES = {dict: "object", list: "array", str: "str", bool: "bool", int: "int",
               float: "float", type(None): "null"}


def _expected(kind: tuple[Any, ...]) -> str:
    tag = kind[0]
    if tag == "opt":
        return f"{_expected(kind[1])} | null"
    return str({"list": "array", "tuple": "array", "dict": "object", "record": "object",
                "bytes": "str", "None": "null"}.get(tag, tag))


def _mismatch(kind: tuple[Any, ...], value: object, path: Path) -> DecodeFailed:
    return DecodeFailed(_text(path), f"Expected `{_expected(kind)}`, got "
                              f"`{_JSON_NAMES.get(type(value), type(value).__name__)}`")


# The JSON type a kind's value must have (float and object take more than one).
_JSON_TYPES = {"str": str, "int": int, "bool": bool, "list": list, "tuple": list, "dict": dict,
               "record": dict, "bytes": str}


def _value(kind: tuple[Any, ...], value: object, path: Path) -> object:
    tag = kind[0]
    t = type(value)
    if tag == "str":
        if t is str:
            return value
    elif tag == "int":
        if t is int:
            return value
    elif tag == "bool":
        if t is bool:
            return value
    elif tag == "list":
        if t is list:
            item = kind[1]
            assert isinstance(value, list)
            exact = _JSON_TYPES.get(item[0]) if item[0] in ("str", "int", "bool") else None
            if exact is not None:
                if set(map(type, value)) <= {exact}:  # the common case, at C speed
                    return value
                for i, v in enumerate(value):
                    if type(v) is not exact:
                        raise _mismatch(item, v, (path, f"[{i}]"))
            return [_value(item, v, (path, f"[{i}]")) for i, v in enumerate(value)]
    elif tag == "opt":
        if value is None:
            return None
        inner = kind[1]
        if inner[0] in _JSON_TYPES and t is not _JSON_TYPES[inner[0]]:
            raise _mismatch(kind, value, path)  # "Expected `int | null`", as msgspec says
        return _value(inner, value, path)
    elif tag == "record":
        if t is dict:
            return decode_into(kind[1], value, path)
    elif tag == "dict":
        if t is dict:
            assert isinstance(value, dict)
            item = kind[1]
            if item[0] == "str":
                for v in value.values():
                    if type(v) is not str:
                        raise _mismatch(item, v, (path, "[...]"))
                return value
            return {k: _value(item, v, (path, "[...]")) for k, v in value.items()}
    elif tag == "tuple":
        if t is list:
            assert isinstance(value, list)
            items = kind[1]
            if len(value) != len(items):
                raise DecodeFailed(_text(path), f"Expected `array` of length {len(items)}, "
                                                f"got {len(value)}")
            return tuple(_value(k, v, (path, f"[{i}]"))
                         for i, (k, v) in enumerate(zip(items, value, strict=True)))
    elif tag == "object":
        return value
    elif tag == "float":
        if t is float or t is int:
            return float(value)  # type: ignore[arg-type]
    elif tag == "bytes":
        if t is str:
            import binascii

            assert isinstance(value, str)
            try:
                return binascii.a2b_base64(value)
            except binascii.Error:
                raise DecodeFailed(_text(path), "Invalid base64 encoded string") from None
    elif tag == "None" and value is None:
        return None
    raise _mismatch(kind, value, path)


def decode_into(cls: type[R], doc: object, path: Path = None) -> R:
    """``doc`` (a JSON object, as ``json.loads`` returns it) as a ``cls``; DecodeFailed says
    where and what does not fit. (The worker's helper decodes every config.json with this:
    the common case, a value of the declared scalar type, is checked inline.)"""
    if type(doc) is not dict:
        raise _mismatch(("record", cls), doc, path)
    assert isinstance(doc, dict)
    schema = _SCHEMAS.get(cls) or _schema(cls)
    if not schema.ready:
        _prepare(cls, schema)
    by_key = schema.by_key
    values = dict(schema.defaults)
    for key, raw in doc.items():
        f = by_key.get(key)
        if f is None:
            if schema.options["fold_case"] and type(key) is str:
                f = schema.folded.get(key.lower())
            if f is None:
                if schema.options["forbid_unknown_fields"]:
                    raise DecodeFailed(_text(path), f"Object contains unknown field `{key}`",
                                       key=str(key))
                continue
        if type(raw) is f.exact or (raw is None and f.nullable):
            values[f.name] = raw
        else:
            values[f.name] = _value(f.kind, raw, (path, "." + f.key))
    for f in schema.fresh:
        if f.name not in values:
            values[f.name] = f.fresh_default()
    for f in schema.required:
        if f.name not in values:
            raise DecodeFailed(_text(path), f"Object missing required field `{f.key}`",
                               key=f.key)
    record = object.__new__(cls)
    record.__dict__ = values
    return record


def loads(data: bytes | str) -> object:
    """JSON text as Python values; ValueError if it is not JSON (NaN and Infinity are not)."""
    return jsontext.loads(data)


def decode_json(cls: type[R], data: bytes) -> R:
    """``data`` (JSON text) as a ``cls``; ValueError if it is not JSON, DecodeFailed (a
    ValueError too) if it does not fit."""
    return decode_into(cls, loads(data))


# --- encoding ------------------------------------------------------------------------------

_AS_IS = {str, int, bool, float, type(None)}


def to_builtins(value: object) -> Any:
    """``value`` with every record as a dict of its JSON keys (fields at their default left
    out where the class says so), tuples as lists and bytes as base64 text."""
    if isinstance(value, Record):
        schema = _schema(type(value))
        omit = schema.options["omit_defaults"]
        out = {}
        values = value.__dict__
        for f in schema.fields:
            v = values[f.name]
            d = f.default  # (what a factory made is written, as msgspec writes it)
            if omit and d is not _MISSING and type(d) is not _Factory and v == d:
                continue
            out[f.key] = v if type(v) in _AS_IS else to_builtins(v)
        return out
    t = type(value)
    if t is list or t is tuple:
        assert isinstance(value, (list, tuple))
        return [to_builtins(v) for v in value]
    if t is dict:
        assert isinstance(value, dict)
        return {k: to_builtins(v) for k, v in value.items()}
    if t is bytes:
        import binascii

        assert isinstance(value, bytes)
        return binascii.b2a_base64(value, newline=False).decode()
    return value


def encode_json(value: object) -> bytes:
    """``value`` as compact JSON text (as msgspec wrote the same records)."""
    return jsontext.dumps(to_builtins(value)).encode()


def field_keys(cls: type[Record]) -> list[str]:
    """The JSON keys of ``cls``'s fields, in declaration order."""
    return [f.key for f in _schema(cls).fields]
