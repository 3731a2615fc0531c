"""Every ``python -m search_lab…`` command printed in README.md and docs/ runs as printed,
every ``python -m`` module named there exists, and every relative link resolves.

Each command is split as a shell would (quotes, ``\\`` continuations, ``# comments``). Hydra
commands (``evaluate``, ``build_index``) must parse with Hydra's own override grammar, with
no sweep outside ``-m`` (``index.factory=IVF1024,Flat`` is one: "Ambiguous value"), and compose;
a ``# indexes/...`` comment must name the folder the command writes. The other commands must
get through their argument parser. The quick start's build and search run for real.
Templates (``<args>``, ``...``, ``[--seed S]``) are not commands and are left out.
A relative link (``[text](path)``, ``[text](path#anchor)``, ``[text](#anchor)``, images too)
must name an existing file and, with an anchor, a heading of that file (GitHub's anchors).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from search_lab.cli import compose_config
from search_lab.cli.glue import first_job

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
HYDRA = {"search_lab.evaluate": "config", "search_lab.build_index": "build_index"}
TEMPLATE = re.compile(r"<[^>]*>|\.\.\.|\[--|search_lab\.<")
INLINE = re.compile(r"`([^`]*python -m search_lab[^`]*)`")


@dataclass(frozen=True)
class Command:
    """One printed command: where it is, its words (as the shell splits them), its comment."""

    where: str
    line: str
    words: tuple[str, ...]
    comment: str

    @property
    def module(self) -> str:
        return self.words[2]

    @property
    def args(self) -> list[str]:
        return list(self.words[3:])


def _command(where: str, text: str) -> Command | None:
    text = text[text.index("python -m search_lab") :]
    if TEMPLATE.search(text):
        return None
    lexer = shlex.shlex(text, posix=True, punctuation_chars=False)
    lexer.whitespace_split, lexer.commenters = True, "#"
    words = tuple(lexer)
    comment = text.split(" #", 1)[1].strip() if " #" in text else ""
    return Command(where, text, words, comment)


def _block_lines(path: Path) -> list[tuple[int, str, bool]]:
    """(line number, text with continuations joined, inside a fenced block) of a file."""
    out, fenced, pending, start = [], False, "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if pending:
            raw = pending + " " + raw.strip()
        else:
            start = number
        if fenced and raw.rstrip().endswith("\\"):
            pending = raw.rstrip()[:-1].rstrip()
            continue
        pending = ""
        out.append((start, raw, fenced))
    return out


def printed_commands() -> list[Command]:
    """Every runnable ``python -m search_lab…`` command of README.md and docs/**/*.md."""
    found: dict[tuple[str, ...], Command] = {}
    for path in DOCS:
        name = path.relative_to(REPO)
        for number, text, fenced in _block_lines(path):
            spans = [text] if fenced and "python -m search_lab" in text else INLINE.findall(text)
            for span in spans:
                cmd = _command(f"{name}:{number}", span)
                if cmd is not None:
                    found.setdefault(cmd.words, cmd)
    return list(found.values())


COMMANDS = printed_commands()
HYDRA_COMMANDS = [c for c in COMMANDS if c.module in HYDRA]
OTHER_COMMANDS = [c for c in COMMANDS if c.module not in HYDRA]


def test_the_docs_print_commands_of_both_kinds() -> None:
    assert len(HYDRA_COMMANDS) > 60 and len(OTHER_COMMANDS) > 10
    assert {c.module for c in OTHER_COMMANDS} >= {"search_lab.search", "search_lab.report"}


def _hydra_problem(cmd: Command, *, compose: bool = True) -> str | None:
    """Why Hydra would refuse the command's overrides (composed if ``compose``), or None."""
    multirun = any(w in ("-m", "--multirun") for w in cmd.args)
    overrides = [w for w in cmd.args if not w.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as err:  # Hydra's grammar errors: HydraException / OverrideParseException
        return f"grammar: {err}".splitlines()[0]
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    if sweeps and not multirun:
        return f"a sweep without -m (quote it): {sweeps[0]}"
    if not compose or any(o.key_or_group.startswith("hydra") for o in parsed):
        return None  # launcher plugins: the grammar is what can be checked here
    try:
        cfg = compose_config(first_job(overrides) if multirun else overrides, HYDRA[cmd.module])
    except Exception as err:
        return f"compose: {err}".splitlines()[0]
    if cmd.comment.startswith("indexes/") and cfg.get("index_dir") != cmd.comment.split()[0]:
        return f"the comment says {cmd.comment.split()[0]}, it writes {cfg.get('index_dir')}"
    return None


def _problems(commands: list[Command], *, compose: bool) -> str:
    found = [(c, _hydra_problem(c, compose=compose)) for c in commands]
    return "\n".join(f"{c.where}: {c.line}\n  {p}" for c, p in found if p)


def test_every_hydra_command_parses() -> None:
    """Hydra's grammar for every command, README and docs (fast: no composition)."""
    assert not _problems(HYDRA_COMMANDS, compose=False)


def test_readme_hydra_commands_compose(holidays_dir: Path) -> None:
    """README's commands compose (keys and options exist; ~0.1 s each)."""
    assert not _problems([c for c in HYDRA_COMMANDS if c.where.startswith("README")], compose=True)


@pytest.mark.long
def test_docs_hydra_commands_compose(holidays_dir: Path) -> None:
    """The generated report's reproduce commands compose too (the report composed each once)."""
    docs = [c for c in HYDRA_COMMANDS if not c.where.startswith("README")]
    assert not _problems(docs, compose=True)


class Parsed(Exception):
    """Raised once a command's argument parser accepted its arguments."""


def _parses(cmd: Command, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """Run the command's module up to its argument parser; the parser's complaint, or None."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *a: object, **k: object) -> None:
        original(self, *a, **k)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [cmd.module, *cmd.args])
    try:
        runpy.run_module(cmd.module, run_name="__main__", alter_sys=True)
    except Parsed:
        return None
    except SystemExit as stop:
        return f"exit status {stop.code}"
    return "the command never parsed its arguments"


@pytest.mark.filterwarnings("ignore:'search_lab.data.datasets' found in sys.modules:RuntimeWarning")
@pytest.mark.parametrize("cmd", OTHER_COMMANDS, ids=lambda c: c.where)
def test_other_command_parses(
    cmd: Command, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    problem = _parses(cmd, monkeypatch)
    assert problem is None, f"{cmd.where}: {cmd.line}\n{problem}\n{capsys.readouterr().err}"


def test_sweep_without_multirun_is_caught() -> None:
    bad = _command("x", "python -m search_lab.build_index index.factory=IVF1024,Flat")
    assert bad is not None and "a sweep without -m" in (_hydra_problem(bad) or "")
    good = _command("x", """python -m search_lab.build_index 'index.factory="IVF1024,Flat"'""")
    assert good is not None and good.args == ['index.factory="IVF1024,Flat"']
    assert _command("x", "python -m search_lab.evaluate <args> eval.rotations=true") is None


def test_quick_start_runs_as_printed(tmp_path: Path, holidays_dir: Path) -> None:
    """README's first build and search, run by a shell in a fresh folder."""
    wanted = [
        "python -m search_lab.build_index",
        "python -m search_lab.search --index indexes/hsv-cosine-exact $HOLIDAYS_DIR/100000.jpg",
    ]
    lines = [c.line for c in COMMANDS if c.where.startswith("README")]
    build = next(line for line in lines if line.split("#")[0].strip() == wanted[0])
    search = next(line for line in lines if line.startswith(wanted[1]))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOLIDAYS_DIR": str(holidays_dir),
        "SEARCH_LAB_CACHE": str(tmp_path / "cache"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    for line in (build, search):
        line = line.replace("python ", f"{sys.executable} ", 1)
        done = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{line}\n{done.stderr[-1500:]}"
    assert done.stdout.splitlines()[1].split() == ["1", "0.000000", "100000.jpg"]


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`[^`]*`")
MODULE = re.compile(r"python3?\s+-m\s+([A-Za-z_][\w.]*)")
EXTERNAL = ("http://", "https://", "mailto:")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case; letters, digits, ``_``, ``-`` and spaces kept;
    each space a hyphen (so "Wang / Corel-1k" gives ``wang--corel-1k``)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks), repeats numbered."""
    counts: dict[str, int] = {}
    found: set[str] = set()
    for _, text, fenced in _block_lines(path):
        if fenced or not re.match(r"#{1,6} ", text):
            continue
        base = slug(text.lstrip("#"))
        count = counts.get(base, 0)
        counts[base] = count + 1
        found.add(f"{base}-{count}" if count else base)
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link of a Markdown file outside code blocks and code spans."""
    found = []
    for number, text, fenced in _block_lines(path):
        if not fenced:
            found += [(number, t) for t in LINK.findall(CODE_SPAN.sub("", text))]
    return found


def link_problem(path: Path, target: str) -> str | None:
    """Why the link ``target`` of ``path`` does not resolve, or None (external links pass)."""
    if target.startswith(EXTERNAL):
        return None
    file, _, anchor = target.partition("#")
    dest = (path.parent / file).resolve() if file else path
    if not dest.exists():
        return f"no file {file}"
    if anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
        return f"no heading #{anchor} in {dest.name}"
    return None


def test_every_relative_link_resolves() -> None:
    problems = [
        f"{path.relative_to(REPO)}:{number}: ({target}) {problem}"
        for path in DOCS
        for number, target in links(path)
        if (problem := link_problem(path, target))
    ]
    assert not problems, "\n".join(problems)
    assert sum(len(links(p)) for p in DOCS) > 50  # the docs do link to each other


def test_the_link_check_catches_bad_links(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("# A title: `x` / y\n\n## A title: x / y\n\n```\n# not a heading\n```\n")
    assert anchors(doc) == {"a-title-x--y", "a-title-x--y-1"}
    assert link_problem(doc, "#a-title-x--y-1") is None
    assert link_problem(doc, "#not-a-heading") == "no heading #not-a-heading in a.md"
    assert link_problem(doc, "a.md#a-title-x--y") is None
    assert link_problem(doc, "missing.md") == "no file missing.md"
    assert link_problem(doc, "https://example.org/x") is None
    assert links(doc) == []
    doc.write_text("[x](b.md#top) `[y](ignored.md)`\n")
    assert links(doc) == [(1, "b.md#top")]


def module_exists(name: str) -> bool:
    """Whether ``python -m name`` would find a module to run (a package needs a ``__main__``)."""
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(f"{name}.__main__")
    except ModuleNotFoundError:  # a parent package that does not exist
        return False
    return spec is not None


def test_every_python_m_module_named_exists() -> None:
    """``python -m X`` anywhere in README and docs/ (prose included) names a module that exists."""
    missing = sorted(
        f"{path.relative_to(REPO)}: python -m {name}"
        for path in DOCS
        for name in set(MODULE.findall(path.read_text(encoding="utf-8")))
        if not name.endswith(".") and not module_exists(name)  # "search_lab.<command>": a template
    )
    assert not missing, "\n".join(missing)
    assert module_exists("search_lab.report.reference") and module_exists("search_lab.report")
    assert not module_exists("search_lab.nope.x") and not module_exists("search_lab")
    assert MODULE.findall("run python -m search_lab.nope\nor python -m\nsearch_lab.x") == [
        "search_lab.nope",
        "search_lab.x",
    ]
