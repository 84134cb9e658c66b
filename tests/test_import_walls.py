"""Import walls: which of shoal's packages may import which, checked on every module's source.

A rules table, a scanner (``ast``, no imports executed) and a checker that is a pure function of
module sources, so a planted violation can be shown to fail (``test_planted_violations``).

What counts as an import: every ``import``/``from … import`` statement wherever it stands, at
module level, inside a function (a lazy import still makes the dependency), and under
``if TYPE_CHECKING:`` (a type dependency is a dependency: code that names another package's types
cannot be read, checked or moved without it), plus ``importlib.import_module("literal")``.

The pure cores get a second check, on what importing them loads when they run: their imports
followed through our modules (``TYPE_CHECKING`` blocks excepted: they never run), including the
package ``__init__`` modules Python executes on the way, so an eager package face that drags
etcd into a record type is caught. ``test_pure_cores_load_no_io`` checks the same in a fresh
interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("protocol", "channels", "scheduler", "worker", "cli", "dockerapi", "bench", "tests")
SHIPPED = ("protocol", "channels", "scheduler", "worker", "cli", "dockerapi", "bench")
PRODUCT = ("protocol", "channels", "scheduler", "worker", "cli", "dockerapi")

# --- the rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Modules under ``importers`` (minus ``exempt``) import nothing under ``forbidden``, except
    what is under ``allowed``. With ``loads``, what importing them loads at run time is checked
    too. Every name is a module or a package (a package stands for everything under it)."""

    name: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()
    loads: bool = False


@dataclass(frozen=True)
class Allowance:
    """One module allowed to import exactly these modules across a wall, and why."""

    importer: str
    imported: frozenset[str]
    reason: str


# The pure cores: deterministic functions of their inputs, unit-tested without sockets or sleeps.
PURE_CORES = (
    "scheduler.placement",  # the placement engine, its filters, scorers and checker
    "scheduler.reconcile",  # desired + observed -> actions
    "worker.agent.state",  # the agent's decisions: events in, instructions out
    "worker.engine.restart",  # Docker's restart decisions
    "worker.engine.healthcheck",  # Docker's healthcheck transitions and delays
    "worker.agent.fence",  # when a cut-off worker kills its exclusive containers
    "worker.build.dockerfile",  # Dockerfile text -> instructions with their lines
    "worker.build.shellwords",  # Docker's variable substitution
    "worker.build.ignore",  # .dockerignore patterns
    "scheduler.fencing",  # the cluster's fencing delay against its node timeout
    # the store's pure side, which the cores may import for record types and keys
    "scheduler.store.records",
    "scheduler.store.keys",
    "scheduler.store.plan",
)
PURE_STORE = ("scheduler.store.records", "scheduler.store.keys", "scheduler.store.plan")

# shoal compose's pure side: parsing, interpolation, merging, the model and its checks.
COMPOSE_LOADER = tuple(f"cli.compose.{m}" for m in (
    "document", "errors", "interpolation", "dotenv", "normalize", "merge", "model", "loader",
    "schema", "refusals", "yaml_reader"))

# What a pure core must not touch. The time comes in as an argument (seconds, a float) and
# never from a clock, so ``time`` and ``datetime`` are out whole; randomness comes in as a
# seeded ``random.Random`` (the module ``random`` is allowed for that class), never from the
# OS's entropy. A core returns what happened; the shell logs it.
NO_IO = (
    # networks and event loops
    "zmq", "aetcd", "grpc", "uvloop", "asyncio", "socket", "ssl", "selectors", "select",
    # processes and threads
    "subprocess", "multiprocessing", "threading", "concurrent",
    # files and the environment
    "os", "pathlib", "shutil", "tempfile",
    # clocks
    "time", "datetime",
    # entropy
    "secrets", "uuid",
    # logs and metrics
    "logging", "structlog", "prometheus_client",
)
# The modules that keep a daemon's metrics or serve them; the rest of the product updates them
# through these, and the ``shoal`` client's verbs never load prometheus_client.
METRICS_MODULES = ("scheduler.cluster.metrics", "worker.metrics", "cli.metrics_endpoint")

