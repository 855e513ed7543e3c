"""Shared helpers and fixtures for the fast tests (no servers); the fixtures live in tests/scaffold.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .scaffold import forge_factory, silent_server

__all__ = ["forge_factory", "load_vectors", "silent_server"]

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str) -> list[dict[str, Any]]:
    """A vector file copied from shared/vectors (SPEC-ids.md asks tests to carry their own copy)."""
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))
