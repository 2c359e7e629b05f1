"""The untyped options of the stages not yet moved to :mod:`yolo_spine.options` (train, demo).

``load_options(kind, preset, overrides)`` returns a plain dict: ``configs/<kind>/default.yaml`` ← a preset name
or YAML path (the command's ``--config``) ← the command's flags. Keys are
checked against ``default.yaml`` (an unknown key stops the run with ``unknown key 'epoch' (did you mean
'epochs'?)``); values are not. These stages have no ``--set`` yet.

New code uses :func:`yolo_spine.options.load_options`: a frozen, typed dataclass per stage, ``--set KEY=VALUE``,
types and ranges checked once, and the origin of every value recorded. This module goes once the stages above
are migrated (``augment``, ``predict``, ``val``, ``export``, ``ct2yolo``, ``lift`` and ``eval3d`` already are).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolo_spine.errors import UserError
from yolo_spine.options import deep_update, preset_path, read_yaml, stage_default_file, suggest

__all__ = ["check_keys", "deep_update", "load_options", "preset_path", "read_yaml"]


def check_keys(options: Mapping[str, Any], allowed: Mapping[str, Any] | set[str], where: str) -> None:
    """Raise a :class:`UserError` naming the first unknown key and the closest allowed key.

    Nested mappings are checked recursively when the allowed value is itself a mapping.

    Args:
        options: The user's options.
        allowed: The known keys (a defaults mapping or a set of names).
        where: Where the options came from, for the message (a file path or ``"command-line options"``).
    """
    for key, value in options.items():
        if key not in allowed:
            raise UserError(f"{where}: unknown key '{key}'{suggest(str(key), [str(k) for k in allowed])}")
        if isinstance(allowed, Mapping) and isinstance(allowed[key], Mapping) and isinstance(value, Mapping):
            check_keys(value, allowed[key], f"{where}: {key}")


def load_options(
    kind: str, preset: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Resolve options: ``configs/<kind>/default.yaml`` ← preset YAML ← explicit overrides (keys checked only).

    Args:
        kind: Config family (``train``, ``demo``).
        preset: Preset name or YAML path; ``None`` uses the defaults alone.
        overrides: Options set on the command line; ``None`` values are ignored (flag not given).

    Returns:
        The merged options; every key is one that ``default.yaml`` defines.

    Raises:
        UserError: On an unknown key (with a suggestion), a missing preset or invalid YAML.
    """
    default_file = stage_default_file(kind)
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
