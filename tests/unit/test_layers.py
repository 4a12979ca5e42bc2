"""The layering of DESIGN.md §1 is true: each room imports only what it may, the pure rooms do no I/O and read no
clock, and only the runtime layer names Ray. Walks every import (module level and inside functions) of every
module, so a violation anywhere fails here with the file, the line and the rule it breaks."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("protocol", "actors", "cloud", "edge", "simulators", "loadtest", "logfmt")
# Which of our rooms each room may import (DESIGN.md §1).
MAY_IMPORT = {
    "protocol": {"protocol"},
    "actors": {"protocol", "actors"},
    "cloud": {"protocol", "actors", "cloud", "logfmt"},
    "edge": {"protocol", "actors", "edge", "logfmt"},
    "logfmt": {"logfmt"},  # the log format the cloud and the edge share: the standard library only
    "simulators": set(ROOMS),
    "loadtest": set(ROOMS),
}
# The pure code: the standard library's computing modules only, and msgpack for the codec; nothing that does I/O,
# reads a clock or draws randomness (time and ids are passed in). The edge's decisions are pure too.
PURE = ("protocol/", "actors/", "edge/core/")
PURE_THIRD_PARTY = {"protocol/": {"msgpack"}, "actors/": set(), "edge/core/": set()}
# Inner walls: (importer's path prefix, a module prefix it must not import, why).
WALLS = (
    ("cloud/services/", "cloud.http", "services answer with verdicts; only the HTTP layer knows status codes"),
    ("cloud/services/", "cloud.console", "the console reads services, not the other way round"),
    ("cloud/runtime/", "cloud.services", "the runtime hosts actors and knows no service"),
    ("cloud/runtime/", "cloud.http", "the runtime knows no HTTP"),
    ("edge/core/", "edge.", "the edge's decisions import no shell (only edge.core and sans-I/O codecs)"),
)
WALL_GATES = ("edge.core", "edge.devices.escpos")  # sans-I/O: the ESC/POS encoder builds bytes, prints nothing
PURE_STDLIB_FORBIDDEN = {
    "asyncio", "socket", "ssl", "select", "selectors", "subprocess", "threading", "multiprocessing", "concurrent",
    "os", "sys", "io", "pathlib", "shutil", "tempfile", "glob", "signal", "time", "random", "secrets", "uuid",
    "sqlite3", "http", "urllib", "logging", "importlib", "pickle", "shelve",
}
PURE_STDLIB_ALLOWED = {"urllib.parse"}  # splitting and unquoting text (a GS1 Digital Link): no I/O
FORBIDDEN_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}
RUNTIME = "cloud/runtime/"


def modules(room: str) -> list[Path]:
    return sorted(p for p in (ROOT / room).rglob("*.py") if "__pycache__" not in p.parts)


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    room = rel.split("/")[0]
    pure = next((prefix for prefix in PURE if rel.startswith(prefix)), None)
    tree = ast.parse(path.read_text(encoding="utf-8"), rel)
    out = []
    for line, name in imported(tree):
        top = name.split(".")[0]
        where = f"{rel}:{line} imports {name}"
        if top in ROOMS and top not in MAY_IMPORT[room]:
            out.append(f"{where}: {room}/ may import only {sorted(MAY_IMPORT[room])} of our rooms")
        if top == "ray" and not rel.startswith(RUNTIME):
            out.append(f"{where}: only {RUNTIME} names Ray")
        if pure and top not in ROOMS and top != "__future__":
            if top in sys.stdlib_module_names:
                if top in PURE_STDLIB_FORBIDDEN and name not in PURE_STDLIB_ALLOWED:
                    out.append(f"{where}: {pure} is pure (no I/O, no clock, no randomness)")
            elif top not in PURE_THIRD_PARTY[pure]:
                out.append(f"{where}: {pure} may use only {sorted(PURE_THIRD_PARTY[pure]) or 'no'} third-party packages")
        for inside, forbidden, why in WALLS:
            if rel.startswith(inside) and (name + ".").startswith(forbidden) and not name.startswith(WALL_GATES):
                out.append(f"{where}: {why}")
    if pure:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in FORBIDDEN_CALLS:
                out.append(f"{rel}:{node.lineno} calls {node.func.value.id}.{node.func.attr}(): {pure} reads no clock")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                out.append(f"{rel}:{node.lineno} calls open(): {pure} does no I/O")
    return out


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_imports_only_what_it_may(room):
    found = [v for path in modules(room) for v in violations(path)]
    assert found == []


@pytest.mark.parametrize("room", ("cloud", "edge", "simulators", "loadtest"))
def test_each_runnable_room_has_a_main(room):
    assert (ROOT / room / "__main__.py").is_file(), f"python -m {room} should run the {room}"


def test_the_walker_catches_what_it_is_for(tmp_path, monkeypatch):
    """The rules bite: a pure module reading the clock, an edge module importing the cloud, Ray outside the runtime."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    cases = {"actors/bad.py": "import time\nfrom datetime import datetime\nx = datetime.now()\n",
             "edge/bad.py": "from cloud.context import Cloud\n",
             "cloud/services/bad.py": "import ray\n",
             "protocol/bad.py": "import aiosqlite\nopen('f')\n",
             "cloud/runtime/fine.py": "import ray\nfrom actors.base import Result\n",
             "cloud/services/speaks_http.py": "from cloud.http.problems import HTTPProblem\n",
             "edge/core/does_io.py": "import aiosqlite\nfrom edge.store_db import StoreDb\nfrom edge.core import cart\n"}
    for rel, text in cases.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = {rel: violations(tmp_path / rel) for rel in cases}
    assert [v.split(": ", 1)[1] for v in found["actors/bad.py"]] == [
        "actors/ is pure (no I/O, no clock, no randomness)", "actors/ reads no clock"]
    assert "may import only" in found["edge/bad.py"][0]
    assert "only cloud/runtime/ names Ray" in found["cloud/services/bad.py"][0]
    assert len(found["protocol/bad.py"]) == 2
    assert found["cloud/runtime/fine.py"] == []
    assert "only the HTTP layer knows status codes" in found["cloud/services/speaks_http.py"][0]
    assert [v.split(": ", 1)[1] for v in found["edge/core/does_io.py"]] == [
        "edge/core/ may use only no third-party packages",
        "the edge's decisions import no shell (only edge.core and sans-I/O codecs)"]
