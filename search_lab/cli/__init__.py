"""The entry layer: the Hydra commands (``evaluate``, ``build_index``, sweeps) and their glue.

Only this package reads Hydra/OmegaConf configs; it builds a run's
:class:`~search_lab.retrieval.pipeline.Pipeline` once and hands objects to the core. ``python -m
search_lab.evaluate`` and ``python -m search_lab.build_index`` still work through the shims
at those paths.

The glue's names are loaded on first use (PEP 562): ``python -m search_lab.search`` lives in
this package but reads no config, and importing Hydra would cost it ~0.8 s.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["build_index", "evaluate"],  # each command's ``run``
    submod_attrs={
        "distractor_output": ["curves"],
        "glue": [
            "CONF_DIR",
            "check_overrides",
            "compose_config",
            "composed",
            "entry",
            "register_resolvers",
            "run_job",
        ],
        "recipes": ["RECOMMENDED", "cnn_missing", "folder_recipe", "names_recipe"],
        "sweep": ["comparable_config", "finished_metrics", "job_subdir"],
    },
)
