"""The eval, split and distractor options are checked by core.params' helpers: one message shape."""

from __future__ import annotations

import re

import pytest

from search_lab.core import ConfigError
from search_lab.data import distractors
from search_lab.data.splits import check_split
from search_lab.retrieval.pipeline import EvalOptions, make_fetch

GOOD = {
    "k": [1, 5],
    "rotations": False,
    "depth": None,
    "max_queries": None,
    "subsets": 0,
    "subset_groups": 60,
    "subset_seed": 0,
    "distractor_counts": None,
    "distractor_seed": 0,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"k": []}, "eval.k must be a list of positive integers, got []"),
        ({"k": [1, True]}, "eval.k must be a list of positive integers, got [1, True]"),
        ({"rotations": "yes"}, "eval.rotations must be true or false, got 'yes'"),
        ({"subsets": -1}, "eval.subsets must be an integer >= 0, got -1"),
        (
            {"subsets": 2, "subset_groups": 0},
            "eval.subset_groups must be a positive integer, got 0",
        ),
        ({"depth": 0}, "eval.depth must be a positive integer or null, got 0"),
        ({"max_queries": 2.5}, "eval.max_queries must be a positive integer or null, got 2.5"),
        ({"distractor_seed": -1}, "eval.distractor_seed must be a non-negative integer, got -1"),
        ({"distractor_counts": [0, -5]}, "eval.distractor_counts must be >= 0, got [0, -5]"),
        (
            {"distractor_counts": [0, 1.5]},
            "eval.distractor_counts must be a list of integers >= 0, got [0, 1.5]",
        ),
    ],
)
def test_bad_eval_options_name_the_value(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        EvalOptions.from_config({**GOOD, **change}, "folder")


def test_good_eval_options_pass() -> None:
    options = EvalOptions.from_config({**GOOD, "depth": 100, "distractor_counts": [5, 0, 5]}, "f")
    assert (options.k, options.depth, options.distractor_counts) == ((1, 5), 100, (0, 5))
    assert distractors.check_counts({"distractor_counts": [3, 1]}, "folder") == [1, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", 0.5, 0), "unknown dataset.split 'train'; choose one of: all, tune, test"),
        (("tune", 1.0, 0), "dataset.split_fraction must be a number in (0, 1), got 1.0"),
        (("tune", True, 0), "dataset.split_fraction must be a number in (0, 1), got True"),
        (("tune", 0.5, "0"), "dataset.split_seed must be an integer, got '0'"),
    ],
)
def test_bad_split_options(args: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check_split(*args)
    check_split("tune", 0.5, -3)  # any integer salts the hash


def test_unknown_executor() -> None:
    with pytest.raises(ConfigError, match=r"^unknown executor 'slurm'; choose one of: local, ray$"):
        make_fetch({"name": "slurm"})
