"""A small TOML writer, so a spec can be built as a Python dict and submitted.

The daemon takes specs as TOML text. Python 3.11 reads TOML (``tomllib``) but cannot write it,
and a dependency for this one job is not worth it, so this module writes the subset a spec
needs, correctly: nested tables (``[train]``, ``[a.b]``), arrays of tables (``[[methods]]``),
inline tables inside arrays, strings with every escape TOML requires, integers, floats
(including ``inf`` and ``nan``), booleans and dates/times. Keys that are not bare (``"train.seed"``
in ``[sweep]``) are quoted. ``None`` and other types have no TOML form and raise
:class:`~cauda_client.errors.ConfigError` naming the key, instead of writing something the
daemon would read differently. ``tomllib.loads(dumps(d)) == d`` holds for every accepted ``d``.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def dumps(document: Mapping[str, Any]) -> str:
    """The TOML text of ``document`` (a mapping with string keys)."""
    if not isinstance(document, Mapping):
        raise ConfigError(f"a TOML document is a mapping, got {type(document).__name__}")
    lines: list[str] = []
    _table(document, [], "", lines)
    return "\n".join(lines) + "\n" if lines else ""


def _join(where: str, key: object) -> str:
    """The dotted path of ``key`` under ``where``, for error messages (``methods[2].loss``)."""
    return f"{where}.{key}" if where else str(key)


def _key(key: object, where: str) -> str:
    if not isinstance(key, str):
        raise ConfigError(f"{where or 'the document'}: keys must be strings, got {key!r}")
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _is_table(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: object) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(item, Mapping) for item in value)
    )


def _is_plain(value: object) -> bool:
    return not _is_table(value) and not _is_table_array(value)


def _table(table: Mapping[Any, Any], keys: list[str], where: str, lines: list[str]) -> None:
    """Writes ``table``'s plain keys, then its sub-tables, then its arrays of tables. ``keys``
    are the TOML keys of its header, ``where`` its path in messages (with array indexes)."""
    for key, value in table.items():
        if _is_plain(value):
            lines.append(f"{_key(key, where)} = {_value(value, _join(where, key))}")
    for key, value in table.items():
        if _is_table(value):
            sub = [*keys, _key(key, where)]
            # A table holding only tables needs no header of its own, unless it is empty.
            if not value or any(_is_plain(v) for v in value.values()):
                _header(lines, f"[{'.'.join(sub)}]")
            _table(value, sub, _join(where, key), lines)
    for key, items in table.items():
        if _is_table_array(items):
            sub = [*keys, _key(key, where)]
            for index, item in enumerate(items):
                _header(lines, f"[[{'.'.join(sub)}]]")
                _table(item, sub, f"{_join(where, key)}[{index}]", lines)


def _header(lines: list[str], header: str) -> None:
    if lines:
        lines.append("")
    lines.append(header)


def _value(value: object, where: str) -> str:
    """One value written inline (a key's value, an array item, an inline table's value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:
            raise ConfigError(f"{where}: {value} does not fit TOML's 64-bit integers")
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if "." in text or "e" in text else text + ".0"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = [f"{_key(k, where)} = {_value(v, _join(where, k))}" for k, v in value.items()]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    if value is None:
        raise ConfigError(f"{where}: None has no TOML form; leave the key out instead")
    raise ConfigError(f"{where}: a {type(value).__name__} has no TOML form")


def _string(text: str) -> str:
    """A basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
