"""Imports point downward (docs/ARCHITECTURE.md): read from the source, every import, lazy ones too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

STUDIO = Path(__file__).resolve().parents[1] / "studio"
# package -> packages it must never import (the layers above it, and gradio outside the adapters)
FORBIDDEN = {
    "data": ("studio.models", "studio.augment", "studio.predict", "studio.train", "studio.curate",
             "studio.service", "studio.app", "studio.ui", "studio.cli"),
    "predict": ("studio.train", "studio.curate", "studio.service", "studio.app", "studio.ui", "studio.cli"),
    "train": ("studio.curate", "studio.service", "studio.app", "studio.ui", "studio.cli"),
    "curate": ("studio.service", "studio.app", "studio.ui", "studio.cli"),
    "service": ("studio.app", "studio.ui", "studio.cli"),
    "app": ("studio.ui", "studio.cli"),
}
GRADIO_ALLOWED = ("ui", "serve")


MODULE_NAME = re.compile(r"studio(\.[a-z_][a-z0-9_]*)+")


def _imports(path: Path, text: str | None = None) -> set[str]:
    """Every module the file imports: plain, relative (resolved), and named in a string for a lazy load
    (`importlib.import_module`, a package's lazy exports, `python -m`)."""
    package = ["studio", *path.relative_to(STUDIO).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8") if text is None else text)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1]
            names.add(".".join([*base, node.module] if node.module else base))
        elif isinstance(node, ast.Constant) and MODULE_NAME.fullmatch(str(node.value)):
            names.add(node.value)
    return names


def _modules():
    return sorted(p for p in STUDIO.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(STUDIO)))
def test_imports_point_downward(path: Path) -> None:
    package = path.relative_to(STUDIO).parts[0] if len(path.relative_to(STUDIO).parts) > 1 else ""
    imported = _imports(path)
    wrong = sorted(name for name in imported for banned in FORBIDDEN.get(package, ())
                   if name == banned or name.startswith(banned + "."))
    assert not wrong, f"{path.relative_to(STUDIO)} imports {wrong} (a layer above it)"
    if package not in GRADIO_ALLOWED:
        assert not any(name == "gradio" or name.startswith("gradio.") for name in imported), \
            f"{path.relative_to(STUDIO)} imports gradio outside studio/ui and studio/serve"


def test_train_and_curate_depend_one_way() -> None:
    """Curation uses training's feature extraction; the engine never reaches up into curation."""
    train = set().union(*(_imports(p) for p in (STUDIO / "train").rglob("*.py")))
    curate = set().union(*(_imports(p) for p in (STUDIO / "curate").rglob("*.py")))
    assert not {n for n in train if n == "studio.curate" or n.startswith("studio.curate.")}
    assert any(n.startswith("studio.train.") for n in curate)  # the one direction, still used
    # the check sees the ways around a plain import too: a lazy load by name and a relative import
    module = STUDIO / "train" / "engine.py"
    assert "studio.curate.report" in _imports(module, 'importlib.import_module("studio.curate.report")')
    assert "studio.curate" in _imports(module, "from ..curate import report")
    assert "studio.train.runs" in _imports(module, "from .runs import RunStore")
