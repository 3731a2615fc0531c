"""A registry by name: ``register``, ``create(name, **params)``, ``available()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from search_lab.errors import ConfigError

T = TypeVar("T")
C = TypeVar("C", bound=type)


class Registry(Generic[T]):
    """Classes creatable by name; ``what`` names the family in messages ("feature", "index").

    ``attr`` is the class attribute that receives the registered name.
    """

    def __init__(self, what: str, attr: str = "name") -> None:
        self.what, self.attr = what, attr
        self._classes: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[C], C]:
        """Class decorator that makes a class creatable by ``name``."""

        def wrap(cls: C) -> C:
            if name in self._classes:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            setattr(cls, self.attr, name)
            self._classes[name] = cls
            return cls

        return wrap

    def available(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._classes)

    def create(self, name: str, **params: Any) -> T:
        """An instance of the class registered as ``name``, built with ``params``.

        Raises
        ------
        ConfigError
            If ``name`` is unknown (the message lists the valid names) or a parameter is invalid.
        """
        if name not in self._classes:
            valid = ", ".join(self.available())
            raise ConfigError(f"unknown {self.what} {name!r}; choose one of: {valid}")
        try:
            return self._classes[name](**params)
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:  # unexpected keyword, or a value of the wrong type
            raise ConfigError(f"{self.what} {name!r}: {err}") from err
