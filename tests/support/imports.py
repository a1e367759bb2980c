"""Which first-party module imports which, read with ``ast`` (no module is imported), and
the imports that break a layering: each unit (a package, or a top-level module) sits in
a layer and may import only units of lower layers (and itself).

Every import counts: at the top of a module, inside a function, under
``if TYPE_CHECKING:``. A layering is a list of ``Layer`` from the bottom up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layer:
    name: str
    units: tuple[str, ...]  # dotted names: "lakehouse.lake", "flows"
    why: str


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    path: Path
    line: int
    target: str  # the imported module, dotted


@dataclass(frozen=True)
class Violation:
    imported: Import
    reason: str

    def __str__(self) -> str:
        i = self.imported
        return f"{i.path}:{i.line}: {i.module} imports {i.target}: {self.reason}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def first_party_imports(root: Path, packages: Iterable[str]) -> Iterator[Import]:
    """Every import of a module under ``packages`` (top-level names) found below
    ``root``, in the modules of those packages."""
    tops = set(packages)
    modules = {
        module_name(root, p): p for top in sorted(tops) for p in sorted((root / top).rglob("*.py"))
    }
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, up level - 1
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join([*package, *([base] if base else [])])
                # `from a import b` imports the module a.b when there is one
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for target in targets:
                if target.split(".")[0] in tops:
                    yield Import(name, path, node.lineno, target)


def unit_of(module: str, layers: Sequence[Layer]) -> str | None:
    """The unit a module belongs to: the longest unit name that is it or contains it."""
    found = [
        u for layer in layers for u in layer.units if module == u or module.startswith(u + ".")
    ]
    return max(found, key=len) if found else None


def check(root: Path, packages: Iterable[str], layers: Sequence[Layer]) -> list[Violation]:
    """The imports that run upward or sideways between units, and those of or into a
    module no layer holds."""
    tops = set(packages)
    rank = {unit: i for i, layer in enumerate(layers) for unit in layer.units}
    found: list[Violation] = []
    for imp in first_party_imports(root, tops):
        source, target = unit_of(imp.module, layers), unit_of(imp.target, layers)
        if (source is None and imp.module in tops) or (target is None and imp.target in tops):
            continue  # a top package's own __init__ (the namespace): no layer of its own
        if source is None or target is None:
            missing = imp.module if source is None else imp.target
            found.append(Violation(imp, f"{missing} is in no layer: give it one"))
        elif source != target and rank[target] >= rank[source]:
            where = "above" if rank[target] > rank[source] else "beside"
            found.append(
                Violation(
                    imp,
                    f"{target} ({layers[rank[target]].name}) is {where} "
                    f"{source} ({layers[rank[source]].name})",
                )
            )
    return found
