"""The TOML writer: what it writes reads back (with the standard library's tomllib) as exactly
the dict it was given, for specs and for random nested documents, and what TOML cannot hold is
refused naming the key."""

from __future__ import annotations

import datetime
import math
import random
import tomllib
from typing import Any

import pytest

from cauda_client import ConfigError, to_toml
from conftest import tiny_spec


def round_trip(doc: dict[str, Any]) -> dict[str, Any]:
    return tomllib.loads(to_toml(doc))


def test_a_spec_with_a_sweep_reads_back_and_quotes_dotted_keys() -> None:
    spec = tiny_spec("py", 2, sweep={"train.seed": [1, 2], "method": ["ce", "ldam-drw"]})
    text = to_toml(spec)
    assert '"train.seed" = [1, 2]' in text, text
    assert "[data.imbalance]" in text and "[train.optimizer]" in text, text
    assert round_trip(spec) == spec


def test_strings_escape_everything_toml_requires() -> None:
    doc = {"s": 'a "quoted" \\ back\nnew\ttab\r\x00\x1f\x7f é 🦀', "k y": {"a.b": {"c": "d"}}}
    assert round_trip(doc) == doc


def test_numbers_bools_dates_and_arrays() -> None:
    doc: dict[str, Any] = {
        "ints": [0, -1, 2**63 - 1, -(2**63)],
        "floats": [0.1, -2.0, 1e-05, 1e300, 5e-324, 3.0],
        "flags": [True, False],
        "when": datetime.datetime(2026, 12, 3, 10, 30, 0, 123000, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2026, 12, 3),
        "empty": [],
        "mixed": [1, "a", {"k": [{"z": 1}]}],
        "empty_table": {},
    }
    assert round_trip(doc) == doc
    back = round_trip({"i": math.inf, "m": -math.inf, "n": math.nan})
    assert back["i"] == math.inf and back["m"] == -math.inf and math.isnan(back["n"])
    assert "f = 3.0" in to_toml({"f": 3.0}), "a float stays a float"


def test_arrays_of_tables_with_nested_tables() -> None:
    doc = {
        "name": "x",
        "methods": [{"name": "a", "loss": {"beta": 0.9, "inner": {"x": 1}}}, {"name": "b"}],
        "outer": {"only": {"tables": {"deep": True}}},
    }
    text = to_toml(doc)
    assert text.count("[[methods]]") == 2 and "[methods.loss]" in text, text
    assert round_trip(doc) == doc


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"train": {"lr": None}}, "train.lr"),
        ({"methods": [{"name": "a"}, {"name": object()}]}, "methods[1].name"),
        ({"a": [1, None]}, "a[1]"),
        ({"big": 2**64}, "big"),
        ({"t": {3: "x"}}, "t"),
    ],
)
def test_what_toml_cannot_hold_is_refused_naming_the_key(doc: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        to_toml(doc)
    assert str(err.value).startswith(where), str(err.value)


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.choice(["int", "float", "str", "bool", "list", "table", "tables"][: 4 + 3 * (depth < 3)])
    if kind == "int":
        return rng.randint(-(2**63), 2**63 - 1)
    if kind == "float":
        return rng.choice([rng.uniform(-1e6, 1e6), rng.random() * 10 ** rng.randint(-300, 300)])
    if kind == "str":
        return "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0xA0, 0x2FFF)])) for _ in range(rng.randint(0, 8)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "table":
        return _random_table(rng, depth + 1)
    return [_random_table(rng, depth + 1) for _ in range(rng.randint(1, 3))]


def _random_table(rng: random.Random, depth: int) -> dict[str, Any]:
    keys = ["a", "b-c", "d_e", "x.y", "with space", "ü", "", '"q"', "1"]
    return {rng.choice(keys): _random_value(rng, depth) for _ in range(rng.randint(0, 4))}


def test_random_documents_round_trip() -> None:
    rng = random.Random(17)
    for _ in range(500):
        doc = _random_table(rng, 0)
        text = to_toml(doc)
        assert tomllib.loads(text) == doc, text
