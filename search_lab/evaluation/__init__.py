"""Score retrieval and compare runs.

- ``protocol``: an evaluation run (queries, rankings, re-ranking) on a dataset.
- ``metrics``, ``stats``: AP, precision and recall at k; intervals and paired tests.
- ``runs``, ``run_scores``, ``run_tables``, ``comparison``: finished runs loaded, scored and
  tabulated side by side.
- ``speed_recall``: picking search settings by recall and speed.
- ``tune_space``: the search spaces of the tune command.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "comparison": [
            "DIFF_PREFIX",
            "check_columns",
            "diff_to_baseline",
            "filter_runs",
            "parse_filter",
            "sort_runs",
        ],
        "metrics": ["ap_rule", "positive_ranks", "recall_at_k", "score_ranked"],
        "protocol": ["Evaluation", "evaluate", "pick_queries", "ranked_ids"],
        "run_scores": [
            "CI_COLUMNS",
            "PAIRED_COLUMNS",
            "PER_QUERY_ATTR",
            "RunScores",
            "map_interval",
            "per_query",
        ],
        "run_tables": [
            "display_frame",
            "format_cell",
            "legend",
            "p_text",
            "table_markdown",
            "table_text",
        ],
        "runs": [
            "OUTPUTS_ENV",
            "PATH_KEYS",
            "outputs_dir",
            "CompareError",
            "SKIPPED_ATTR",
            "common_items",
            "k_order",
            "load_runs",
            "metrics_problem",
            "name_excluded",
            "name_items",
            "short_labels",
        ],
        "speed_recall": ["best_at"],
        "stats": ["PairedComparison", "bootstrap_ci", "paired_comparison", "shared_values"],
        "tune_space": ["SPACES", "as_overrides", "experiment_yaml"],
    },
)
