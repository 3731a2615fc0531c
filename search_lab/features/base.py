"""The extractor interface and the one feature registry: `register`, `create`, `available`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from search_lab.errors import ConfigError


class Extractor:
    """Turns an RGB image into a descriptor.

    Subclasses take keyword-only parameters (validated in ``__init__``, raising
    :class:`ConfigError`) and implement :meth:`extract`.

    Attributes
    ----------
    name : str
        Registry name.
    parallel : bool
        True when extraction is cheap Python/NumPy work that scales with a process pool;
        False for extractors that parallelise internally (torch threads).
    max_side : int or None
        Largest image side the feature needs. The loader decodes large JPEGs at reduced size
        and shrinks the image so that neither side exceeds it. None keeps full size.
    """

    name: ClassVar[str] = ""
    parallel: ClassVar[bool] = True
    max_side: int | None = None

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Descriptor of one image: (H, W, 3) uint8 RGB in, 1-D float32 out."""
        raise NotImplementedError

    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors of several images, (N, D) float32 (batched extractors override this)."""
        return np.stack([self.extract(image) for image in images]).astype(np.float32, copy=False)


E = TypeVar("E", bound=type[Extractor])
_REGISTRY: dict[str, Callable[..., Extractor]] = {}


def register(name: str) -> Callable[[E], E]:
    """Class decorator that makes an extractor creatable by ``name``."""

    def wrap(cls: E) -> E:
        if name in _REGISTRY:
            raise ValueError(f"feature {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available() -> list[str]:
    """Names of every registered feature, sorted."""
    return sorted(_REGISTRY)


def create(name: str, **params: Any) -> Extractor:
    """Build the extractor registered as ``name`` with ``params``.

    Raises
    ------
    ConfigError
        If ``name`` is unknown (the message lists the valid names) or a parameter is invalid.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown feature {name!r}; choose one of: {', '.join(available())}")
    try:
        return _REGISTRY[name](**params)
    except TypeError as err:  # unexpected or missing keyword
        raise ConfigError(f"feature {name!r}: {err}") from err
