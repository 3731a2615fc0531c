"""docs/reference.md is generated from conf/ and the registries, and is current."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search_lab.report import reference
from search_lab.report.reference import CONF, comments, flatten, key_table, render, show


def test_the_reference_on_disk_is_current() -> None:
    """Fails until `python -m search_lab.report.reference` is run after a config change."""
    assert reference.TARGET.read_text(encoding="utf-8") == render()
    assert reference.main(["--check"]) == 0


def test_every_key_of_every_config_file_is_in_the_reference() -> None:
    text = render()
    files = sorted(CONF.rglob("*.yaml"))
    assert len(files) > 25
    for path in files:
        group = path.parent.relative_to(CONF).as_posix()
        prefix = "" if group in (".", "experiment") else group.replace("/", ".") + "."
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, value in flatten({k: v for k, v in values.items() if k != "defaults"}):
            assert f"| `{prefix}{key}` | `{show(value).replace('|', chr(92) + '|')}` |" in text, (
                path,
                key,
            )
        if group not in (".", "experiment"):
            assert f"### `{group}={path.stem}`" in text


def test_registered_names_and_experiments_are_listed() -> None:
    text = render()
    for name in ("hsv", "cnn", "annoy", "faiss", "chi2", "labels", "plain"):
        assert f"| `{name}` |" in text
    assert "### `+experiment=recommended`" in text and "### `+experiment=sweep_annoy`" in text


def test_comments_and_values_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(
        "# Header line one\n# and two.\nname: x\n"
        "block:  # its keys\n  # the comment above\n  size: 3\n"
        "  bins: [8, 12, 3]   # three | bins\n"
        "flag: null\nfast: true\n"
    )
    header, notes = comments(path.read_text())
    assert header == ["Header line one", "and two."]
    assert notes["block.size"] == "the comment above" and notes["block.bins"] == "three | bins"
    assert notes["name"] == ""
    assert key_table(path, "g.") == [
        "| key | default | what |",
        "|---|---|---|",
        "| `g.name` | `x` |  |",
        "| `g.block.*` | | its keys |",
        "| `g.block.size` | `3` | the comment above |",
        "| `g.block.bins` | `[8, 12, 3]` | three \\| bins |",
        "| `g.flag` | `null` |  |",
        "| `g.fast` | `true` |  |",
    ]
    assert show({"a": [1, None]}) == "{a: [1, null]}"


def test_check_says_stale_in_one_line_and_write_makes_it_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "reference.md"
    monkeypatch.setattr(reference, "TARGET", target)
    assert reference.main(["--check"]) == 1  # missing
    target.write_text(render().replace("`hsv`", "`hsb`"))
    assert reference.main(["--check"]) == 1  # stale
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{target} is stale: run python -m search_lab.report.reference"] * 2
    assert reference.main([]) == 0 and target.read_text() == render()
    assert reference.main(["--check"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["reference.md"]  # no temporary left
