"""The Dockerfile parser, substitution and .dockerignore rules (pure, table-driven)."""

from __future__ import annotations

import pytest

from worker.build.dockerfile import parse
from worker.build.errors import DockerfileError
from worker.build.ignore import is_ignored, parse_ignore
from worker.build.shellwords import SubstitutionError, expand_word, expand_words


def test_instructions_keep_their_lines_and_continuations() -> None:
    text = ("# a comment\n"
            "FROM busybox\n"
            "\n"
            "RUN echo a \\\n"
            "  # a comment inside\n"
            "    && echo b\n"
            'CMD ["sh", "-c", "echo hi"]\n'
            "copy --chown=1:2 a /b\n")
    parsed = parse(text)
    assert [(i.line, i.keyword) for i in parsed.instructions] == [
        (2, "FROM"), (4, "RUN"), (7, "CMD"), (8, "COPY")]
    assert parsed.instructions[1].text == "echo a     && echo b"
    assert parsed.instructions[2].exec_form == ["sh", "-c", "echo hi"]
    assert parsed.instructions[3].flags == {"chown": "1:2"}
    assert parsed.instructions[3].text == "a /b"


def test_escape_directive_changes_the_continuation() -> None:
    parsed = parse("# escape=`\nFROM busybox\nRUN echo a `\n b\nCOPY c:\\x /y\n")
    assert parsed.escape == "`"
    assert parsed.instructions[1].text == "echo a  b"
    assert parsed.instructions[2].text == "c:\\x /y"


@pytest.mark.parametrize(("text", "message"), [
    ("FROM busybox\nRUN true\nRUNN true\n", "Dockerfile:3: unknown instruction: RUNN"),
    ("# syntax=docker/dockerfile:1\nFROM busybox\n", "Dockerfile:1: the syntax directive"),
    ("FROM busybox\nRUN <<EOF\necho\nEOF\n", "Dockerfile:2: RUN with a heredoc"),
    ("FROM busybox\nRUN --mount=type=cache,target=/x true\n", "Dockerfile:2: RUN --mount"),
    ("FROM busybox\nCOPY --link a b\n", "Dockerfile:2: COPY --link"),
    ("FROM busybox\nCOPY --frm=x a b\n", "Dockerfile:2: COPY does not take the flag --frm"),
    ("RUN true\nFROM busybox\n", "Dockerfile:1: RUN before the first FROM"),
    ("ARG X=1\n", "has no FROM"),
    ("FROM busybox\nONBUILD RUN true\n", "Dockerfile:2: ONBUILD"),
    ("# escape=x\nFROM busybox\n", "Dockerfile:1: invalid escape"),
    ("FROM busybox\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"),
])
def test_refusals_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse(text)
    assert message in caught.value.message


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("$A", {"A": "x"}, "x"),
    ("${A}b", {"A": "x"}, "xb"),
    ("${A:-d}", {}, "d"),
    ("${A:-d}", {"A": "x"}, "x"),
    ("${A:+alt}", {"A": "x"}, "alt"),
    ("${A:+alt}", {}, ""),
    ("'$A'", {"A": "x"}, "$A"),
    ('"$A y"', {"A": "x"}, "x y"),
    ("\\$A", {"A": "x"}, "$A"),
    ("a$", {}, "a$"),
])
def test_substitution(text: str, env: dict[str, str], expected: str) -> None:
    assert expand_word(text, env) == expected


def test_words_split_at_unquoted_blanks() -> None:
    assert expand_words('a "b c" $X', {"X": "d e"}) == ["a", "b c", "d", "e"]
    with pytest.raises(SubstitutionError):
        expand_word("${A", {})


@pytest.mark.parametrize(("patterns", "path", "ignored"), [
    ("secret.txt", "secret.txt", True),
    ("secret.txt", "dir/secret.txt", False),
    ("**/secret.txt", "dir/sub/secret.txt", True),
    ("**/secret.txt", "secret.txt", True),
    ("*.log\n!keep.log", "keep.log", False),
    ("*.log\n!keep.log", "other.log", True),
    ("build", "build/out/x.o", True),
    ("/build", "build", True),
    ("dir/*", "dir/a", True),
    ("dir/*", "dir/a/b", True),
    ("d?r", "dar", True),
    ("[a-c].txt", "b.txt", True),
    ("# comment\n\n", "x", False),
    ("*\n!src", "src/main.c", False),
])
def test_dockerignore(patterns: str, path: str, ignored: bool) -> None:
    assert is_ignored(path, parse_ignore(patterns)) is ignored
