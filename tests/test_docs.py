"""The README and docs/ as a new user follows them: every command shown exists.

Item 15 of issue 9 found docs naming paths outside the repository and flags that do not
exist; these tests keep them honest. The README's quick start stays the two commands.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvslab.cli.main import app

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
runner = CliRunner()
SUBCOMMANDS = (
    ("doctor", "collect-script"),
    ("doctor", "collect"),
    ("doctor",),
    ("explain",),
    ("lab", "run"),
    ("lab", "compare"),
    ("lab", "fingerprint"),
    ("lab", "era-module"),
    ("presets",),
    ("reproduce",),
    ("report",),
    ("run",),
    ("sweep",),
)


def shell_lines() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", doc.read_text(), flags=re.S)
        for block in blocks:
            text = block.replace("\\\n", " ")
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                for part in re.split(r"&&|\||;", line):
                    words = part.split()
                    if "ipvslab" in words[:2]:
                        out.append((doc.name, part.strip()))
    return out


def _help(command: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(("doc", "line"), shell_lines())
def test_every_documented_ipvslab_command_has_those_options(doc: str, line: str) -> None:
    words = shlex.split(line)
    words = words[words.index("ipvslab") + 1 :]
    command = next(c for c in SUBCOMMANDS if tuple(words[: len(c)]) == c)
    options = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    text = _help(command)
    missing = sorted(o for o in options if not re.search(rf"{re.escape(o)}\b", text))
    assert not missing, f"{doc}: `{line}` uses {missing}, which `ipvslab {command}` lacks"


def test_docs_name_no_path_outside_the_repository() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert "/work/" not in text, doc
        assert "../shared" not in text, doc


def test_the_quick_start_is_two_commands_and_install_needs_no_pypi() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^make \w+", quick, flags=re.M) == ["make reproduce", "make test"]
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert "pipx install ." in install
    assert "pip install ipvslab" not in readme  # it is not on PyPI


def test_documented_repository_paths_exist() -> None:
    pattern = r"`((?:src|tests|docs|deploy|benchmarks)/[^`*<> ]+)`"
    for doc in DOCS:
        for path in re.findall(pattern, doc.read_text()):
            assert (REPO / path).exists(), f"{doc.name}: {path}"
