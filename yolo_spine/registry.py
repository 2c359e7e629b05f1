"""Anatomy class registries: the one place class names, order, aliases, mirror pairs and label ids come from.

Each registry is a YAML file in ``configs/anatomy/`` (``spine``, ``teeth``, ``brain``; a user may pass a path
to a file of the same shape). Every command reads classes through :func:`load_registry`, so the class order
of a merged dataset, a trained model, a review and a 3D metric table is always the same anatomical order.

Example:
    >>> reg = load_registry("spine")
    >>> reg.names[:3]
    ('C1', 'C2', 'C3')
    >>> reg.resolve("vertebrae_C6"), reg.resolve("c-6"), reg.resolve("Cervical 6")
    ('C6', 'C6', 'C6')
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from yolo_spine.errors import UserError
from yolo_spine.resources import configs_dir  # re-exported: callers of registry.configs_dir keep working

_REGISTRY_KEYS = {"name", "description", "classes", "mirror_pairs", "order", "source_ids", "source_id_max"}

#: The project's own label-map convention (what ``lift`` writes): voxel value = class id + 1, 0 = background.
CLASS_ID_SCHEME = "class_id+1"

_CLASS_KEYS = {"name", "aliases", "snomed", "laterality", "category"}
_LATERALITIES = ("left", "right")
_CATEGORIES = ("anatomy", "object")

#: SNOMED CT (DICOM coding scheme designator ``SCT``) codes the coded anatomy falls back on, as DICOM PS3.16 names
#: them: segment categories of CID 7150 and the type of a class without a code of its own.
SCT_ANATOMICAL_STRUCTURE = ("91723000", "Anatomical Structure")
SCT_PHYSICAL_OBJECT = ("260787004", "Physical object")
SCT_BODY_STRUCTURE = ("123037004", "Body structure")
SCT_LATERALITY = {"left": ("7771000", "Left"), "right": ("24028007", "Right")}


@dataclass(frozen=True)
class CodedAnatomy:
    """How a class is coded in a DICOM Segmentation (SNOMED CT, scheme designator ``SCT``).

    A class the registry gives a ``snomed`` code is written with it. A class without one (an ASPECTS region, a
    canal, S1) gets the documented fallback: type SCT 123037004 "Body structure" (or "Physical object" for an
    object such as a dental crown), with the class name as the segment's label, so a reader sees a generic code
    and never a made-up specific one.

    Attributes:
        code: SNOMED CT code of the segment's type.
        meaning: Its code meaning.
        category: ``(code, meaning)`` of the segment category (CID 7150: Anatomical Structure or Physical object).
        laterality: ``"left"``, ``"right"`` or ``None``; written as a type modifier.
        fallback: Whether ``code`` is the generic fallback rather than the class's own code.
    """

    code: str
    meaning: str
    category: tuple[str, str] = SCT_ANATOMICAL_STRUCTURE
    laterality: str | None = None
    fallback: bool = False

    @property
    def laterality_code(self) -> tuple[str, str] | None:
        """``(code, meaning)`` of the laterality modifier, or ``None``."""
        return SCT_LATERALITY[self.laterality] if self.laterality else None


def normalize_name(name: str) -> str:
    """Normalise a class name for alias matching.

    Lower-case, drop every character that is not a letter or digit, and drop leading zeros of numbers
    that follow a letter, so ``"C-06"``, ``"c6"`` and ``"C 6"`` all become ``"c6"``.

    Args:
        name: A class name as written in some dataset.

    Returns:
        The normalised key.
    """
    key = re.sub(r"[^0-9a-z]", "", str(name).lower())
    return re.sub(r"(?<=[a-z])0+(?=\d)", "", key)


@dataclass(frozen=True)
class OrderSpec:
    """Anatomical order of classes along one image axis.

    Attributes:
        axis: ``"y"`` (class index increases from top to bottom of the image) or ``"x"`` (left to right).
        sequences: Independent chains of class names, each in increasing position along ``axis``
            (the spine has one chain; teeth have an upper and a lower arch).
    """

    axis: str
    sequences: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class AnatomyRegistry:
    """One anatomy's classes, in anatomical order, with aliases, mirror pairs and source-id maps.

    Attributes:
        name: Registry name (``spine``, ``teeth``, ``brain``).
        description: One line for humans.
        names: Class names; the position is the YOLO class id.
        aliases: Normalised alias (see :func:`normalize_name`) → class name; includes each name itself.
        mirror: Class name → its left/right mirror class (both directions); empty for the spine.
        order: Anatomical order along an image axis, or ``None`` when classes have no sequence.
        source_ids: Label-map scheme (``totalsegmentator_v2`` …) → {source label id: class name}.
        source_id_max: Scheme → the largest label id it defines (a map holding a larger id is not in that scheme);
            schemes without an entry are open-ended.
        coding: Class name → its coded anatomy for DICOM (see :meth:`coded`); every class has an entry.
        path: The YAML file this registry was read from.
    """

    name: str
    description: str
    names: tuple[str, ...]
    aliases: dict[str, str] = field(repr=False)
    mirror: dict[str, str] = field(repr=False)
    order: OrderSpec | None = field(repr=False)
    source_ids: dict[str, dict[int, str]] = field(repr=False)
    source_id_max: dict[str, int] = field(default_factory=dict, repr=False)
    coding: dict[str, CodedAnatomy] = field(default_factory=dict, repr=False)
    path: Path | None = field(default=None, repr=False, compare=False)

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)

    @property
    def names_dict(self) -> dict[int, str]:
        """``{class id: name}`` as Ultralytics' ``data.yaml`` wants it."""
        return dict(enumerate(self.names))

    @property
    def has_mirror_pairs(self) -> bool:
        """Whether a horizontal flip changes class labels."""
        return bool(self.mirror)

    def index(self, name: str) -> int:
        """Return the class id of a canonical class name.

        Raises:
            KeyError: If ``name`` is not one of :attr:`names` (use :meth:`resolve` for aliases).
        """
        return self._index[name]

    def coded(self, name: str) -> CodedAnatomy:
        """Return the coded anatomy of a canonical class name (its SNOMED CT code, or the documented fallback).

        Raises:
            KeyError: If ``name`` is not one of :attr:`names`.
        """
        if name not in self._index:
            raise KeyError(name)
        return self.coding.get(name) or CodedAnatomy(*SCT_BODY_STRUCTURE, fallback=True)

    def resolve(self, name: str) -> str | None:
        """Map any spelling of a class (alias, case, separators) onto its canonical name, or ``None``."""
        return self.aliases.get(normalize_name(name))

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Return up to ``n`` canonical names close to an unknown ``name`` (for error messages)."""
        keys = difflib.get_close_matches(normalize_name(name), list(self.aliases), n=n * 3, cutoff=0.6)
        out: list[str] = []
        for key in keys:
            canonical = self.aliases[key]
            if canonical not in out:
                out.append(canonical)
        return out[:n]

    def mirror_index_map(self) -> list[int]:
        """Return ``m`` with ``m[i]`` the class id a horizontal flip turns class ``i`` into.

        This is the ``flip_idx``-style permutation a left/right-aware flip applies to class ids.
        """
        return [self._index[self.mirror.get(n, n)] for n in self.names]

    def source_id_map(self, scheme: str) -> dict[int, str]:
        """Return ``{source label id: class name}`` for a label-map scheme.

        Raises:
            UserError: If the scheme is not defined for this registry (the message lists those that are).
        """
        try:
            return dict(self.source_ids[scheme])
        except KeyError:
            raise UserError(
                f"anatomy '{self.name}' has no label-id scheme '{scheme}'; known: {', '.join(self.source_ids)}"
            ) from None

    @property
    def schemes(self) -> tuple[str, ...]:
        """Every label-id scheme a label map of this anatomy may be written in: ``class_id+1``, then ``source_ids``."""
        return (CLASS_ID_SCHEME, *self.source_ids)

    def label_id_map(self, scheme: str) -> dict[int, str]:
        """Return ``{label id: class name}`` for any scheme of :attr:`schemes` (``class_id+1`` included).

        Raises:
            UserError: If the scheme is not defined for this registry (the message lists those that are).
        """
        if scheme == CLASS_ID_SCHEME:
            return {i + 1: n for i, n in enumerate(self.names)}
        if scheme not in self.source_ids:
            raise UserError(
                f"anatomy '{self.name}' has no label-id scheme '{scheme}'; known: {', '.join(self.schemes)}"
            )
        return dict(self.source_ids[scheme])

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


@dataclass(frozen=True)
class SchemeDetection:
    """What :func:`detect_label_scheme` concluded about a label map.

    Attributes:
        scheme: The scheme the map is written in, or ``None`` when its ids do not say (see ``candidates``).
        candidates: Every scheme consistent with the ids, registry order; several readings that disagree make the
            map ambiguous, none makes it unrecognised.
    """

    scheme: str | None
    candidates: tuple[str, ...]


def detect_label_scheme(reg: AnatomyRegistry, label_ids: Iterable[int]) -> SchemeDetection:
    """Recognise which label-id scheme of ``reg`` a label map is written in, from the ids it holds.

    ``ct2yolo`` (when no ``label_scheme`` is configured) and ``eval3d`` (when no ``--gt-scheme``/``--pred-scheme``
    is given) both decide through this function, so the two commands read the same file the same way.

    A scheme is consistent with the map when

    * ``class_id+1``: every non-zero id is a class id + 1 (the project's own maps hold nothing else);
    * a source scheme: at least one id names one of its classes and no id exceeds the scheme's largest id
      (``source_id_max``); its other ids are the scheme's other structures (a TotalSegmentator map's organs).

    Consistent schemes that give every id of the map the same class are one reading (the first is returned).
    A map is recognised only when exactly one reading remains; otherwise ``scheme`` is ``None`` and the caller
    must ask the user. A map with no non-zero id reads the same in every scheme (``class_id+1``).

    Args:
        reg: The anatomy.
        label_ids: The label ids present in the map (0 = background is ignored).

    Returns:
        The detection: the scheme (or ``None``) and every consistent scheme.

    Example:
        >>> reg = load_registry("spine")
        >>> detect_label_scheme(reg, [0, 29, 30, 51, 118]).scheme  # L3, L2, the heart, costal cartilages
        'totalsegmentator_v2'
        >>> detect_label_scheme(reg, [1, 2, 3]).scheme  # C1–C3 as class id + 1 (VerSe reads them alike)
        'class_id+1'
        >>> detect_label_scheme(reg, [13, 20]).candidates  # T6/L1 as class id + 1, or TotalSegmentator v1's L3
        ('class_id+1', 'totalsegmentator_v1', 'verse')
    """
    ids = sorted({int(i) for i in label_ids} - {0})
    if not ids:
        return SchemeDetection(CLASS_ID_SCHEME, reg.schemes)
    readings: dict[tuple[str | None, ...], str] = {}
    consistent: list[str] = []
    for scheme in reg.schemes:
        table = reg.label_id_map(scheme)
        largest = reg.nc if scheme == CLASS_ID_SCHEME else reg.source_id_max.get(scheme)
        reading = tuple(table.get(i) for i in ids)
        if (largest is not None and ids[-1] > largest) or not any(reading):
            continue
        consistent.append(scheme)
        readings.setdefault(reading, scheme)
    found = next(iter(readings.values())) if len(readings) == 1 else None
    return SchemeDetection(found, tuple(consistent))


def available_registries() -> list[str]:
    """Return the names of the registries shipped in ``configs/anatomy``."""
    return sorted(p.stem for p in (configs_dir() / "anatomy").glob("*.yaml"))


def load_registry(name_or_path: str | Path) -> AnatomyRegistry:
    """Load an anatomy registry by name (``"spine"``) or from a YAML path.

    Args:
        name_or_path: A shipped registry name or a path to a YAML file with the same keys.

    Returns:
        The validated registry.

    Raises:
        UserError: If the registry does not exist or the file is malformed (one sentence naming the problem).
    """
    return _load_registry_cached(str(name_or_path))


@functools.lru_cache(maxsize=16)
def _load_registry_cached(name_or_path: str) -> AnatomyRegistry:
    path = Path(name_or_path)
    if not (path.suffix in {".yaml", ".yml"} and path.is_file()):
        path = configs_dir() / "anatomy" / f"{name_or_path}.yaml"
        if not path.is_file():
            known = available_registries()
            close = difflib.get_close_matches(str(name_or_path), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"unknown anatomy '{name_or_path}'{hint}; known: {', '.join(known)} or a YAML path")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"anatomy registry {path} is not valid YAML: {exc}") from None
    return _parse_registry(raw, path)


def _parse_registry(raw: object, path: Path) -> AnatomyRegistry:
    def fail(msg: str) -> UserError:
        return UserError(f"anatomy registry {path}: {msg}")

    if not isinstance(raw, dict):
        raise fail("expected a mapping at the top level")
    unknown = set(raw) - _REGISTRY_KEYS
    if unknown:
        key = sorted(unknown)[0]
        close = difflib.get_close_matches(key, _REGISTRY_KEYS, n=1)
        raise fail(f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    if not raw.get("name") or not isinstance(raw.get("classes"), list) or not raw["classes"]:
        raise fail("needs 'name' and a non-empty 'classes' list")

    names: list[str] = []
    aliases: dict[str, str] = {}
    coding: dict[str, CodedAnatomy] = {}
    for entry in raw["classes"]:
        if not isinstance(entry, dict) or "name" not in entry:
            raise fail(f"each class needs a 'name': {entry!r}")
        cname = str(entry["name"])
        if cname in names:
            raise fail(f"class '{cname}' is listed twice")
        bad = set(entry) - _CLASS_KEYS
        if bad:
            raise fail(
                f"class '{cname}' has the unknown key '{sorted(bad)[0]}' (known: {', '.join(sorted(_CLASS_KEYS))})"
            )
        names.append(cname)
        coding[cname] = _parse_coding(entry, cname, fail)
        for alias in [cname, *[str(a) for a in entry.get("aliases") or []]]:
            key = normalize_name(alias)
            if aliases.get(key, cname) != cname:
                raise fail(f"alias '{alias}' names both '{aliases[key]}' and '{cname}'")
            aliases[key] = cname

    mirror: dict[str, str] = {}
    for pair in raw.get("mirror_pairs") or []:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise fail(f"mirror pair must be a list of two class names: {pair!r}")
        a, b = (str(p) for p in pair)
        for n in (a, b):
            if n not in names:
                raise fail(f"mirror pair names unknown class '{n}'")
        if a in mirror or b in mirror:
            raise fail(f"class in more than one mirror pair: {pair!r}")
        mirror[a], mirror[b] = b, a

    order = None
    if raw.get("order"):
        o = raw["order"]
        axis = o.get("axis")
        if axis not in {"x", "y"}:
            raise fail(f"order.axis must be 'x' or 'y', not {axis!r}")
        seqs = tuple(tuple(str(n) for n in seq) for seq in o.get("sequences") or [])
        for seq in seqs:
            for n in seq:
                if n not in names:
                    raise fail(f"order sequence names unknown class '{n}'")
        order = OrderSpec(axis=axis, sequences=seqs)

    source_ids: dict[str, dict[int, str]] = {}
    for scheme, mapping in (raw.get("source_ids") or {}).items():
        if scheme == CLASS_ID_SCHEME:
            raise fail(f"source_ids: '{CLASS_ID_SCHEME}' is the built-in class id + 1 convention, not a scheme name")
        table: dict[int, str] = {}
        for sid, cname in (mapping or {}).items():
            if str(cname) not in names:
                raise fail(f"source_ids.{scheme}: id {sid} maps to unknown class '{cname}'")
            table[int(sid)] = str(cname)
        source_ids[str(scheme)] = table

    source_id_max: dict[str, int] = {}
    for scheme, largest in (raw.get("source_id_max") or {}).items():
        if scheme not in source_ids:
            raise fail(f"source_id_max names unknown scheme '{scheme}'")
        if not isinstance(largest, int) or largest < max(source_ids[scheme], default=0):
            raise fail(f"source_id_max.{scheme} must be a whole number >= the scheme's largest id")
        source_id_max[str(scheme)] = largest

    return AnatomyRegistry(
        name=str(raw["name"]),
        description=str(raw.get("description") or ""),
        names=tuple(names),
        aliases=aliases,
        mirror=mirror,
        order=order,
        source_ids=source_ids,
        source_id_max=source_id_max,
        coding=coding,
        path=path,
    )


def _parse_coding(entry: dict, cname: str, fail: Callable[[str], UserError]) -> CodedAnatomy:
    """A class's ``snomed``, ``laterality`` and ``category`` keys as its :class:`CodedAnatomy`."""
    laterality = entry.get("laterality")
    if laterality is not None and laterality not in _LATERALITIES:
        raise fail(f"class '{cname}': laterality must be one of {', '.join(_LATERALITIES)}, not {laterality!r}")
    category = entry.get("category", "anatomy")
    if category not in _CATEGORIES:
        raise fail(f"class '{cname}': category must be one of {', '.join(_CATEGORIES)}, not {category!r}")
    cat = SCT_ANATOMICAL_STRUCTURE if category == "anatomy" else SCT_PHYSICAL_OBJECT
    snomed = entry.get("snomed")
    if snomed is None:
        generic = SCT_BODY_STRUCTURE if category == "anatomy" else SCT_PHYSICAL_OBJECT
        return CodedAnatomy(*generic, category=cat, laterality=laterality, fallback=True)
    code, meaning = (snomed.get("code"), snomed.get("meaning")) if isinstance(snomed, dict) else (None, None)
    if not (isinstance(code, str) and code.isdigit() and isinstance(meaning, str) and meaning.strip()):
        raise fail(f"class '{cname}': snomed needs a numeric 'code' string and a 'meaning'")
    return CodedAnatomy(code, meaning.strip(), category=cat, laterality=laterality)
