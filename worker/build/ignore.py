"""``.dockerignore`` patterns, matched as Docker's patternmatcher does (pure).

A pattern is cleaned like a path (a leading ``/`` dropped), ``*`` matches within one path
element, ``?`` one character, ``[...]`` a class, ``**`` any number of elements, ``\\`` escapes.
A pattern that matches a directory excludes everything in it; ``!pattern`` re-includes; the
last pattern that matches a path decides.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str
    regex: re.Pattern[str]
    exclusion: bool  # a ``!`` pattern: what it matches is sent after all


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path.strip())
    cleaned = cleaned.lstrip("/")
    return "." if cleaned in ("", ".") else cleaned


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's path pattern as a regex over ``/``-separated paths (COPY's wildcards too)."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    out.append("(.*/)?")  # "**/" also matches no directory at all
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"syntax error in pattern {pattern!r}: unclosed [")
            body = pattern[i + 1:end]
            if body.startswith("^"):
                body = "!" + body[1:]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out))


def parse_ignore(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        cleaned = _clean(line)
        if cleaned == ".":
            continue
        patterns.append(Pattern(line, pattern_regex(cleaned), exclusion))
    return patterns


def is_ignored(path: str, patterns: list[Pattern]) -> bool:
    """Whether the context path ``path`` (relative, ``/``-separated) is left out."""
    path = _clean(path)
    parents = []
    parent = posixpath.dirname(path)
    while parent:
        parents.append(parent)
        parent = posixpath.dirname(parent)
    ignored = False
    for pattern in patterns:
        matched = bool(pattern.regex.match(path)) or any(pattern.regex.match(p) for p in parents)
        if matched:
            ignored = not pattern.exclusion
    return ignored
