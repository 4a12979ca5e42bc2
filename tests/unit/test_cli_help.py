"""`freshmesh … --help`: every option with its default, every environment variable its code reads; --version."""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.logs import version
from simulators.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
# each command's own code: the environment it reads must be named in its --help
CODE = {
    "cloud": ["cloud"],
    "stack": ["cloud/embedded"],
    "edge": ["edge"],
    "operators": ["cloud/operators_cli.py"],
    "load": ["loadtest"],
    "demo": ["simulators/chain.py", "cloud"],
}
# os.environ["X"], env.get("X"), and names kept in constants (BINDIR_ENV = "FRESHMESH_PG_BINDIR")
ENV_READ = re.compile(r"""(?:environ(?:\.get)?|env\.get|getenv|env)\s*[(\[]\s*["']([A-Z][A-Z0-9_]+)["']""")
ENV_NAME = re.compile(r"""["']((?:FRESHMESH|NATS|DATABASE|RAY)_[A-Z0-9_]*[A-Z0-9])["']""")
PREFIX_READ = re.compile(r"""f["'](FRESHMESH_[A-Z_]+)\{""")  # f"FRESHMESH_CONSOLE_{name}": documented as <FIELD>


def env_read_by(paths: list[str]) -> set[str]:
    names: set[str] = set()
    for p in paths:
        path = ROOT / p
        for f in [path] if path.is_file() else sorted(path.rglob("*.py")):
            if f.name == "cli_help.py":  # the catalogue itself names every variable
                continue
            text = f.read_text(encoding="utf-8")
            names |= set(ENV_READ.findall(text)) | set(ENV_NAME.findall(text))
            names |= {f"{prefix}<FIELD>" for prefix in PREFIX_READ.findall(text)}
    return names


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from commands(child, (*path, name))


def option_blocks(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's entry in --help (its line and the indented lines under it), keyed by each of its names."""
    text = parser.format_help()
    entries: list[list[str]] = []
    for line in text[text.index("options:"):].splitlines()[1:]:
        if line.startswith("  -"):
            entries.append([line])
        elif line.startswith("    ") and entries:
            entries[-1].append(line)
        elif not line.strip():
            break
    blocks: dict[str, str] = {}
    for entry in entries:
        head = entry[0].strip().split("  ")[0]  # "-x X, --xx X" before the help column
        words = " ".join(" ".join(entry).split())
        for name in re.findall(r"(?:^|, )(--?[\w-]+)", head):
            blocks[name] = words
    return blocks


def test_every_option_of_every_command_shows_its_default():
    missing = []
    for path, parser in commands(build_parser()):
        blocks = option_blocks(parser)
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            option = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
            entry = blocks.get(option)
            if entry is None:
                missing.append(f"{' '.join(path)} {option}: not in --help")
            elif "default" not in entry and "required" not in entry:
                missing.append(f"{' '.join(path)} {option}: no default shown: {entry!r}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("command", sorted(CODE))
def test_each_command_names_the_environment_its_code_reads(command):
    parser = dict(commands(build_parser()))[(command,)]
    text = parser.format_help()
    read = env_read_by(CODE[command])
    assert read, f"no environment read found for {command}: the grep is broken"
    unnamed = sorted(n for n in read if n not in text)
    assert not unnamed, f"freshmesh {command} --help does not name {unnamed}"


@pytest.mark.parametrize("argv", [["-m", "simulators.cli", "--version"], ["-m", "cloud", "--version"],
                                  ["-m", "edge", "--version"]])
def test_version_everywhere(argv):
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == f"freshmesh {version()}", done.stdout + done.stderr
