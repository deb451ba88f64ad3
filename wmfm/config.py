"""Typed configuration: frozen dataclasses built from plain dicts (YAML/JSON), strictly.

Unknown keys and wrong types fail at load time with one line naming the dotted field,
e.g. ``twin.traffic.lanes_per_direction: expected int, got str ('two')``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type (message names the field)."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} ({value!r})")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, f"{where}.<key>"): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected float, got {type(value).__name__} ({value!r})")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected int, got {type(value).__name__} ({value!r})")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {type(value).__name__} ({value!r})")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected str, got {type(value).__name__} ({value!r})")
        return value
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)}")


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; fields absent from ``data`` keep their defaults."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field without default is missing
        raise ConfigError(f"{where}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(where)
    return obj


def to_dict(obj: Any) -> Any:
    """Plain (JSON/YAML-safe) form of a config dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_file(cls: type[T], path: str | Path, where: str | None = None) -> T:
    """Load a YAML or JSON file into ``cls`` (``where`` prefixes field names in errors)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    return from_dict(cls, data or {}, where or path.name)


def check(cond: bool, where: str, msg: str) -> None:
    """Raise ConfigError(``where: msg``) unless ``cond`` holds; used by ``validate`` methods."""
    if not cond:
        raise ConfigError(f"{where}: {msg}")


def check_range(value, lo, hi, where: str) -> None:
    """lo <= value <= hi (finite), else ConfigError naming ``where``."""
    def num(x) -> str:
        return str(x) if isinstance(x, int) else f"{x:g}"
    check(isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi, where,
          f"must be in [{num(lo)}, {num(hi)}], got {value!r}")


def check_cell(cell: str, where: str) -> None:
    """A cell as the messages name it: "<plmn>:<nr_cell_id>" (PLMN of 5-6 digits), e.g. 00101:1."""
    plmn, _, nr = cell.partition(":")
    check(plmn.isdigit() and len(plmn) in (5, 6) and nr.isdigit() and int(nr) < 1 << 36, where,
          f"expected <plmn>:<nr_cell_id> like 00101:1, got {cell!r}")


def field_docs(cls: type) -> dict[str, str]:
    """{field: the comment written after it in the class source} of a config dataclass, comment
    lines that continue it (aligned under it) included: the one description of each field, read
    by the generated reference (docs/reference/) and the descriptor's controls schema."""
    import inspect
    import re
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    last, col = None, None
    for line in lines:
        m = re.match(r"^\s+(\w+)\s*:\s*[^#]*?(#\s?(.*))?$", line)
        cont = re.match(r"^(\s+)#\s?(.*)$", line)
        if cont and last is not None and col is not None and len(cont.group(1)) >= col - 2:
            out[last] = f"{out[last]} {cont.group(2).strip()}".strip()
            continue
        if m and not line.lstrip().startswith(("def ", "return", "#", "@")) and "(" not in line.split(":")[0]:
            last = m.group(1)
            out[last] = (m.group(3) or "").strip()
            col = line.index("#") if "#" in line else None
        elif line.strip():
            last, col = None, None
    return {k: v for k, v in out.items() if k in {f.name for f in dataclasses.fields(cls)}}