RULES: tuple[Rule, ...] = (
    Rule("tests are not shipped: nothing shipped imports them",
         importers=SHIPPED, forbidden=("tests",)),
    Rule("the product never imports its benchmarks",
         importers=PRODUCT, forbidden=("bench",)),
    Rule("protocol imports nothing of ours",
         importers=("protocol",),
         forbidden=("channels", "scheduler", "worker", "cli", "dockerapi")),
    Rule("channels imports only protocol (of ours)",
         importers=("channels",), forbidden=("scheduler", "worker", "cli", "dockerapi")),
    Rule("worker never imports scheduler, cli or the Docker API front end",
         importers=("worker",), forbidden=("scheduler", "cli", "dockerapi")),
    Rule("scheduler never imports cli, the Docker API front end, nor worker beyond the image "
         "store allowances",
         importers=("scheduler",), forbidden=("cli", "worker", "dockerapi")),
    # A front end is one more client of the daemons' verbs (DESIGN.md): it speaks protocol
    # over channels and knows nothing of how a worker or a scheduler does what it asks.
    Rule("the Docker API front end imports only protocol and channels (of ours)",
         importers=("dockerapi",), forbidden=("scheduler", "worker", "cli")),
    # What keeps the allowances below narrow: the image store does not pull in the rest of
    # the worker (engine, runtime, agent) behind the scheduler's back.
    Rule("the image store (worker.images, worker.image_service) imports no other worker module",
         importers=("worker.images", "worker.image_service"), forbidden=("worker",),
         allowed=("worker.images", "worker.image_service")),
    # bench/store.py measures a bare aetcd client as its reference, so bench is not covered.
    Rule("only the metrics modules import prometheus_client",
         importers=PRODUCT, forbidden=("prometheus_client",), exempt=METRICS_MODULES),
    Rule("only the Docker API front end (a server) and the registry client speak HTTP "
         "with aiohttp",
         importers=PRODUCT, forbidden=("aiohttp",),
         exempt=("dockerapi", "worker.images.registry")),
    Rule("only scheduler.store talks to etcd (aetcd, grpc)",
         importers=PRODUCT, forbidden=("aetcd", "grpc"), exempt=("scheduler.store",)),
    # The cores import the store's pure modules by name, not through the package face: the
    # face resolves its names lazily, by strings the scanner cannot follow.
    Rule("the pure cores import no I/O (no channels, no store I/O, no sockets, loops, clocks)",
         importers=PURE_CORES, forbidden=(*NO_IO, "channels", "scheduler.store", "cli"),
         allowed=PURE_STORE, loads=True),
    # The channel session core is sans-I/O too; the channels face loads its names lazily, so
    # importing the core loads nothing of the shells either (the blocking client relies on it).
    Rule("the channel session core imports no I/O",
         importers=("channels._session", "channels._states"), forbidden=NO_IO, loads=True),
    # Compose files to a Project: files come in through a reader and the environment as a
    # mapping, so the loader is tested on texts and dicts (cli.compose.sources is its shell).
    Rule("the compose loader imports no I/O, no client and no click",
         importers=COMPOSE_LOADER,
         forbidden=(*NO_IO, "channels", "scheduler", "worker", "click", "cli"),
         allowed=COMPOSE_LOADER, loads=True),
)

_IMAGES_REASON = (
    "the scheduler serves image blobs to workers and keeps copies of the leader's images on "
    "standbys, with the worker's own image store and image verbs rather than a second copy"
)
ALLOWANCES: tuple[Allowance, ...] = (
    Allowance("scheduler.cluster.images", frozenset({
        "worker.image_service", "worker.images", "worker.images.blobs", "worker.images.digest",
        "worker.images.errors", "worker.images.registry", "worker.images.usage",
    }), _IMAGES_REASON + "; and pulls for a worker that cannot reach a registry, and counts "
        "the store's disk usage (system df) as a worker counts its own"),
    Allowance("scheduler.cluster.api", frozenset({"worker.image_events"}),
              "the leader publishes the image events a worker publishes, from the one pure "
              "function of an image verb and its answer"),
    Allowance("scheduler.cluster.builds", frozenset({"worker.image_service"}),
              "a cluster build stores its image with the worker's own import (every digest "
              "checked, every layer scanned) and describes it with the same summary"),
    Allowance("scheduler.placement.native", frozenset({"os"}),
              "chooses at import between the compiled and the interpreted placement engine: "
              "reads the package's own sources and the compiled modules' manifest, as the "
              "import system reads bytecode, and the environment's opt-out; no placement "
              "decision reads it"),
    Allowance("scheduler.cluster.imagesync", frozenset({
        "worker.images", "worker.images.digest", "worker.images.fetch",
    }), _IMAGES_REASON),
)

