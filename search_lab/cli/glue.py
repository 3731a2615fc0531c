"""Glue for the Hydra entry points: composing configs, output dirs, resume, one-line errors.

The entry layer: the only code that reads Hydra/OmegaConf configs. It composes the config
(:func:`compose_config`), registers the resolver ``conf/config.yaml`` uses
(:func:`register_resolvers`), and hands a plain dict to the command, which builds the
:class:`~search_lab.retrieval.pipeline.Pipeline` once and passes objects to the core.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NoReturn

from hydra import __version__ as HYDRA_VERSION
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.hydra import Hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from search_lab.core import (
    CONF_DIR,
    ConfigError,
    SearchLabError,
    die_with_parent,
    install,
    remove_leftovers,
    shown,
    write_error,
)

log = logging.getLogger(__name__)

MULTIRUN_FLAGS = frozenset({"-m", "--multirun"})
LAUNCHER_PID_ENV = "SEARCH_LAB_LAUNCHER_PID"  # the pid of the command a sweep's jobs belong to
_GROUP_CHOICE = re.compile(r"^[+~]{0,2}([A-Za-z_]\w*)=([\w.,-]+)$")


def register_resolvers() -> None:
    """Register the OmegaConf resolvers the configs use (``sweep_subdir``); idempotent.

    Called by every entry point before Hydra starts, and by the sweep callback when Hydra
    builds or unpickles it in a job process, so importing a module registers nothing.
    """
    from search_lab.cli.sweep import job_subdir

    if not OmegaConf.has_resolver("sweep_subdir"):
        OmegaConf.register_new_resolver("sweep_subdir", job_subdir)
    if not OmegaConf.has_resolver("index_folder"):
        OmegaConf.register_new_resolver("index_folder", index_folder)


def folder_excluded_keys(conf_dir: Path = CONF_DIR) -> list[str]:
    """The override keys a sweep job's folder is not named after: ``conf/config.yaml``'s
    ``hydra.job.config.override_dirname.exclude_keys`` must be this list (a test checks it).

    The keys that cannot change a result and the paths
    (:func:`search_lab.evaluation.name_excluded`), each section among them spelled out key by
    key as Hydra matches keys exactly (``executor.address``, ... from ``conf/executor/``),
    and ``experiment``, whose own overrides name the job. Written out in the YAML rather than
    through a resolver: Hydra resolves that list while it composes, so a resolver would break
    every plain ``hydra.compose`` that has not registered it first.
    """
    from search_lab.evaluation import PATH_KEYS
    from search_lab.retrieval import RESULT_NEUTRAL_KEYS

    keys = {*RESULT_NEUTRAL_KEYS, *PATH_KEYS, "experiment", "+experiment"}
    for section in RESULT_NEUTRAL_KEYS:
        for option in sorted((conf_dir / section).glob("*.yaml")):
            keys.update(f"{section}.{key}" for key in OmegaConf.load(option))
    return sorted(keys)


def group_defaults(group: str, option: str, conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The values ``conf/<group>/<option>.yaml`` sets, its own defaults list followed
    (``- faiss`` in the same group, ``- /feature/hsv@hsv`` into a key); {} if there is none."""
    path = conf_dir / group / f"{option}.yaml"
    if not path.is_file():
        return {}
    node = OmegaConf.load(path)
    merged = OmegaConf.create()
    entries = [str(e) for e in node.pop("defaults", None) or []]
    for entry in entries if "_self_" in entries else [*entries, "_self_"]:
        if entry == "_self_":
            merged = OmegaConf.merge(merged, node)
            continue
        target, _, key = entry.partition("@")
        sub_group, _, sub_option = target.lstrip("/").rpartition("/")
        part = group_defaults(sub_group or group, sub_option, conf_dir)
        merged = OmegaConf.merge(merged, {key: part} if key else part)
    return OmegaConf.to_container(merged, resolve=False)


def index_folder(
    feature: DictConfig, metric: DictConfig, index: DictConfig, post: DictConfig
) -> str:
    """Resolver ``${index_folder:${feature},${metric},${index},${post}}``: the default index
    folder name, every parameter that differs from its group's defaults encoded
    (:func:`search_lab.retrieval.index_identity.index_folder_name`)."""
    from search_lab.retrieval import index_folder_name

    cfg = {
        name: OmegaConf.to_container(node, resolve=True)
        for name, node in zip(
            ("feature", "metric", "index", "post"), (feature, metric, index, post), strict=True
        )
    }
    reference = {
        name: group_defaults(name, str(cfg[name]["name"]))
        for name in ("feature", "metric", "index")
    }
    reference["post"] = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml").post)
    return index_folder_name(cfg, reference)


