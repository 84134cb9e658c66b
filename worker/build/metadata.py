"""The instructions that change only the image config (ENV, LABEL, WORKDIR, USER, CMD,
ENTRYPOINT, EXPOSE, VOLUME, STOPSIGNAL, SHELL, HEALTHCHECK, MAINTAINER): each a pure function
from the stage's state and the instruction to the next state, with Docker's rules."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import replace

from worker.build.dockerfile import Instruction
from worker.build.errors import DockerfileError
from worker.build.shellwords import SubstitutionError, expand_word, expand_words, split_raw
from worker.build.state import StageState
from worker.images.oci import ImageHealthcheck

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}
METADATA = frozenset({"ENV", "LABEL", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "EXPOSE",
                      "VOLUME", "STOPSIGNAL", "SHELL", "HEALTHCHECK", "MAINTAINER"})


def fail(ins: Instruction, message: str, file: str) -> DockerfileError:
    return DockerfileError(message, line=ins.line, file=file)


def expand(ins: Instruction, text: str, env: Mapping[str, str], escape: str, file: str) -> str:
    try:
        return expand_word(text, env, escape)
    except SubstitutionError as exc:
        raise fail(ins, f"{ins.keyword}: {exc}", file) from exc


def words(ins: Instruction, env: Mapping[str, str], escape: str, file: str) -> list[str]:
    if ins.exec_form is not None:
        return [expand(ins, w, env, escape, file) for w in ins.exec_form]
    try:
        return expand_words(ins.text, env, escape)
    except SubstitutionError as exc:
        raise fail(ins, f"{ins.keyword}: {exc}", file) from exc


def pairs(ins: Instruction, env: Mapping[str, str], escape: str,
          file: str) -> list[tuple[str, str]]:
    """``key=value ...`` or the legacy ``key value`` form of ENV and LABEL."""
    raw = split_raw(ins.text, escape)
    if raw and "=" not in raw[0]:
        if len(raw) < 2:
            raise fail(ins, f"{ins.keyword} {raw[0]}: a value is needed ({ins.keyword} "
                       "key=value)", file)
        rest = ins.text[len(raw[0]):].strip()
        return [(raw[0], expand(ins, rest, env, escape, file))]
    found = []
    for word in raw:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise fail(ins, f"{ins.keyword}: {word!r} is not key=value", file)
        found.append((expand(ins, key, env, escape, file), expand(ins, value, env, escape, file)))
    return found


def parse_duration(ins: Instruction, flag: str, text: str, file: str) -> int:
    """A Go duration (``30s``, ``1m30s``) in nanoseconds."""
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise fail(ins, f"HEALTHCHECK --{flag}={text}: not a duration (like 30s or 1m30s)", file)
    return int(total)


def apply(state: StageState, ins: Instruction, env: Mapping[str, str], escape: str,
          file: str, cmd_set: bool) -> StageState:
    """The state after the metadata instruction ``ins``; ``env`` is what substitution sees."""
    match ins.keyword:
        case "ENV":
            return state.with_env(pairs(ins, env, escape, file))
        case "LABEL":
            labels = dict(state.config.labels or {})
            labels.update(pairs(ins, env, escape, file))
            return state.with_config(labels=labels)
        case "MAINTAINER":
            return replace(state, author=ins.text)
        case "WORKDIR":
            path = expand(ins, ins.text, env, escape, file)
            base = state.config.working_dir or "/"
            return state.with_config(working_dir=posixpath.normpath(posixpath.join(base, path)))
        case "USER":
            return state.with_config(user=expand(ins, ins.text, env, escape, file))
        case "CMD":
            return state.with_config(cmd=_command(state, ins))
        case "ENTRYPOINT":
            entry = _command(state, ins) if ins.text else None
            # An ENTRYPOINT drops a CMD inherited from the base, not one this stage set.
            return state.with_config(entrypoint=entry or None,
                                     cmd=state.config.cmd if cmd_set else None)
        case "EXPOSE":
            ports = dict(state.config.exposed_ports or {})
            for word in words(ins, env, escape, file):
                port = word if "/" in word else f"{word}/tcp"
                number, _, proto = port.partition("/")
                if not re.fullmatch(r"\d+(-\d+)?", number) or proto not in ("tcp", "udp",
                                                                               "sctp"):
                    raise fail(ins, f"EXPOSE: invalid port {word!r}", file)
                ports[port] = {}
            return state.with_config(exposed_ports=ports)
        case "VOLUME":
            volumes = dict(state.config.volumes or {})
            for word in words(ins, env, escape, file):
                if not word:
                    raise fail(ins, "VOLUME specified can not be an empty string", file)
                volumes[word] = {}
            return state.with_config(volumes=volumes)
        case "STOPSIGNAL":
            return state.with_config(stop_signal=expand(ins, ins.text, env, escape, file))
        case "SHELL":
            if ins.exec_form is None or not ins.exec_form:
                raise fail(ins, "SHELL requires the arguments to be in JSON form", file)
            return state.with_config(shell=list(ins.exec_form))
        case "HEALTHCHECK":
            return state.with_health(_health(ins, state, file))
    raise fail(ins, f"{ins.keyword} is not a metadata instruction", file)


def _command(state: StageState, ins: Instruction) -> list[str]:
    if ins.exec_form is not None:
        return list(ins.exec_form)
    return [*state.shell, ins.text]


def _health(ins: Instruction, state: StageState, file: str) -> ImageHealthcheck | None:
    kind, _, rest = ins.text.partition(" ")
    if kind.upper() == "NONE":
        if rest.strip():
            raise fail(ins, "HEALTHCHECK NONE takes no arguments", file)
        return ImageHealthcheck(test=["NONE"])
    if kind.upper() != "CMD":
        raise fail(ins, f"HEALTHCHECK: unknown type {kind!r} (CMD or NONE)", file)
    rest = rest.strip()
    if not rest:
        raise fail(ins, "HEALTHCHECK CMD needs a command", file)
    if rest.startswith("["):
        try:
            argv = json.loads(rest)
        except ValueError:
            argv = None
        test = ["CMD", *argv] if isinstance(argv, list) else ["CMD-SHELL", rest]
    else:
        test = ["CMD-SHELL", rest]
    flags = ins.flags
    retries = flags.get("retries", "0")
    if not retries.isdigit():
        raise fail(ins, f"HEALTHCHECK --retries={retries}: not a number", file)
    durations = {name: parse_duration(ins, name, flags[name], file) if name in flags else 0
                 for name in ("interval", "timeout", "start-period", "start-interval")}
    return ImageHealthcheck(test=test, interval=durations["interval"],
                        timeout=durations["timeout"], start_period=durations["start-period"],
                        start_interval=durations["start-interval"], retries=int(retries))
