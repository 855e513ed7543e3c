"""The flatness measure of the sustained-load test (``bench/memory.py``'s ``peak_growth``) on
synthetic RSS traces: a plateau with a saw-tooth passes, a leak does not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def memory() -> ModuleType:
    name = "uuid_forge_bench_memory"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "bench" / "memory.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _trace(leak_bytes_per_entity: float) -> list[tuple[float, float]]:
    """200k entities, a sample per 1,000: warm-up from 85 to 100 MiB over the first 40k, a 5 MiB
    saw-tooth per 12,500-entity partition, plus the leak."""
    points = []
    for x in range(0, 200_001, 1000):
        settled = 85 * MIB + 15 * MIB * min(1.0, x / 40_000)
        tooth = 5 * MIB * ((x % 12_500) / 12_500)
        points.append((float(x), settled + tooth + leak_bytes_per_entity * x))
    return points


def test_a_settling_saw_tooth_is_flat(memory: ModuleType) -> None:
    growth = memory.peak_growth(_trace(0))
    assert growth is not None and abs(growth) < 0.5


@pytest.mark.parametrize("leak", [60, 200])
def test_a_leak_shows_at_its_rate(memory: ModuleType, leak: int) -> None:
    growth = memory.peak_growth(_trace(leak))
    expected = leak * 100_000 / MIB  # MiB per 100k entities
    assert growth is not None and growth == pytest.approx(expected, abs=0.6)
    assert growth > 5.0  # over the test's SLOPE_LIMIT


def test_too_few_points_give_no_figure(memory: ModuleType) -> None:
    assert memory.peak_growth([]) is None
    assert memory.peak_growth([(0.0, 1.0), (10.0, 2.0)]) is None
