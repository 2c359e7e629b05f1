"""Strict YAML option files: a commented defaults file per command, unknown keys are errors with a suggestion.

Presets live in ``configs/<kind>/<name>.yaml`` (for example ``configs/train/spine.yaml``). A user may pass a
preset name or a path to their own YAML with the same keys; command-line flags override both. Keys are
checked against the shipped ``default.yaml`` of that kind, so a typo such as ``epoch: 10`` stops the run
with ``unknown key 'epoch' (did you mean 'epochs'?)`` instead of being ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from yolo_spine.errors import UserError
from yolo_spine.registry import configs_dir


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


def check_keys(options: Mapping[str, Any], allowed: Mapping[str, Any] | set[str], where: str) -> None:
    """Raise a :class:`UserError` naming the first unknown key and the closest allowed key.

    Nested mappings are checked recursively when the allowed value is itself a mapping.

    Args:
        options: The user's options.
        allowed: The known keys (a defaults mapping or a set of names).
        where: Where the options came from, for the message (a file path or ``"--set"``).
    """
    for key, value in options.items():
        if key not in allowed:
            close = difflib.get_close_matches(str(key), [str(k) for k in allowed], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{where}: unknown key '{key}'{hint}")
        if isinstance(allowed, Mapping) and isinstance(allowed[key], Mapping) and isinstance(value, Mapping):
            check_keys(value, allowed[key], f"{where}: {key}")


def preset_path(kind: str, name_or_path: str | Path) -> Path:
    """Resolve a preset name (``configs/<kind>/<name>.yaml``) or an explicit YAML path.

    Raises:
        UserError: If neither exists (the message lists the shipped presets).
    """
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} and path.is_file():
        return path
    shipped = configs_dir() / kind / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    known = sorted(p.stem for p in (configs_dir() / kind).glob("*.yaml") if p.stem != "default")
    close = difflib.get_close_matches(str(name_or_path), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UserError(f"no {kind} preset '{name_or_path}'{hint}; shipped: {', '.join(known)}, or give a YAML path")


def deep_update(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``base`` with ``override`` merged in (nested mappings merged key by key)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_update(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_options(
    kind: str, preset: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Resolve options: ``configs/<kind>/default.yaml`` ← preset YAML ← explicit overrides.

    Args:
        kind: Config family (``train``, ``augment``, ``ct``).
        preset: Preset name or YAML path; ``None`` uses the defaults alone.
        overrides: Options set on the command line; ``None`` values are ignored (flag not given).

    Returns:
        The merged options; every key is one that ``default.yaml`` defines.

    Raises:
        UserError: On an unknown key (with a suggestion), a missing preset or invalid YAML.
    """
    default_file = configs_dir() / kind / "default.yaml"
    options = read_yaml(default_file)
    if preset is not None:
        path = preset_path(kind, preset)
        if path.resolve() != default_file.resolve():
            user = read_yaml(path)
            check_keys(user, options, str(path))
            options = deep_update(options, user)
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        check_keys(given, options, "command-line options")
        options = deep_update(options, given)
    return options
