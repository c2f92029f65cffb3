"""The layers of the README hold: every import of receiver/ read with ast, known breaches by name.

Layers, bottom up: model (pure Python) < settings < store (the only SQL) < service < web. A
module imports its own layer and those below. Imports inside functions and under TYPE_CHECKING
count like any other: a type-only import is still a dependency (the reader and mypy follow it),
and TYPE_CHECKING is how an import circle hides from the interpreter.

Each rule lists the breaches issue 18 knows of. A new breach fails, and so does an allowed one
that has gone: delete its entry, the lists only shrink.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "receiver"
LAYERS = ("model", "settings", "store", "service", "web")
SERVICE = "service accounts intake enrich notify worker reconcile watchdog alertmanager bootstrap"
SUPPORT = "http metrics tracing logs fixture expect"  # used by the service and web layers
WEB = "web app asgi wsgi cli replay gunicorn_conf metrics_server"  # the app, what serves it
LAYER_OF = {
    "receiver": "model",  # the bare package: __version__ only
    "receiver.model": "model",
    "receiver.settings": "settings",  # configuration; knows the model's label matchers
    "receiver.store": "store",
    **{f"receiver.{name}": "service" for name in f"{SERVICE} {SUPPORT}".split()},
    **{f"receiver.{name}": "web" for name in WEB.split()},
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module: receiver.service
    target: str  # the module imported from: receiver.store.tables
    name: str  # what is imported, in full: receiver.store.tables.Incident
    line: int
    kind: str  # "top", "function" or "type-only"


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def read_imports(module: str, source: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every import statement of one module, wherever it stands."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    visit_statement(statement, "type-only")
                for statement in child.orelse:
                    visit_statement(statement, kind)
            else:
                visit_statement(child, kind)

    def visit_statement(node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and kind == "top":
            kind = "function"
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, alias.name, node.lineno, kind))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                name = f"{base}.{alias.name}"
                target = name if name in known else base  # `from receiver import tracing`
                found.append(Import(module, target, name, node.lineno, kind))
        visit(node, kind)

    visit(ast.parse(source), "top")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    for end in range(len(parts), 1, -1):  # a submodule is never placed by the bare package
        if (layer := LAYER_OF.get(".".join(parts[:end]))) is not None:
            return layer
    return LAYER_OF.get(module)


def within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


MODULES = module_names(PACKAGE)
IMPORTS = [
    found
    for module, path in MODULES.items()
    for found in read_imports(
        module, path.read_text(encoding="utf-8"), path.name == "__init__.py", set(MODULES)
    )
]

# The rules: each gives the (module, name) pairs that break it.


def upward(imports: list[Import]) -> set[tuple[str, str]]:
    """No module imports a layer above its own."""
    rank = {layer: n for n, layer in enumerate(LAYERS)}  # an unplaced module fails below
    return {
        (i.module, i.name)
        for i in imports
        if (low := rank.get(layer_of(i.module) or "")) is not None
        and (high := rank.get(layer_of(i.target) or "")) is not None
        and high > low
    }


MODEL_LIBRARIES = {"re2"}  # RE2 for label regexes; nothing else outside the standard library


def model_libraries(imports: list[Import]) -> set[tuple[str, str]]:
    """The model is pure Python: no SQLAlchemy, Flask, requests, pydantic, ..."""
    return {
        (i.module, i.name)
        for i in imports
        if within(i.module, "receiver.model")
        and (top := i.target.partition(".")[0]) != "receiver"
        and top not in sys.stdlib_module_names
        and top not in MODEL_LIBRARIES
    }


def service_persistence(imports: list[Import]) -> set[tuple[str, str]]:
    """The intake story knows neither SQLAlchemy nor the ORM rows."""
    return {
        (i.module, i.name)
        for i in imports
        if i.module == "receiver.service"
        and (within(i.target, "sqlalchemy") or within(i.target, "receiver.store.tables"))
    }


def web_rows(imports: list[Import]) -> set[tuple[str, str]]:
    """The web layer builds no ORM rows: it asks the service or the store."""
    return {
        (i.module, i.name)
        for i in imports
        if layer_of(i.module) == "web" and within(i.target, "receiver.store.tables")
    }


NOTIFIERS = ["receiver.notify.pagerduty", "receiver.notify.slack"]  # with what they import


def notifier_storage(imports: list[Import]) -> set[tuple[str, str]]:
    """A notifier talks to its vendor only: nothing it imports, however indirectly, reaches
    the store (the delivery worker reads the incident and paces the Slack channels). A breach
    names the notifier's import that leads there."""
    edges: dict[str, set[str]] = {}
    for i in imports:
        edges.setdefault(i.module, set()).add(i.target)

    def storage(target: str) -> bool:
        seen, todo = {target}, [target]
        while todo:
            module = todo.pop()
            if within(module, "receiver.store", "sqlalchemy"):
                return True
            for nxt in edges.get(module, set()) - seen:
                seen.add(nxt)
                todo.append(nxt)
        return False

    return {(n, target) for n in NOTIFIERS for target in edges.get(n, ()) if storage(target)}


