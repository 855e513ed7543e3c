"""Shared helpers for the fast tests (no servers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str) -> list[dict[str, Any]]:
    """A vector file copied from shared/vectors (SPEC-ids.md asks tests to carry their own copy)."""
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))
