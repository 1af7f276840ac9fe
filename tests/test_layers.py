"""Imports point downward (docs/ARCHITECTURE.md): read from the source, every import, lazy ones too."""

from __future__ import annotations

import ast
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


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
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