# --- the scanner -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str  # dotted: scheduler.store.records
    path: str  # as reported: scheduler/store/records.py
    source: str
    is_package: bool  # an __init__.py


@dataclass(frozen=True)
class Import:
    importer: str
    path: str
    line: int
    target: str  # the dotted name of the module imported
    type_only: bool  # under `if TYPE_CHECKING:`: never runs
    # in a function's body: runs when it is called, not when the module loads (a lazy face's
    # __getattr__, a verb's own imports); walls count it, what a module loads does not
    deferred: bool = False


def within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def read_tree(root: Path, packages: Sequence[str] = SHIPPED) -> list[Module]:
    modules = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            parts = list(relative.with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules.append(Module(".".join(parts), relative.as_posix(), path.read_text(),
                                  is_package))
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: Module, known: Collection[str]) -> list[Import]:
    """Every import in ``module``; ``from X import y`` imports X.y when that is a module we know."""
    found: list[Import] = []

    def add(node: ast.stmt | ast.expr, target: str, type_only: bool, deferred: bool) -> None:
        imp = Import(module.name, module.path, node.lineno, target, type_only, deferred)
        if imp not in found:  # `from a import b, c` imports module a once
            found.append(imp)

    def visit(node: ast.AST, type_only: bool, deferred: bool = False) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True, deferred)
            for child in node.orelse:
                visit(child, type_only, deferred)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            body = node.body if isinstance(node.body, list) else [node.body]
            for child in ast.iter_child_nodes(node):
                visit(child, type_only, deferred or child in body)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name, type_only, deferred)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.name if module.is_package else module.name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = ".".join(part for part in (package, base) if part)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(node, sub if sub in known else base, type_only, deferred)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            add(node, node.args[0].value, type_only, deferred)
        for child in ast.iter_child_nodes(node):
            visit(child, type_only, deferred)

    visit(ast.parse(module.source, module.path), False)
    return found


# --- the checker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.detail}  [wall: {self.rule}]"


def _breaks(rule: Rule, target: str) -> bool:
    return within(target, rule.forbidden) and not within(target, rule.allowed)


