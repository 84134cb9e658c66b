"""What is wrong with a Compose project: each problem names the file, the line and the path
(``compose.yaml:12: services.web.ports[1]: …``), as users read them to fix the file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# A place in a document: mapping keys and sequence indexes from the top.
Path = tuple[str | int, ...]


def path_text(path: Path) -> str:
    """``services.web.ports[1]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    path: Path
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else ""
        return f"{where}{path_text(self.path)}: {self.message}" if self.path \
            else f"{where}{self.message}"


class ComposeError(Exception):
    """One or more problems with a project's files, options or environment."""

    def __init__(self, file: str, line: int, path: Path, message: str) -> None:
        self.problems = [Problem(file, line, path, message)]
        super().__init__(str(self.problems[0]))

    @classmethod
    def of(cls, problems: Iterable[Problem]) -> ComposeError:
        listed = sorted(problems, key=lambda p: (p.file, p.line, p.message))
        assert listed, "an error needs at least one problem"
        error = cls(listed[0].file, listed[0].line, listed[0].path, listed[0].message)
        error.problems = listed
        error.args = ("\n".join(str(p) for p in listed),)
        return error

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
