"""The entry layer: the Hydra commands (``evaluate``, ``build_index``, sweeps) and their glue.

Only this package reads Hydra/OmegaConf configs; it builds a run's
:class:`~search_lab.retrieval.pipeline.Pipeline` once and hands objects to the core. ``python -m
search_lab.evaluate`` and ``python -m search_lab.build_index`` still work through the shims
at those paths.

The glue's names are loaded on first use (PEP 562): ``python -m search_lab.search`` lives in
this package but reads no config, and importing Hydra would cost it ~0.8 s.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CONF_DIR",
    "check_overrides",
    "compose_config",
    "composed",
    "register_resolvers",
    "run_job",
]


def __getattr__(name: str) -> Any:
    """``search_lab.cli.compose_config`` and the other glue names, imported when first asked."""
    if name in __all__:
        from search_lab.cli import glue

        return getattr(glue, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
