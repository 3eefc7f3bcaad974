"""Configs: YAML files read with ``yaml.safe_load`` into dataclasses that reject unknown keys."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import FormatError

__all__ = ["from_dict", "load_yaml", "load_layered", "merge_mappings", "parse_overrides", "read_mapping",
           "to_dict"]

C = TypeVar("C")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            if len(args) < len(typing.get_args(hint)):
                return None
            raise ValueError(f"{where}: expected a value, found null")
        return _coerce(value, args[0], where) if len(args) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value, where)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, found {len(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ValueError(f"{where}: expected {hint.__name__}, found {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ``ValueError``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def load_yaml(cls: type[C], path: str | os.PathLike) -> C:
    """Read a YAML file into dataclass ``cls``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise FormatError(path, f"not valid YAML ({exc})") from None
    try:
        return from_dict(cls, data, where=path.name)
    except ValueError as exc:
        raise FormatError(path, str(exc)) from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain mapping of a config dataclass (tuples as lists), for saving beside outputs."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def merge_mappings(base: dict, top: dict) -> dict:
    """``top`` merged over ``base``, nested mappings key by key (neither is changed)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge_mappings(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_mapping(path: str | os.PathLike, missing: str = "config file not found") -> dict[str, Any]:
    """The mapping a YAML file holds (empty file: ``{}``); ``FormatError`` naming the file
    when it is missing (with the message ``missing``), not YAML, or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, missing)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise FormatError(path, f"not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise FormatError(path, f"expected a mapping of settings, found {type(data).__name__}")
    return data


def _read_mapping(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping with its ``base:`` files merged underneath (paths relative to it)."""
    path = path.resolve()
    if path in seen:
        raise FormatError(path, f"'base' chain loops: {' -> '.join(str(p) for p in seen + (path,))}")
    data = read_mapping(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise FormatError(path, f"'base' must be a path, found {base!r}")
    return merge_mappings(_read_mapping(path.parent / base, seen + (path,)), data)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[2, 3]"]`` -> ``{"a": {"b": 1}, "c": [2, 3]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set: expected KEY=VALUE such as train.lr=0.001, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item}: value is not valid YAML ({exc})") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load_layered(cls: type[C], path: str | os.PathLike | None, overrides: dict[str, Any] | None = None) -> C:
    """Read a YAML config whose optional ``base:`` key names a file it extends, apply
    ``overrides`` (see :func:`parse_overrides`) and build ``cls``; unknown keys are
    rejected by name, errors name the file."""
    data = _read_mapping(Path(path)) if path is not None else {}
    data = merge_mappings(data, overrides or {})
    try:
        return from_dict(cls, data, where=Path(path).name if path is not None else "config")
    except ValueError as exc:
        if path is None:
            raise
        raise FormatError(Path(path), str(exc)) from None
