"""A registry by name: ``register``, ``create(name, **params)``, ``available()``, ``describe``.

Each registered class (or function) carries its own metadata, the timm way: ``label`` (a few
plain words, e.g. ``HSV colour histogram``), ``description`` (one line: what it does and when
to pick it; a function's docstring's first line by default) and ``shown`` (the parameters
worth showing beside its name, each with how its value reads, e.g. ``{"n_trees": "{} trees"}``).
The app, the manifest description and the docs tables read them through :meth:`describe`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from search_lab.core.errors import ConfigError

T = TypeVar("T")
C = TypeVar("C")


@dataclass(frozen=True)
class About:
    """What a registry says about a registered name: its words and the parameters worth showing."""

    name: str
    label: str
    description: str
    shown: Mapping[str, str] = field(default_factory=dict)

    def values(self, params: Mapping[str, Any]) -> list[str]:
        """The shown parameters that ``params`` holds, each as it reads: ``["50 trees"]``."""
        return [form.format(params[key]) for key, form in self.shown.items() if key in params]

    def words(self, params: Mapping[str, Any]) -> str:
        """The label followed by the shown parameters ``params`` holds: ``..., 50 trees``."""
        return ", ".join([self.label, *self.values(params)])


class Registry(Generic[T]):
    """Classes creatable by name; ``what`` names the family in messages ("feature", "index").

    ``attr`` is the class attribute that receives the registered name.
    """

    def __init__(self, what: str, attr: str = "name") -> None:
        self.what, self.attr = what, attr
        self._classes: dict[str, Callable[..., T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[C], C]:
        """Decorator that makes a class (or function) creatable by ``name``.

        ``meta`` (``label=``, ``description=``, ``shown=``) is set as attributes, for
        registered functions, which have no class body to hold them.
        """

        def wrap(cls: C) -> C:
            if name in self._classes:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            setattr(cls, self.attr, name)
            for key, value in meta.items():
                setattr(cls, key, value)
            self._classes[name] = cls  # type: ignore[assignment]
            return cls

        return wrap

    def available(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def get(self, name: str) -> Callable[..., T]:
        """The class registered as ``name``; an unknown name raises ConfigError listing them."""
        if name not in self._classes:
            valid = ", ".join(self.available())
            raise ConfigError(f"unknown {self.what} {name!r}; choose one of: {valid}")
        return self._classes[name]

    def describe(self, name: str) -> About:
        """The label, one-line description and shown parameters of the registered ``name``."""
        cls = self.get(name)
        doc = (getattr(cls, "__doc__", None) or "").strip().partition("\n")[0]
        description = getattr(cls, "description", "") or doc
        label = getattr(cls, "label", "") or description.partition(":")[0]
        return About(name, label, description, dict(getattr(cls, "shown", {}) or {}))

    def create(self, name: str, **params: Any) -> T:
        """An instance of the class registered as ``name``, built with ``params``.

        Raises
        ------
        ConfigError
            If ``name`` is unknown (the message lists the valid names) or a parameter is invalid.
        """
        cls = self.get(name)
        try:
            return cls(**params)
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:  # unexpected keyword, or a value of the wrong type
            raise ConfigError(f"{self.what} {name!r}: {err}") from err
