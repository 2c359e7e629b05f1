"""One typed options path for every stage: defaults ← ``--config`` ← ``--set`` ← the stage's flags, checked once.

A stage's options are a frozen dataclass (a subclass of :class:`StageOptions`; YAML sections are nested frozen
dataclasses). The dataclass is the schema: each field's type says what a value may be (``bool``, ``int``,
``float``, ``str``, ``Literal[...]`` for choices, ``X | None``, ``tuple[float, float]`` for a ``[low, high]``
pair, ``tuple[str, ...]`` for a list) and :func:`spec` beside the field adds a range, an order for pairs, a
custom check or deprecated old names. The defaults are the commented ``configs/<stage>/default.yaml``; a test
keeps its keys and the dataclass's fields the same.

:func:`load_options` builds one object from four layers, later ones winning key by key (nested sections are
merged, so ``--set affine.p=1`` keeps the other ``affine`` keys):

1. ``configs/<stage>/default.yaml``;
2. ``--config``: a preset name (``configs/<stage>/<name>.yaml``) or a YAML file with some of the same keys
   (a stage may name a preset that applies when ``--config`` is not given, e.g. ``augment``'s ``xray-spine``);
3. ``--set KEY=VALUE`` (repeatable): any key, dotted for nesting (``affine.rotate=[-5, 5]``), the value parsed
   as YAML;
4. the stage's named flags (or keyword arguments of a library call); ``None`` means "not given".

Every problem is one sentence naming the key, the value and what is allowed: an unknown key (with the closest
known key), a value of the wrong type or out of range, a malformed ``--set``. The object remembers where each
value came from (``default``, ``config``, ``--set``, ``flag`` or ``argument``) for the run record
(:meth:`StageOptions.record`).

Example:
    >>> from yolo_spine.predict.options import PredictOptions
    >>> opts = load_options(PredictOptions, sets=["iou=0.5"], flags={"max_det": 20})
    >>> opts.iou, opts.max_det, opts.origins()["iou"], opts.origins()["conf"]
    (0.5, 20, '--set', 'default')
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import logging
import math
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from yolo_spine.errors import UserError
from yolo_spine.resources import configs_dir

log = logging.getLogger("yolo_spine")

#: Where a value can come from, lowest precedence first (``flag``: the command line; ``argument``: a library call).
ORIGINS = ("default", "config", "--set", "flag", "argument")

T = TypeVar("T", bound="StageOptions")


# --------------------------------------------------------------------------------------------------- schema


def spec(
    *,
    range: tuple[float | None, float | None] | None = None,
    ordered: bool = False,
    check: Callable[[Any], str | None] | None = None,
    aliases: tuple[str, ...] = (),
) -> Any:
    """Declare a field's constraints next to it (the field gets no Python default: defaults live in the YAML).

    Args:
        range: Inclusive ``(low, high)`` bounds of a number, or of every number in a tuple; ``None`` for an open end.
        ordered: For a tuple: values must not decrease (a ``[low, high]`` pair with low <= high).
        check: Further test on the converted value; returns ``None`` if fine, else what is expected
            (completing "expected ...").
        aliases: Deprecated old names of this key (full dotted names); they still work with a warning.

    Returns:
        A :func:`dataclasses.field` carrying the constraints in its metadata.
    """
    return dataclasses.field(metadata={"range": range, "ordered": ordered, "check": check, "aliases": aliases})


@dataclasses.dataclass(frozen=True)
class StageOptions:
    """Base of every stage's options: subclasses are frozen dataclasses whose fields are the YAML's keys.

    Attributes:
        stage: The folder in ``configs/`` holding ``default.yaml`` and the presets.
        default_config: Preset applied when no ``--config`` is given (``None``: ``default.yaml`` alone).
    """

    stage: ClassVar[str]
    default_config: ClassVar[str | None] = None

    @classmethod
    def load(cls: type[T], config: str | Path | None = None, sets: Iterable[str] = (), **values: Any) -> T:
        """Build the options of a library call: defaults ← ``config`` ← ``sets`` ← keyword ``values``.

        Nested sections may be given as partial mappings (``affine={"p": 1.0}``); ``None`` values are ignored.

        Raises:
            UserError: On an unknown key, a wrong type or a value out of range.
        """
        return load_options(cls, config, sets, values, flags_from="argument")

    def replace(self: T, **values: Any) -> T:
        """Return a copy with some values replaced, checked like any other layer (origin ``argument``)."""
        if not values:
            return self
        schema = _Schema.of(type(self))
        flat = _flatten_values(self)
        origins = dict(self.origins())
        where = dict.fromkeys(flat, "these options")
        _apply(schema, flat, origins, where, values, "argument", "keyword arguments")
        return _build(type(self), schema, flat, origins, where, self.config_name())

    def origins(self) -> dict[str, str]:
        """Where each value came from, by dotted key: ``default``, ``config``, ``--set``, ``flag`` or ``argument``."""
        return dict(getattr(self, "_origins", {}))

    def config_name(self) -> str | None:
        """The preset name or YAML path these options were loaded with (``None``: defaults only)."""
        return getattr(self, "_config", None)

    def values(self) -> dict[str, Any]:
        """The values as plain nested dicts (tuples stay tuples)."""
        return dataclasses.asdict(self)

    def record(self) -> dict[str, Any]:
        """The run record of these options.

        Returns:
            Every value, ``config`` (the preset or file) and ``options_from``: the origin of each value that
            is not a default, by dotted key.
        """
        origins = {k: v for k, v in self.origins().items() if v != "default"}
        return {**self.values(), "config": self.config_name(), "options_from": origins}


def stage_default_file(stage: str) -> Path:
    """Return ``configs/<stage>/default.yaml``."""
    return configs_dir() / stage / "default.yaml"


# --------------------------------------------------------------------------------------------------- loader


def load_options(
    cls: type[T],
    config: str | Path | None = None,
    sets: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
    *,
    flags_from: str = "flag",
) -> T:
    """Build a stage's options: ``default.yaml`` ← ``config`` ← ``sets`` ← ``flags``, then check every value.

    Args:
        cls: The stage's :class:`StageOptions` subclass.
        config: Preset name or YAML path; ``None`` uses the class's ``default_config``.
        sets: ``KEY=VALUE`` strings (``--set``); dotted keys reach nested sections; values are YAML.
        flags: Values of named flags by (dotted) key, or nested mappings; ``None`` values are ignored.
        flags_from: Origin recorded for ``flags`` (``flag`` for the command line, ``argument`` for a library call).

    Returns:
        The frozen options, with their origins.

    Raises:
        UserError: One sentence naming the key, the value and what is allowed.
    """
    schema = _Schema.of(cls)
    default_file = stage_default_file(cls.stage)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    where: dict[str, str] = {}
    _apply(schema, values, origins, where, read_yaml(default_file), "default", str(default_file))
    missing = [k for k in schema.leaves if k not in values]
    if missing:
        raise UserError(f"{default_file} lacks the key '{missing[0]}' (the installation is damaged; reinstall)")
    config = cls.default_config if config is None else config
    if config is not None:
        path = preset_path(cls.stage, config)
        if path.resolve() != default_file.resolve():
            _apply(schema, values, origins, where, read_yaml(path), "config", str(path))
    set_values = parse_sets(sets)
    if set_values:
        _apply(schema, values, origins, where, set_values, "--set", "--set")
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    if given:
        label = "the command line" if flags_from == "flag" else "keyword arguments"
        _apply(schema, values, origins, where, given, flags_from, label)
    return _build(cls, schema, values, origins, where, None if config is None else str(config))


def resolve_options(cls: type[T], options: T | None, values: Mapping[str, Any]) -> T:
    """The options a library function runs with: ``options`` (or ``cls``'s defaults) with keyword ``values`` applied.

    Library functions take ``options: XOptions | None = None, **option_values`` and call this once.

    Raises:
        TypeError: If ``options`` is another stage's options (a programming error).
        UserError: If a value is unknown or not allowed.
    """
    if options is None:
        return cls.load(**values)
    if not isinstance(options, cls):
        raise TypeError(f"expected {cls.__name__}, got {type(options).__name__}")
    return options.replace(**values)


def parse_sets(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``--set KEY=VALUE`` strings into ``{key: value}`` (values as YAML; a later key wins).

    Raises:
        UserError: An item without ``=`` or a key, or a value that is not YAML.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set needs KEY=VALUE (e.g. --set iou=0.5), not '{item}'")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--set {key}: {text!r} is not a YAML value (quote text holding ':' or '#')") from None
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning missing files and syntax errors into one-sentence errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of option: value")
    return data


def preset_path(stage: str, name_or_path: str | Path) -> Path:
    """Resolve a preset name (``configs/<stage>/<name>.yaml``) or an explicit YAML path.

    Raises:
        UserError: If neither exists (the message lists the shipped presets).
    """
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} and path.is_file():
        return path
    shipped = configs_dir() / stage / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    known = shipped_presets(stage)
    close = difflib.get_close_matches(str(name_or_path), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    listed = f"shipped: {', '.join(known)}, or give a YAML path" if known else "give a YAML path"
    raise UserError(f"no {stage} preset '{name_or_path}'{hint}; {listed}")


def shipped_presets(stage: str) -> list[str]:
    """Names of the presets shipped in ``configs/<stage>/`` (``default`` excluded)."""
    return sorted(p.stem for p in (configs_dir() / stage).glob("*.yaml") if p.stem != "default")


def deep_update(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``base`` with ``override`` merged in (nested mappings merged key by key)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_update(dict(out[key]), value)
        else:
            out[key] = value
    return out


def suggest(key: str, candidates: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(key, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ------------------------------------------------------------------------------------------------ internals


@dataclasses.dataclass(frozen=True)
class _Leaf:
    type: Any
    meta: Mapping[str, Any]


@dataclasses.dataclass
class _Schema:
    """A dataclass tree flattened to dotted keys."""

    leaves: dict[str, _Leaf]
    sections: dict[str, tuple[str, ...]]  # "" is the top level; value: its direct keys
    aliases: dict[str, str]

    @classmethod
    def of(cls, options_cls: type) -> _Schema:
        schema = cls({}, {}, {})
        schema._add(options_cls, "")
        return schema

    def _add(self, dc: type, prefix: str) -> None:
        hints = get_type_hints(dc)
        names = []
        for f in dataclasses.fields(dc):
            key = prefix + f.name
            names.append(f.name)
            tp = hints[f.name]
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                self._add(tp, key + ".")
            else:
                self.leaves[key] = _Leaf(tp, f.metadata)
                for old in f.metadata.get("aliases", ()):
                    self.aliases[old] = key
        self.sections[prefix.rstrip(".")] = tuple(names)


def _apply(
    schema: _Schema,
    values: dict[str, Any],
    origins: dict[str, str],
    where: dict[str, str],
    layer: Mapping[str, Any],
    origin: str,
    source: str,
    prefix: str = "",
) -> None:
    """Merge one layer into the flat ``values``, checking every key (not yet the values)."""
    for raw_key, value in layer.items():
        key = prefix + str(raw_key)
        if key in schema.aliases:
            new = schema.aliases[key]
            log.warning("%s: '%s' is deprecated and will be removed in the next release; use '%s'", source, key, new)
            key = new
        if key in schema.sections:
            if not isinstance(value, Mapping):
                allowed = ", ".join(schema.sections[key])
                raise UserError(f"{key} = {_show(value)} is not valid: expected a mapping of {allowed} (from {source})")
            _apply(schema, values, origins, where, value, origin, source, key + ".")
        elif key in schema.leaves:
            values[key] = value
            origins[key] = origin
            where[key] = source
        else:
            parent = key.rpartition(".")[0]
            siblings = [f"{parent}.{k}" if parent else k for k in schema.sections.get(parent, ())]
            hint = suggest(key, siblings) or suggest(key, [*schema.leaves, *schema.aliases])
            raise UserError(f"{source}: unknown key '{key}'{hint}")


def _build(
    cls: type[T],
    schema: _Schema,
    values: Mapping[str, Any],
    origins: Mapping[str, str],
    where: Mapping[str, str],
    config: str | None,
) -> T:
    obj = _construct(cls, schema, values, where, "")
    object.__setattr__(obj, "_origins", dict(origins))
    object.__setattr__(obj, "_config", config)
    return obj


def _construct(dc: type, schema: _Schema, values: Mapping[str, Any], where: Mapping[str, str], prefix: str) -> Any:
    hints = get_type_hints(dc)
    kwargs = {}
    for f in dataclasses.fields(dc):
        key = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _construct(hints[f.name], schema, values, where, key + ".")
        else:
            kwargs[f.name] = _checked(key, values[key], schema.leaves[key], where.get(key, ""))
    return dc(**kwargs)


class _Mismatch(Exception):
    """A value that does not fit a type; ``out_of_range`` when its type fits but a bound does not."""

    def __init__(self, out_of_range: bool = False) -> None:
        super().__init__()
        self.out_of_range = out_of_range


def _checked(key: str, value: Any, leaf: _Leaf, source: str) -> Any:
    """Convert and check one value, or raise the one-sentence :class:`UserError`."""
    tail = f" (from {source})" if source else ""
    try:
        converted = _coerce(value, leaf.type, leaf.meta)
    except _Mismatch as m:
        problem = "is out of range" if m.out_of_range else "is not valid"
        raise UserError(f"{key} = {_show(value)} {problem}: expected {_expected(leaf.type, leaf.meta)}{tail}") from None
    check = leaf.meta.get("check")
    if check is not None and converted is not None:
        wanted = check(converted)
        if wanted:
            raise UserError(f"{key} = {_show(value)} is not valid: expected {wanted}{tail}")
    return converted


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType)


def _coerce(value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """Return ``value`` converted to ``tp`` (int → float, list → tuple, int → str), or raise :class:`_Mismatch`."""
    origin, args = get_origin(tp), get_args(tp)
    if _is_union(tp):
        if value is None and type(None) in args:
            return None
        out_of_range = False
        for arm in args:
            if arm is type(None):
                continue
            try:
                return _coerce(value, arm, meta)
            except _Mismatch as m:
                out_of_range |= m.out_of_range
        raise _Mismatch(out_of_range)
    if origin is Literal:
        for choice in args:
            if type(value) is type(choice) and value == choice:
                return choice
        raise _Mismatch()
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            _check_range(value, meta)
            return value
        raise _Mismatch()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            _check_range(value, meta)
            return float(value)
        raise _Mismatch()
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):  # YAML reads `device: 0` as a number
            return str(value)
        if isinstance(value, os.PathLike):  # a library call passing a Path (e.g. a registry YAML)
            return os.fspath(value)
        raise _Mismatch()
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch()
        if len(args) == 2 and args[1] is Ellipsis:
            items = [_coerce(v, args[0], meta) for v in value]
        elif len(value) == len(args):
            items = [_coerce(v, a, meta) for v, a in zip(value, args, strict=True)]
        else:
            raise _Mismatch()
        if meta.get("ordered") and any(a > b for a, b in itertools.pairwise(items)):
            raise _Mismatch()
        return tuple(items)
    raise TypeError(f"unsupported option type {tp!r}")  # a schema bug, not a user error


def _check_range(value: float, meta: Mapping[str, Any]) -> None:
    lo, hi = meta.get("range") or (None, None)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _Mismatch(out_of_range=True)


def _range_text(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("range") or (None, None)
    if lo is not None and hi is not None:
        return f" in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f" of at least {lo:g}"
    if hi is not None:
        return f" of at most {hi:g}"
    return ""


def _noun(tp: Any, plural: bool) -> str:
    s = "s" if plural else ""
    if get_origin(tp) is Literal:
        choices = ", ".join(_show(c) for c in get_args(tp))
        return f"values from {choices}" if plural else choices if len(get_args(tp)) == 1 else f"one of {choices}"
    if tp is bool:
        return "true/false values" if plural else "true or false"
    if tp is int:
        return f"whole number{s}" if plural else "a whole number"
    if tp is float:
        return f"number{s}" if plural else "a number"
    if tp is str:
        return f"string{s}" if plural else "a string"
    return f"value{s}" if plural else "a value"


def _expected(tp: Any, meta: Mapping[str, Any]) -> str:
    """What a type (with its constraints) allows, completing "expected ..."."""
    origin, args = get_origin(tp), get_args(tp)
    if _is_union(tp):
        arms = [_expected(a, meta) for a in args if a is not type(None)]
        return " or ".join(arms) + (" or null" if type(None) in args else "")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_noun(args[0], True)}{_range_text(meta) if args[0] in (int, float) else ''}"
        if len(args) == 2 and args[0] == args[1] and args[0] in (int, float):
            order = " with low <= high" if meta.get("ordered") else ""
            return f"a [low, high] pair of {_noun(args[0], True)}{_range_text(meta)}{order}"
        return f"a list of {len(args)} values"
    text = _noun(tp, False)
    return text + _range_text(meta) if tp in (int, float) else text


def _show(value: Any) -> str:
    """A value as a user would type it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _flatten_values(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_flatten_values(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


__all__ = [
    "ORIGINS",
    "StageOptions",
    "deep_update",
    "load_options",
    "parse_sets",
    "preset_path",
    "read_yaml",
    "resolve_options",
    "shipped_presets",
    "spec",
    "stage_default_file",
    "suggest",
]