OUTSIDE_STORE_SQLALCHEMY = {"sqlalchemy.Engine", "sqlalchemy.engine.Engine", "sqlalchemy.exc"}
OUTSIDE_STORE_SQLALCHEMY |= {"sqlalchemy.engine.make_url"}  # the CLI names a database


def sql_outside_store(imports: list[Import]) -> set[tuple[str, str]]:
    """Only the store builds SQL (select, insert, text, sessions) or talks to a driver.

    Elsewhere SQLAlchemy gives its errors (to catch them), the Engine type and make_url.
    """
    return {
        (i.module, i.name)
        for i in imports
        if not within(i.module, "receiver.store")
        and (
            within(i.target, "alembic", "psycopg", "sqlite3")
            or (
                within(i.target, "sqlalchemy")
                and i.name not in OUTSIDE_STORE_SQLALCHEMY
                and not within(i.name, "sqlalchemy.exc")
            )
        )
    }


def flask_outside_web(imports: list[Import]) -> set[tuple[str, str]]:
    """Only the web layer knows Flask (and Werkzeug, and Authlib's Flask client)."""
    return {
        (i.module, i.name)
        for i in imports
        if layer_of(i.module) != "web" and within(i.target, "flask", "werkzeug", "authlib")
    }


def store_circles(imports: list[Import]) -> set[tuple[str, str]]:
    """No import circle among the store's modules: every edge of one is a breach."""
    edges: dict[str, set[str]] = {}
    for i in imports:
        inside = within(i.module, "receiver.store") and within(i.target, "receiver.store")
        if inside and i.target not in (i.module, "receiver.store"):
            edges.setdefault(i.module, set()).add(i.target)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reachable = {module: reach(module) for module in edges}
    return {(a, b) for a, targets in edges.items() for b in targets if a in reachable.get(b, set())}


Rule = Callable[[list[Import]], set[tuple[str, str]]]
# Each rule with its allowed breaches: (module, what it imports, why it is allowed).
RULES: dict[Rule, list[tuple[str, str, str]]] = {
    upward: [],
    model_libraries: [],
    service_persistence: [],
    web_rows: [],
    sql_outside_store: [],
    notifier_storage: [],
    flask_outside_web: [],
    store_circles: [],  # a circle's edges: (module, module it imports)
}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_only_the_known_breaches_remain(rule):
    breaches, allowed = rule(IMPORTS), {(m, n) for m, n, _ in RULES[rule]}
    where = {}  # a breach names an import or, for a circle, a module imported
    for i in reversed(IMPORTS):
        where[i.module, i.name] = where[i.module, i.target] = f"{i.module}:{i.line} ({i.kind})"
    new = sorted(f"{where[m, n]} imports {n}" for m, n in breaches - allowed)
    gone = sorted(f"{m} no longer imports {n}" for m, n in allowed - breaches)
    assert not new, f"{rule.__doc__.splitlines()[0]}\nNew breaches:\n" + "\n".join(new)
    assert not gone, "Fixed, so delete from the allow-list:\n" + "\n".join(gone)


def test_every_module_has_a_layer():
    unplaced = sorted(module for module in MODULES if layer_of(module) is None)
    assert not unplaced, f"place these in LAYER_OF: {unplaced}"
    assert layer_of("receiver.store.tables") == "store"
    assert layer_of("receiver.webhooks") is None  # a prefix is a dotted name, not a string


def test_the_reader_finds_imports_wherever_they_stand():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import sqlalchemy.orm as orm\n"
        "from receiver import tracing, __version__\n"
        "from ..store.tables import Incident\n"
        "if TYPE_CHECKING:\n"
        "    from receiver.store.unit_of_work import UnitOfWork\n"
        "else:\n"
        "    import json\n"
        "def later():\n"
        "    from flask import request\n"
    )
    known = {"receiver", "receiver.tracing", "receiver.store.tables", "receiver.web.api"}
    found = read_imports("receiver.web.api", source, False, known)
    assert {(i.target, i.name, i.kind) for i in found} == {
        ("typing", "typing.TYPE_CHECKING", "top"),
        ("sqlalchemy.orm", "sqlalchemy.orm", "top"),
        ("receiver.tracing", "receiver.tracing", "top"),
        ("receiver", "receiver.__version__", "top"),
        ("receiver.store.tables", "receiver.store.tables.Incident", "top"),
        ("receiver.store.unit_of_work", "receiver.store.unit_of_work.UnitOfWork", "type-only"),
        ("json", "json", "top"),
        ("flask", "flask.request", "function"),
    }
    assert web_rows(found) == {("receiver.web.api", "receiver.store.tables.Incident")}
    assert len(MODULES) > 50 and len(IMPORTS) > 500  # the real tree was read
