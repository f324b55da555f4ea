"""One exception tree: every exception class of taskstream descends from TaskstreamError,
and the drawing in ``schemas/errors.py`` is the tree the code has."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

from taskstream.schemas import TaskstreamError, errors

PACKAGES = ("taskstream",)
"""Every module of these is imported (but ``__main__`` and Alembic's migration scripts,
which run when imported and only under Alembic)."""
_LINE = re.compile(
    r"^(?P<indent>[ │├└─]*)(?P<name>\w+)(?: \((?P<builtins>[\w, ]+)\))?\s+(?P<module>[\w.]+)$"
)


def _exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        modules = [package_name] + [
            info.name
            for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}.")
            if not info.name.endswith("__main__") and ".migrations" not in info.name
        ]
        for name in modules:
            module = importlib.import_module(name)
            for _, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, BaseException) and value.__module__ == name:
                    found.append(value)
    return found


def _drawn() -> dict[str, tuple[str | None, set[str], str]]:
    """Each drawn class: (its parent in the tree, its builtin bases, its module)."""
    doc = errors.__doc__ or ""
    drawn: dict[str, tuple[str | None, set[str], str]] = {}
    parents: list[tuple[int, str]] = []  # (depth, name), the path to the current line
    for line in doc.splitlines():
        match = _LINE.match(line)
        if match is None or not (line.startswith("TaskstreamError") or match["indent"]):
            continue
        depth = len(match["indent"])
        while parents and parents[-1][0] >= depth:
            parents.pop()
        builtins = {b.strip() for b in (match["builtins"] or "").split(",") if b.strip()}
        parent = parents[-1][1] if parents else None
        drawn[match["name"]] = (parent, builtins, match["module"])
        parents.append((depth, match["name"]))
    return drawn


def test_every_exception_class_is_under_taskstream_error() -> None:
    classes = _exception_classes()
    assert len(classes) > 30, "the walk found the packages' exceptions"
    outside = sorted(
        f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, TaskstreamError)
    )
    assert outside == [], "re-parent these under TaskstreamError (schemas/errors.py)"


def test_the_drawing_is_the_tree_the_code_has() -> None:
    drawn = _drawn()
    public = {c.__name__: c for c in _exception_classes() if not c.__name__.startswith("_")}
    assert set(drawn) == set(public), "draw each public exception class, and only those"
    for name, (parent, builtins, module) in drawn.items():
        cls = public[name]
        assert cls.__module__ == f"taskstream.{module}", name
        ours = [b for b in cls.__bases__ if issubclass(b, TaskstreamError)]
        others = {b.__name__ for b in cls.__bases__ if not issubclass(b, TaskstreamError)}
        if parent is None:
            assert cls is TaskstreamError
            continue
        assert [b.__name__ for b in ours] == [parent], f"{name}'s parent"
        assert others == builtins, f"{name}'s builtin bases"
