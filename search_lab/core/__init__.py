"""The ground floor every stage stands on; it imports no other sub-package.

- ``errors``: the project's exception types (one clear line each).
- ``params``: checks of configuration values (``require_*``).
- ``registry``: components created by name, with their metadata.
- ``logs``: logging set-up and the one-line error of a command.
- ``files``, ``swap``, ``lifeline``: atomic writes, folder swaps, clean-up after killed writers.
- ``readers``: bounded readers of JSON, CSV and text read back from disk.
- ``integrity``, ``manifest``, ``ownership``: checksums, index manifests, folders we wrote.
- ``results``: the results files (``metrics.json``, rankings) written and read back.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["integrity", "ownership", "readers", "swap"],
    submod_attrs={
        "errors": [
            "ConfigError",
            "DatasetError",
            "ImageLoadError",
            "IndexMismatchError",
            "SearchLabError",
            "UnreadableFileError",
        ],
        "files": [
            "atomic_write",
            "atomic_write_bytes",
            "atomic_write_json",
            "atomic_write_text",
            "library_write",
            "remove_leftovers",
            "temporary_dir",
        ],
        "lifeline": ["die_with_parent", "is_tagged", "owner_tag", "remove_stale"],
        "logs": ["install", "run_command", "shown", "write_error"],
        "manifest": [
            "FORMAT",
            "MANIFEST",
            "REBUILD",
            "manifest_of",
            "names_problem",
            "path_in",
            "root_problem",
        ],
        "paths": ["CACHE_ENV", "CONF_DIR", "PROJECT_DIR", "cache_root"],
        "params": [
            "is_int",
            "is_number",
            "require",
            "require_bool",
            "require_choice",
            "require_int",
            "require_int_pair",
            "require_jobs",
            "require_number",
            "require_positive_int",
            "require_seed",
        ],
        "readers": [
            "MiB",
            "RECORD_MAX_BYTES",
            "expect",
            "is_regular",
            "parse_json",
            "read_csv",
            "read_json",
            "read_text",
        ],
        "registry": ["Registry"],
        "results": [
            "METRICS_FILE",
            "RANKINGS_FILE",
            "read_json_object",
            "summary_lines",
            "write_bytes",
            "write_json",
            "write_rankings",
            "write_report",
            "write_text",
        ],
    },
)
