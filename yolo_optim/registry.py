"""Registries: the single list of every pluggable kind (backends, importance criteria, allocations, searchers, ...).

A module adds an entry by decorating it (`@IMPORTANCES.register("l2")`); config validation, CLI help and target
parsing ask the registry for its names, so adding a criterion, a backend or a searcher is one new module plus its
test. A registry knows which modules define its built-in entries and imports them on first lookup, so asking for
the names never needs a hard-coded second list; third-party entries register by being imported (or through the
`yolo_optim.plugins` entry-point group, loaded on first lookup as well).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import OptimError

T = TypeVar("T")
ENTRY_POINT_GROUP = "yolo_optim.plugins"  # modules named here are imported once, before any registry lookup
_plugins_loaded = False


class Registry(Generic[T]):
    """Name -> entry, filled by decorators in the modules listed in `modules` (imported lazily)."""

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind  # what an entry is, for messages: "backend", "importance criterion", ...
        self._modules = modules  # modules whose import registers the built-in entries
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, entry: T | None = None) -> Any:
        """`@REG.register("name")` on a class or function, or `REG.register("name", obj)`; returns the entry."""
        def add(obj: T) -> T:
            if not name or not isinstance(name, str):
                raise ValueError(f"a {self.kind} needs a non-empty name")
            self._entries[name] = obj
            return obj

        return add(entry) if entry is not None else add

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: a module being imported may itself ask for names
            for module in self._modules:
                importlib.import_module(module)
            _load_plugins()

    def names(self) -> list[str]:
        """Every registered name, built-ins in registration order."""
        self._load()
        return list(self._entries)

    def get(self, name: str) -> T:
        """The entry registered as `name`; an unknown name is an OptimError naming the closest valid one."""
        self._load()
        if name not in self._entries:
            raise OptimError(f"unknown {self.kind} '{name}'{suggest(name, self._entries)}; "
                             f"choose one of {', '.join(self._entries)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return list(self._entries.items())


def suggest(word: str, choices: Any) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _load_plugins() -> None:
    """Import the modules third-party packages declare under the `yolo_optim.plugins` entry-point group."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plugin must not take the whole tool down
            import logging

            logging.getLogger("yolo_optim").warning("plugin %s failed to load: %s", ep.name, e)


# The registries of the project. Each names the modules whose decorators fill it.
BACKENDS: Registry[Any] = Registry("backend", (
    "yolo_optim.export.torch", "yolo_optim.export.onnxruntime", "yolo_optim.export.openvino",
    "yolo_optim.export.tensorrt"))
IMPORTANCES: Registry[Callable[..., Any]] = Registry("importance criterion", ("yolo_optim.prune.importance",))
ALLOCATIONS: Registry[Callable[..., Any]] = Registry("allocation", ("yolo_optim.prune.allocate",))
SEARCHERS: Registry[Callable[..., Any]] = Registry("searcher", ("yolo_optim.tune.searchers",))
SCHEDULERS: Registry[Callable[..., Any]] = Registry("scheduler", ("yolo_optim.tune.searchers",))
