"""Parse a Dockerfile into instructions with their line numbers (pure: text in, records out).

What Docker's parser does: parser directives at the top (``# escape=`` and ``# syntax=``),
comments, line continuations with the escape character (comment and empty lines inside a
continuation are skipped), instruction keywords in any case, ``--flag=value`` options, and the
JSON (exec) form of RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD and VOLUME. Every refusal is a
``DockerfileError`` naming the line: an unknown instruction, a flag the instruction does not
take, a heredoc or a ``# syntax=`` frontend (BuildKit features this builder does not have),
an instruction before the first FROM.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from worker.build.errors import DockerfileError

MAX_DOCKERFILE_BYTES = 1024 * 1024
MAX_INSTRUCTIONS = 10_000

INSTRUCTIONS = frozenset({
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
})
# The flags each instruction takes; BuildKit-only ones are refused with the reason below.
FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "COPY": frozenset({"from", "chown", "chmod"}),
    "ADD": frozenset({"chown", "chmod"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval",
                              "retries"}),
}
BUILDKIT_FLAGS = {
    "mount": "RUN --mount needs BuildKit", "network": "RUN --network needs BuildKit",
    "security": "RUN --security needs BuildKit", "link": "--link needs BuildKit",
    "parents": "--parents needs BuildKit", "exclude": "--exclude needs BuildKit",
    "keep-git-dir": "ADD --keep-git-dir needs BuildKit", "checksum": "ADD --checksum needs "
    "BuildKit",
}
EXEC_FORM = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<-?\s*[\"']?[A-Za-z_][A-Za-z0-9_]*[\"']?")
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?:=(\S*))?")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: ``keyword`` upper-case, ``text`` its arguments after the flags (one
    line, continuations joined), ``exec_form`` the JSON array when it was given as one."""

    line: int
    keyword: str
    text: str
    flags: dict[str, str] = field(default_factory=dict)
    exec_form: list[str] | None = None
    original: str = ""

    def __str__(self) -> str:
        return self.original


@dataclass(frozen=True, slots=True)
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    file: str = "Dockerfile"


def _directives(lines: list[str], file: str) -> tuple[str, int]:
    """The escape character and how many leading lines were directives."""
    escape = "\\"
    seen: set[str] = set()
    count = 0
    for number, line in enumerate(lines, 1):
        match = _DIRECTIVE.match(line.strip()) if line.strip().startswith("#") else None
        if match is None:
            break
        key, value = match.group(1).lower(), match.group(2)
        if key not in ("escape", "syntax", "check"):
            break  # an ordinary comment ends the directives
        if key in seen:
            raise DockerfileError(f"only one {key} parser directive can be used",
                                  line=number, file=file)
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token {value!r}: it must be \\ or `",
                                      line=number, file=file)
            escape = value
        elif key == "syntax":
            raise DockerfileError(
                f"the syntax directive asks for the BuildKit frontend {value!r}; shoal builds "
                "Dockerfiles itself and cannot fetch or run frontends (no registry access "
                "either): remove the line", line=number, file=file)
        count = number
    return escape, count


def parse(text: str, file: str = "Dockerfile") -> Dockerfile:
    """The instructions of ``text``; ``DockerfileError`` with the line for anything wrong."""
    if len(text.encode()) > MAX_DOCKERFILE_BYTES:
        raise DockerfileError(f"{file} is larger than {MAX_DOCKERFILE_BYTES} bytes")
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    escape, first = _directives(lines, file)
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(lines, 1):
        if number <= first:
            continue
        stripped = raw.strip()
        if not pending and not stripped:
            continue
        if stripped.startswith("#"):
            continue  # a comment, also inside a continuation
        if pending and not stripped:
            continue  # an empty line inside a continuation (Docker warns and goes on)
        if not pending:
            start = number
        body = raw.rstrip()
        if body.endswith(escape):
            pending.append(body[:-1])  # Docker keeps the spaces around a continuation
            continue
        pending.append(body)
        instructions.append(_instruction("".join(pending).strip(), start, file))
        pending = []
        if len(instructions) > MAX_INSTRUCTIONS:
            raise DockerfileError(f"more than {MAX_INSTRUCTIONS} instructions", line=number,
                                  file=file)
    if pending:
        instructions.append(_instruction("".join(pending).strip(), start, file))
    if not instructions:
        raise DockerfileError(f"{file} has no instructions", file=file)
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword != "ARG":
            raise DockerfileError(f"{ins.keyword} before the first FROM (only ARG may come "
                                  "before it)", line=ins.line, file=file)
    if not any(ins.keyword == "FROM" for ins in instructions):
        raise DockerfileError(f"{file} has no FROM instruction", file=file)
    return Dockerfile(instructions, escape, file)


def _instruction(line_text: str, number: int, file: str) -> Instruction:
    keyword, _, rest = line_text.partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = f"{more} {rest}"
    upper = keyword.upper()
    if upper not in INSTRUCTIONS:
        raise DockerfileError(f"unknown instruction: {keyword}", line=number, file=file)
    rest = rest.strip()
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        match = _FLAG.fullmatch(word)
        if match is None:
            raise DockerfileError(f"{upper}: malformed flag {word!r}", line=number, file=file)
        name, value = match.group(1), match.group(2)
        if name in BUILDKIT_FLAGS:
            raise DockerfileError(f"{upper} --{name}: {BUILDKIT_FLAGS[name]}, which shoal's "
                                  "builder does not have", line=number, file=file)
        if name not in FLAGS.get(upper, frozenset()):
            raise DockerfileError(f"{upper} does not take the flag --{name}", line=number,
                                  file=file)
        if value is None:
            raise DockerfileError(f"{upper} --{name} needs a value (--{name}=...)",
                                  line=number, file=file)
        flags[name] = value
        rest = after.strip()
    if upper in ("RUN", "COPY", "ADD") and _HEREDOC.search(rest) and not rest.startswith("["):
        raise DockerfileError(f"{upper} with a heredoc (<<) needs BuildKit's Dockerfile "
                              "frontend, which shoal's builder does not have: write the "
                              "content to a file in the context and COPY it, or use "
                              "printf in a RUN", line=number, file=file)
    if upper == "ONBUILD":
        raise DockerfileError("ONBUILD is not supported by shoal's builder", line=number,
                              file=file)
    exec_form: list[str] | None = None
    if upper in EXEC_FORM and rest.startswith("["):
        try:
            decoded = json.loads(rest)
        except ValueError:
            decoded = None  # not JSON: Docker takes it as the shell form
        if isinstance(decoded, list) and all(isinstance(w, str) for w in decoded):
            exec_form = decoded
    if not rest and upper not in ("CMD", "ENTRYPOINT"):
        raise DockerfileError(f"{upper} requires at least one argument", line=number,
                              file=file)
    original = f"{upper} {' '.join(f'--{k}={v}' for k, v in flags.items())}" \
        f"{' ' if flags else ''}{rest}".replace("  ", " ").strip()
    return Instruction(number, upper, rest, flags, exec_form, original)
