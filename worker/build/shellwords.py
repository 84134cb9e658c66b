"""Docker's variable substitution and word splitting for Dockerfile arguments (pure).

``$VAR``, ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+alternative}`` are replaced from the
build's variables; single quotes keep their content literal, double quotes group words and
still expand, the escape character (``\\`` or the ``# escape=`` one) makes the next character
literal. Used for FROM, COPY, ADD, ENV, ARG, LABEL, WORKDIR, USER, EXPOSE, VOLUME and
STOPSIGNAL, as Docker does; RUN, CMD and ENTRYPOINT are left to the shell.
"""

from __future__ import annotations

from collections.abc import Mapping

_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME_CHARS = _NAME_START + "0123456789"


class SubstitutionError(ValueError):
    """A malformed ``${...}``; the message says what is wrong."""


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def words(self, split: bool) -> list[str]:
        """The words of the text (one word, spaces kept, unless ``split``)."""
        words: list[str] = []
        current: list[str] = []
        started = False
        while self.pos < len(self.text):
            ch = self.take()
            if split and ch in " \t\r\n":
                if started:
                    words.append("".join(current))
                    current, started = [], False
                continue
            started = True
            if ch == self.escape:
                nxt = self.take()
                current.append(nxt)
            elif ch == "'":
                current.append(self._single())
            elif ch == '"':
                current.append(self._double())
            elif ch == "$":
                value = self._variable()
                if not split:
                    current.append(value)
                    continue
                # An unquoted variable's value is split into words too, as Docker does.
                parts = value.split()
                if value[:1].isspace() and current:
                    words.append("".join(current))
                    current = []
                for i, part in enumerate(parts):
                    if i:
                        words.append("".join(current))
                        current = []
                    current.append(part)
                if value[-1:].isspace() and parts:
                    words.append("".join(current))
                    current, started = [], False
            else:
                current.append(ch)
        if started:
            words.append("".join(current))
        return words

    def _single(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise SubstitutionError("unexpected end of text: a single quote is not closed")
        value = self.text[self.pos:end]
        self.pos = end + 1
        return value

    def _double(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise SubstitutionError("unexpected end of text: a double quote is not closed")
            ch = self.take()
            if ch == '"':
                return "".join(out)
            if ch == self.escape and self.peek() in ('"', "$", self.escape):
                out.append(self.take())
            elif ch == "$":
                out.append(self._variable())
            else:
                out.append(ch)

    def _name(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _NAME_CHARS:
            self.pos += 1
        return self.text[start:self.pos]

    def _variable(self) -> str:
        ch = self.peek()
        if ch == "{":
            self.pos += 1
            name = self._name()
            if not name:
                raise SubstitutionError("bad substitution: ${ must be followed by a name")
            if self.peek() == "}":
                self.pos += 1
                return self.env.get(name, "")
            if self.peek() != ":":
                raise SubstitutionError(f"bad substitution: unsupported modifier in ${{{name}")
            self.pos += 1
            modifier = self.take()
            if modifier not in "-+":
                raise SubstitutionError(f"bad substitution: unsupported modifier "
                                        f"':{modifier}' in ${{{name}")
            word = self._until_brace()
            value = self.env.get(name, "")
            if modifier == "-":
                return value or word
            return word if value else ""
        if ch and ch in _NAME_START:
            return self.env.get(self._name(), "")
        return "$"

    def _until_brace(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise SubstitutionError("bad substitution: missing '}'")
            ch = self.take()
            if ch == "}":
                return "".join(out)
            if ch == "$":
                out.append(self._variable())
            elif ch == self.escape:
                out.append(self.take())
            else:
                out.append(ch)


def expand_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``text`` with variables replaced and quotes removed, as one word."""
    words = _Lexer(text, env, escape).words(split=False)
    return words[0] if words else ""


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``text`` split into words (quotes group), variables replaced, quotes removed."""
    return _Lexer(text, env, escape).words(split=True)


def split_raw(text: str, escape: str = "\\") -> list[str]:
    """Words split at unquoted blanks, quotes and escapes left in place (for ``key=value``
    pairs that are expanded one by one afterwards)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and i + 1 < len(text) and quote != "'":
            current.append(text[i:i + 2])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in " \t\r\n":
            if current:
                words.append("".join(current))
                current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if current:
        words.append("".join(current))
    return words