def composed(overrides: list[str], name: str = "config", *, hydra: bool = False) -> DictConfig:
    """The config ``name`` of ``conf/`` with ``overrides``, composed by Hydra's compose API.

    ``hydra=True`` keeps the ``hydra`` node (unresolved), as a command line would see it.
    """
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=hydra)


def compose_config(overrides: list[str], name: str = "config") -> dict[str, Any]:
    """The resolved plain-dict config ``name`` with ``overrides``: what a command's run gets.

    Raises ConfigError (the first line of Hydra's message) if the overrides do not compose.
    """
    try:
        return OmegaConf.to_container(composed(overrides, name), resolve=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(str(err).strip().splitlines()[0]) from err


def entry(main: Callable[[], Any], config_name: str) -> None:
    """Run a Hydra ``main`` from the command line: resolvers, a one-line check, then Hydra."""
    register_resolvers()
    install()  # every log line escapes names (Hydra's handlers come later: records are ours)
    checked = check_overrides(sys.argv[1:], config_name)
    with nullcontext() if checked else _composed_once():
        main()


def check_choices(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Exit with one line if a ``group=option`` argument names an option that does not exist.

    Hydra reports that case with a multi-line message; checking the config folder first turns
    ``feature=colour`` into ``error: unknown feature 'colour'; choose one of: ...``. Sweep lists
    (``feature=hsv,lbp``) are checked item by item.
    """
    for arg in argv:
        match = _GROUP_CHOICE.match(arg)
        if not match or not (conf_dir / match.group(1)).is_dir():
            continue
        group, values = match.groups()
        options = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
        for value in values.split(","):
            if value not in options:
                print(
                    f"error: unknown {group} {value!r}; choose one of: {', '.join(options)}",
                    file=sys.stderr,
                )
                sys.exit(2)


def check_overrides(argv: list[str], config_name: str) -> bool:
    """Exit with one line if the command-line overrides do not compose into a config; True if
    they were checked here, False if a plain run leaves it to Hydra's first composition.

    Hydra reports a typo'd key (``feature.binz=...``) or an unknown option in several lines.
    For a multirun (``-m``) this composes the sweep's first job and prints the first line of
    the problem; a plain run is checked by :func:`_composed_once` instead, which saves two
    compositions (about 0.4 s of every command). Hydra's other flags (``--cfg``, ``--help``,
    ...) are left to Hydra.
    """
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())  # inherited by joblib's worker processes
    check_choices(argv)
    flags = {arg for arg in argv if arg.startswith("-")}
    if flags - MULTIRUN_FLAGS:
        return True
    if not flags and HYDRA_VERSION.startswith(COMPOSED_ONCE_FOR):
        return False
    try:
        overrides = [arg for arg in argv if not arg.startswith("-")]
        composed(first_job(overrides) if flags else overrides, config_name, hydra=True)
    except (HydraException, OmegaConfBaseException) as err:
        _exit_one_line(err)
    return True


def _exit_one_line(err: Exception) -> NoReturn:
    """Print the first line of a Hydra composition error (and its "To ..." hint); exit 2."""
    lines = str(err).strip().splitlines()
    hint = f" {lines[1]}" if len(lines) > 1 and lines[1].startswith("To ") else ""
    print(f"error: {lines[0]}{hint}", file=sys.stderr)
    sys.exit(2)


COMPOSED_ONCE_FOR = "1.3."
"""The Hydra versions whose internals :func:`_composed_once` relies on (requirements.txt pins
1.3.8); with another, a plain run's overrides are checked by a composition of their own."""


@contextmanager
def _composed_once() -> Iterator[None]:
    """Compose a plain run's config once, and end the command in one line if that fails.

    Hydra (1.3) composes a plain run's config twice: first only to learn the run mode,
    swallowing any error, then to run it, reporting an error in several lines. Within this
    context the first composition is done as the run's own (an error ends the command in one
    line) and the run is handed that same config instead of composing it again.
    """
    original_load, original_mode = ConfigLoaderImpl.load_configuration, Hydra.get_mode
    kept: dict[tuple[Any, ...], DictConfig] = {}

    def load_configuration(
        loader: ConfigLoaderImpl,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        key = (config_name, tuple(overrides), run_mode, from_shell, validate_sweep_overrides)
        cfg = kept.pop(key, None)
        if cfg is None:
            cfg = original_load(loader, config_name, overrides, run_mode, from_shell,
                                validate_sweep_overrides)  # fmt: skip
        return cfg

    def get_mode(hydra: Hydra, config_name: str | None, overrides: list[str]) -> RunMode:
        try:
            cfg = original_load(hydra.config_loader, config_name, overrides, RunMode.RUN)
        except (HydraException, OmegaConfBaseException) as err:
            _exit_one_line(err)
        kept[(config_name, tuple(overrides), RunMode.RUN, True, True)] = cfg
        return cfg.hydra.mode or RunMode.RUN  # RUN: Hydra then adds no override, so keys match

    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
    Hydra.get_mode = get_mode  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = original_load  # type: ignore[method-assign]
        Hydra.get_mode = original_mode  # type: ignore[method-assign]


def _guard_worker(hydra_cfg: DictConfig) -> None:
    """In a joblib sweep's worker process, end the process as soon as the sweep command dies.

    Without this, ``kill -9`` of the sweep leaves joblib's workers running the queued jobs and
    writing their ``metrics.json``. The worker's parent is the sweep command, so a watchdog
    thread sees the parent pid change within half a second (no parent-death signal: joblib may
    start workers from a thread that ends before the sweep does).
    """
    launcher = str(hydra_cfg.launcher.get("_target_", "")) if "launcher" in hydra_cfg else ""
    pid = os.environ.get(LAUNCHER_PID_ENV, "")
    if "joblib" in launcher.lower() and pid.isdigit() and int(pid) != os.getpid():
        die_with_parent(int(pid), pdeathsig=False)


def first_job(overrides: list[str]) -> list[str]:
    """The overrides of a multirun's first job: each sweep (``a,b``, ``range(...)``) at its
    first value, as Hydra's basic sweeper orders them."""
    first = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()), "")
            first.append(f"{override.get_key_element()}={value}")
        else:
            first.append(override.input_line or "")
    return first