def _ancestors(name: str) -> list[str]:
    """The packages Python runs before ``name``: a.b.c -> a, a.b."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def check(modules: Sequence[Module], rules: Sequence[Rule] = RULES,
          allowances: Sequence[Allowance] = ALLOWANCES) -> list[Violation]:
    """Every import that breaks a rule, as file:line, the rule, and what was imported."""
    known = {m.name for m in modules}
    imports = {m.name: imports_of(m, known) for m in modules}
    allowed = {(a.importer, target) for a in allowances for target in a.imported}
    violations: list[Violation] = []
    for rule in rules:
        covered = [m for m in modules
                   if within(m.name, rule.importers) and not within(m.name, rule.exempt)]
        for module in covered:
            for imp in imports[module.name]:
                if _breaks(rule, imp.target) and (imp.importer, imp.target) not in allowed:
                    violations.append(Violation(imp.path, imp.line, rule.name,
                                                f"{module.name} imports {imp.target}"))
            if rule.loads:
                violations.extend(_loads(module, rule, imports, allowed))
    return violations


def _loads(module: Module, rule: Rule, imports: Mapping[str, list[Import]],
           allowed: Collection[tuple[str, str]] = ()) -> list[Violation]:
    """What importing ``module`` loads at run time that ``rule`` forbids, with the chain; an
    allowance lets its own import through, and what that loads is its own business."""
    # how each loaded module was reached: the import that loaded it, None for where we start
    via: dict[str, Import | None] = {}
    queue: list[str] = []

    def load(name: str, by: Import | None) -> None:
        for package in [*_ancestors(name), name]:
            if package not in via:
                via[package] = by
                queue.append(package)

    load(module.name, None)
    violations = []
    while queue:
        current = queue.pop(0)
        for imp in imports.get(current, ()):
            if imp.type_only or imp.deferred or imp.target in via:
                continue
            if (imp.importer, imp.target) in allowed:
                continue
            if _breaks(rule, imp.target):
                chain = [imp]
                while (step := via[chain[-1].importer]) is not None:
                    chain.append(step)
                chain.reverse()
                # a step whose importer is not the module the previous step loaded is a
                # package __init__ that Python ran on the way
                names = [module.name]
                for step in chain:
                    if step.importer != names[-1]:
                        names.append(f"{step.importer}/__init__")
                    names.append(step.target)
                violations.append(Violation(
                    chain[0].path, chain[0].line, rule.name,
                    f"importing {module.name} loads {imp.target} ({' -> '.join(names)}; "
                    f"{imp.path}:{imp.line})"))
                continue  # what the forbidden module loads in turn is its own business
            load(imp.target, imp)
    return violations


# --- the tests ---------------------------------------------------------------------------------

TREE = read_tree(ROOT)


def test_walls_hold() -> None:
    violations = check(TREE)
    assert not violations, "import walls broken:\n" + "\n".join(map(str, violations))


def test_every_rule_covers_modules() -> None:
    """A rule whose importers name nothing (a typo, a moved module) would hold vacuously."""
    names = {m.name for m in TREE}
    for rule in RULES:
        for importer in rule.importers:
            assert any(within(name, [importer]) for name in names), (rule.name, importer)


def test_every_allowance_is_used() -> None:
    """An allowance no import needs any more is a hole in the wall: remove it."""
    known = {m.name for m in TREE}
    used = {(i.importer, i.target) for m in TREE for i in imports_of(m, known)}
    for allowance in ALLOWANCES:
        for target in allowance.imported:
            assert (allowance.importer, target) in used, (allowance.importer, target)


def _tree(files: Mapping[str, str]) -> list[Module]:
    return [Module(path.removesuffix(".py").removesuffix("/__init__").replace("/", "."), path,
                   textwrap.dedent(source), path.endswith("__init__.py"))
            for path, source in files.items()]


EAGER_STORE = {
    "scheduler/__init__.py": "",
    "scheduler/store/__init__.py": "from scheduler.store.kv import Store\n",
    "scheduler/store/kv.py": "import asyncio\n\nimport aetcd\n",
    "scheduler/store/records.py": "import msgspec\n",
}
# The records are a pure core themselves: importing them runs the eager face.
EAGER_FACE = ("scheduler/store/__init__.py", 1, "the pure cores")

# (what is planted, the files, the violations expected as (path, line, rule name's start))
PLANTED: list[tuple[str, dict[str, str], set[tuple[str, int, str]]]] = [
    ("protocol imports channels lazily, in a function", {
        "protocol/codec.py": """\
            import msgspec

            def encode() -> None:
                from channels import open_channel
        """}, {("protocol/codec.py", 4, "protocol imports nothing")}),
    ("a pure core's relative import of a store I/O module", {
        "scheduler/placement/engine.py": "from ..store import kv\n",
        "scheduler/store/kv.py": "",
    }, {("scheduler/placement/engine.py", 1, "the pure cores")}),
    ("a pure core's relative import loads an I/O module", {
        "worker/agent/state.py": "\n\nfrom ..engine import engine\n",
        "worker/engine/engine.py": "import asyncio\n",
    }, {("worker/agent/state.py", 3, "the pure cores")}),
    ("worker names a scheduler type under TYPE_CHECKING", {
        "worker/daemon.py": """\
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from scheduler.store import ContainerRecord
        """}, {("worker/daemon.py", 4, "worker never imports")}),
    ("the scheduler imports the worker's engine", {
        "scheduler/cluster/images.py": """\
            from worker.images import ImageStore
            from worker.engine.engine import Engine
        """}, {("scheduler/cluster/images.py", 2, "scheduler never imports")}),
    ("an allowed importer, but not an allowed module", {
        "scheduler/cluster/api.py": "from worker.images import ImageStore\n",
    }, {("scheduler/cluster/api.py", 1, "scheduler never imports")}),
    ("a pure core reads the clock", {
        "worker/engine/restart.py": "import time\n",
    }, {("worker/engine/restart.py", 1, "the pure cores")}),
    ("a pure core imports the store's face instead of the records", {
        **EAGER_STORE,
        "scheduler/reconcile.py": "from scheduler.store import ContainerRecord\n",
    }, {("scheduler/reconcile.py", 1, "the pure cores"), EAGER_FACE}),
    ("a pure core loads etcd through an eager package face", {
        **EAGER_STORE,
        "scheduler/reconcile.py": "\nfrom scheduler.store.records import ContainerRecord\n",
    }, {("scheduler/reconcile.py", 2, "the pure cores"), EAGER_FACE}),
    ("cli talks to etcd itself", {
        "cli/main.py": "import aetcd\n",
    }, {("cli/main.py", 1, "only scheduler.store talks to etcd")}),
    ("a pure core loads I/O through a face's eager import, not through its lazy one", {
        "channels/__init__.py": """\
            import asyncio

            def __getattr__(name: str) -> object:
                import zmq
                return zmq
        """,
        "channels/_session.py": "import msgspec\n",
    }, {("channels/__init__.py", 1, "the channel session core")}),
    ("a pure core counts its decisions in Prometheus itself", {
        "scheduler/reconcile.py": "from prometheus_client import Counter\n",
    }, {("scheduler/reconcile.py", 1, "the pure cores"),
        ("scheduler/reconcile.py", 1, "only the metrics modules")}),
    ("importlib.import_module with a literal name", {
        "worker/service.py": "import importlib\nimportlib.import_module('cli.main')\n",
    }, {("worker/service.py", 2, "worker never imports")}),
]


@pytest.mark.parametrize(("files", "expected"), [(f, e) for _, f, e in PLANTED],
                         ids=[name for name, _, _ in PLANTED])
def test_planted_violations(files: dict[str, str], expected: set[tuple[str, int, str]]) -> None:
    violations = check(_tree(files))
    report = "\n".join(map(str, violations))
    assert violations, f"nothing reported; expected {expected}"
    for v in violations:
        assert any((v.path, v.line) == (path, line) and v.rule.startswith(rule)
                   for path, line, rule in expected), f"unexpected: {v}\n{report}"
    for path, line, rule in expected:
        assert any((v.path, v.line) == (path, line) and v.rule.startswith(rule)
                   for v in violations), f"missed: {path}:{line} {rule}\n{report}"
    assert all(str(v).startswith(f"{v.path}:{v.line}: ") for v in violations)


def test_load_chain_names_each_step() -> None:
    files = {**EAGER_STORE,
             "scheduler/reconcile.py": "from scheduler.store.records import ContainerRecord\n"}
    details = sorted(v.detail for v in check(_tree(files)) if v.path == "scheduler/reconcile.py")
    via_face = "scheduler.reconcile -> scheduler.store.records -> scheduler.store/__init__"
    assert details == [
        f"importing scheduler.reconcile loads scheduler.store.kv ({via_face} -> "
        "scheduler.store.kv; scheduler/store/__init__.py:1)",
    ]


def test_allowances_let_only_their_modules_through() -> None:
    files = {"scheduler/cluster/images.py": "from worker.images import ImageStore\n",
             "scheduler/cluster/imagesync.py": "from worker.images.fetch import ImageFetcher\n",
             "worker/images/__init__.py": "", "worker/images/fetch.py": ""}
    assert check(_tree(files)) == []


# What a pure core must not load at run time, checked in a fresh interpreter.
RUNTIME_IO = ("aetcd", "grpc", "zmq", "uvloop", "asyncio", "channels", "socket", "subprocess",
              "structlog", "prometheus_client")


@pytest.mark.parametrize("statement", [
    "import scheduler.store.records",
    "from scheduler.store import ContainerRecord, Layout",
    "import scheduler.reconcile",
    "import scheduler.placement",
    "import worker.agent.state",
    "import worker.engine.restart",
])
def test_pure_cores_load_no_io(statement: str) -> None:
    probe = (f"import sys\n{statement}\n"
             f"print(sorted({{m.partition('.')[0] for m in sys.modules}} & {set(RUNTIME_IO)!r}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=30).stdout
    assert out.strip() == "[]", f"{statement} loads {out.strip()}"


def test_store_face_resolves_every_name() -> None:
    probe = ("import sys, scheduler.store as s\n"
             "assert 'aetcd' not in sys.modules\n"
             "[getattr(s, n) for n in s.__all__]\n"
             "assert 'aetcd' in sys.modules\n")
    subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, timeout=30)
