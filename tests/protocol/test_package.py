"""The ``protocol`` package loads its names on first use, and loses none by doing so."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import protocol
from protocol.errors import known_codes


def _fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing imported yet) and return what it printed."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout.strip()


@pytest.mark.parametrize("name", protocol.__all__)
def test_every_public_name_is_the_defining_modules_object(name: str) -> None:
    defining = importlib.import_module(f"protocol.{protocol._WHERE[name]}")
    assert getattr(protocol, name) is getattr(defining, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="martian"):
        _ = protocol.martian


def test_importing_errors_does_not_import_the_rest_of_the_package() -> None:
    loaded = _fresh("import sys, protocol.errors; "
                    "print(sorted(m for m in sys.modules if m.startswith('protocol')))")
    assert loaded == "['protocol', 'protocol.errors', 'protocol.lazyface']"


def test_raising_shoal_errors_imports_no_msgspec() -> None:
    # A runtime command raises and catches them; only sending one needs its wire form.
    loaded = _fresh("import sys, protocol.errors; print('msgspec' in sys.modules, "
                    "'typing' in sys.modules)")
    assert loaded == "False False"


def test_a_fresh_process_rebuilds_every_protocol_error_from_its_code() -> None:
    # protocol.errors alone registers every class of the protocol's tree: a process that
    # imported nothing else still decodes each code into its own class.
    out = _fresh(
        "from protocol.errors import ErrorInfo, error_from_info, known_codes\n"
        "for code, cls in sorted(known_codes().items()):\n"
        "    assert type(error_from_info(ErrorInfo(code=code))) is cls, code\n"
        "    print(code)")
    ours = [code for code, cls in known_codes().items() if cls.__module__ == "protocol.errors"]
    assert out.split() == sorted(ours)


def test_wire_types_have_no_string_annotations() -> None:
    """Postponed annotations would cost msgspec an eval per field each time a decoder is
    built (a one-shot client builds one per session)."""
    from protocol.errors import ErrorInfo
    from protocol.frames import SessionOptions
    from protocol.limits import SessionLimits
    from protocol.messages import MESSAGE_TYPES
    from protocol.observed import NodeInfo
    from protocol.specs import ContainerSpec

    types = [*MESSAGE_TYPES, ErrorInfo, SessionOptions, SessionLimits, ContainerSpec, NodeInfo]
    strings = {f"{cls.__name__}.{field}" for cls in types
               for field, hint in cls.__annotations__.items() if isinstance(hint, str)}
    assert strings == set()