def run_job(run: Callable[[dict[str, Any], Path], Any], cfg: DictConfig) -> Any:
    """Call ``run(config_dict, output_dir)``; a SearchLabError becomes one line and exit status 2.

    In a multirun (``-m``), a job whose output folder already holds a ``metrics.json`` computed
    from the same configuration (``progress``, ``workers``, ``cache_dir`` aside) is not run
    again: its saved metrics are returned. That is how an interrupted sweep resumes when the
    same command is re-run with the same ``hydra.sweep.dir``.
    """
    hydra_cfg = HydraConfig.get()
    out = Path(hydra_cfg.runtime.output_dir)
    _guard_worker(hydra_cfg)
    install()  # a sweep's worker process is a new one
    remove_leftovers(out)
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            from search_lab.cli.sweep import finished_metrics

            done = finished_metrics(out, config)
            if done is not None:
                log.info("skipping finished job %s (metrics.json has the same config)", out)
                return done
        return run(config, out)
    except SearchLabError as err:
        print(f"error: {shown(err)}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # an unwritable cache_dir, index_dir or output folder, a full disk
        print(f"error: {shown(write_error(err))}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # interpolation errors and the like: still one line
        if type(err).__module__.startswith("omegaconf"):
            print(f"error: bad configuration: {err}".splitlines()[0], file=sys.stderr)
            sys.exit(2)
        raise


class AggregateSweep(Callback):
    """Hydra callback: when a multirun ends, write its summary table into the sweep folder.

    Register it in ``hydra.callbacks`` (``_target_: search_lab.cli.glue.AggregateSweep``). If a job
    fails, Hydra stops before ``on_multirun_end``; ``python -m search_lab.compare SWEEP_DIR``
    still tabulates the jobs that finished, and re-running the sweep resumes it.
    """

    def __init__(self) -> None:
        register_resolvers()

    def __reduce__(self) -> tuple[type, tuple]:
        """Unpickled in a job process by calling the class: the resolver is registered there."""
        return type(self), ()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Aggregate every job under ``config.hydra.sweep.dir``."""
        from search_lab.cli.sweep import write_summary  # pandas: only when a sweep ends

        write_summary(Path(str(config.hydra.sweep.dir)))
