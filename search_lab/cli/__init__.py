"""The entry layer: the Hydra commands (``evaluate``, ``build_index``, sweeps) and their glue.

Only this package reads Hydra/OmegaConf configs; it builds a run's
:class:`~search_lab.pipeline.Pipeline` once and hands objects to the core. ``python -m
search_lab.evaluate`` and ``python -m search_lab.build_index`` still work through the shims
at those paths.
"""

from search_lab.cli.glue import (
    CONF_DIR,
    check_overrides,
    compose_config,
    composed,
    register_resolvers,
    run_job,
)

__all__ = [
    "CONF_DIR",
    "check_overrides",
    "compose_config",
    "composed",
    "register_resolvers",
    "run_job",
]
