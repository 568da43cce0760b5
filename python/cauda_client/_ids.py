"""Run and experiment ids as people write them: ``r-12`` or ``12`` for a run, ``e-3`` or ``3``
for an experiment, the same forms the ``cauda`` CLI accepts (client/src/ids.rs), so ids can be
copied from its output into Python."""

from __future__ import annotations

from .errors import ConfigError

RunId = int | str
ExperimentId = int | str


def parse_id(value: int | str, prefix: str, what: str) -> int:
    """The number of an id given as ``N``, ``"N"`` or ``"<prefix>-N"``; zero, negatives,
    booleans and other prefixes are refused with :class:`ConfigError`."""
    if isinstance(value, bool):
        raise ConfigError(f"{value!r} is not a {what} id")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        head, sep, tail = text.partition("-")
        if sep and head.lower() == prefix:
            text = tail
        elif sep:
            raise ConfigError(f"`{value}` is not a {what} id (expected `{prefix}-N` or `N`)")
        if not text.isascii() or not text.isdigit():
            raise ConfigError(f"`{value}` is not a {what} id (expected `{prefix}-N` or `N`)")
        number = int(text)
    else:
        raise ConfigError(f"{value!r} is not a {what} id")
    if number < 1:
        raise ConfigError(f"{what} ids start at 1, got `{value}`")
    if number >= 1 << 64:
        raise ConfigError(f"`{value}` is too large for a {what} id")
    return number


def run_id(value: RunId) -> int:
    """A run id: ``12``, ``"12"`` or ``"r-12"``."""
    return parse_id(value, "r", "run")


def experiment_id(value: ExperimentId) -> int:
    """An experiment id: ``3``, ``"3"`` or ``"e-3"``."""
    return parse_id(value, "e", "experiment")
