"""YOLO segmentation label files: one instance per row, ``class x1 y1 … xn yn [conf]``, normalised coordinates.

Ground-truth files have ``1 + 2n`` numbers per row; prediction files written by ``predict --save-txt``
(and read by ``lift``) append the confidence, ``2 + 2n``. A row of exactly 5 numbers is a *box* row
(``class cx cy w h``): Ultralytics discards the polygons of a whole image when box and polygon rows are
mixed, so dataset tools drop and count such rows instead of passing them on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolo_spine.errors import DataError
from yolo_spine.layout import SPLITS


@dataclass
class SegInstance:
    """One labelled or predicted instance.

    Attributes:
        cls: Class id (position in the anatomy registry).
        polygon_xy_norm: ``(N, 2)`` float array of vertices, x then y, normalised by image width/height.
        conf: Detection confidence for predictions, ``None`` for ground truth.
    """

    cls: int
    polygon_xy_norm: np.ndarray
    conf: float | None = None

    def polygon_xy(self, width: int, height: int) -> np.ndarray:
        """Return the vertices in pixels (``(N, 2)``, x then y)."""
        return self.polygon_xy_norm * np.array([width, height], dtype=np.float64)


@dataclass
class LabelFile:
    """Parsed rows of one label file, with the rows that are not polygons kept aside for accounting.

    Attributes:
        instances: Polygon rows.
        box_rows: Number of ``class cx cy w h`` box rows.
        malformed: ``(line number, reason)`` of rows that are neither (non-numeric, odd coordinate count).
    """

    instances: list[SegInstance] = field(default_factory=list)
    box_rows: int = 0
    malformed: list[tuple[int, str]] = field(default_factory=list)


def parse_label_text(text: str, with_conf: bool | None = False) -> LabelFile:
    """Parse the text of a YOLO label file.

    Args:
        text: File contents.
        with_conf: ``False`` for ground truth (``1 + 2n`` numbers), ``True`` for predictions (``2 + 2n``),
            ``None`` to decide per row by parity.

    Returns:
        The parsed :class:`LabelFile`.
    """
    out = LabelFile()
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(p) for p in parts]
        except ValueError:
            out.malformed.append((lineno, "non-numeric value"))
            continue
        cls_value = values[0]
        if cls_value < 0 or cls_value != int(cls_value):
            out.malformed.append((lineno, f"class id {parts[0]!r} is not a non-negative integer"))
            continue
        n = len(values)
        if n == 5 or (n == 6 and with_conf):
            out.box_rows += 1
            continue
        has_conf = (n % 2 == 0) if with_conf is None else with_conf
        coords = values[1:-1] if has_conf else values[1:]
        if len(coords) % 2 or len(coords) < 2:
            out.malformed.append((lineno, f"{n} numbers do not form class + x/y pairs"))
            continue
        poly = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        out.instances.append(SegInstance(int(cls_value), poly, float(values[-1]) if has_conf else None))
    return out


def read_yolo_labels(path: str | Path, with_conf: bool | None = False) -> LabelFile:
    """Read a YOLO segmentation label file (a missing file is an image without instances).

    Raises:
        DataError: If the file exists but cannot be read as text.
    """
    path = Path(path)
    if not path.exists():
        return LabelFile()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read label file {path}: {exc}") from None
    return parse_label_text(text, with_conf=with_conf)


def format_instance(inst: SegInstance, decimals: int = 6) -> str:
    """Format one instance as a label row (confidence appended when it has one)."""
    fmt = f"{{:.{decimals}f}}".format
    coords = " ".join(map(fmt, np.asarray(inst.polygon_xy_norm, dtype=np.float64).ravel().tolist()))
    row = f"{int(inst.cls)} {coords}"
    if inst.conf is not None:
        row += f" {float(inst.conf):.5f}"
    return row


def format_labels(instances: list[SegInstance], decimals: int = 6) -> str:
    """Format instances as the text of a label file (one row each, trailing newline)."""
    return "".join(format_instance(i, decimals) + "\n" for i in instances)


def write_yolo_labels(path: str | Path, instances: list[SegInstance], decimals: int = 6) -> Path:
    """Write instances to a YOLO label file (an empty file for an image without instances)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_labels(instances, decimals), encoding="utf-8")
    return path


def write_data_yaml(
    folder: str | Path,
    names: dict[int, str],
    anatomy: str,
    splits: tuple[str, ...] = SPLITS,
) -> Path:
    """Write the Ultralytics ``data.yaml`` of a yolo_spine dataset.

    The file has no ``path`` key: Ultralytics (``check_det_dataset``) and :func:`read_data_yaml` then resolve the
    splits against the YAML's own folder, so the dataset can move and its ``data.yaml`` reveals no folder names.

    Args:
        folder: Where to write it: the dataset's root (or the temporary folder that becomes the root).
        names: ``{class id: name}`` in registry order.
        anatomy: Registry name, so later stages know the order and mirror pairs.
        splits: Splits the dataset has (``images/<split>``).
    """
    import yaml

    data: dict[str, object] = {s: f"images/{s}" for s in splits}
    data.update({"nc": len(names), "names": dict(names), "anatomy": anatomy})
    path = Path(folder) / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def dataset_root(data_yaml: Path, data: Mapping[str, Any]) -> Path:
    """The folder a ``data.yaml``'s splits are relative to.

    Its ``path`` (a relative one taken from the YAML's folder), or the YAML's folder when it has none (as
    yolo_spine writes them, and as Ultralytics reads them).
    """
    root = Path(data.get("path") or ".")
    return root if root.is_absolute() else (data_yaml.parent / root).resolve()


@dataclass
class DatasetLayout:
    """Where a ``data.yaml`` points: root, per-split image and label folders, names and anatomy."""

    root: Path
    image_dirs: dict[str, Path]
    label_dirs: dict[str, Path]
    names: list[str]
    nc: int
    anatomy: str | None


def split_images(data_yaml: str | Path, split: str, needed_for: str = "this step") -> list[Path]:
    """The images of one split of a dataset, sorted; a missing or empty split is a one-sentence error.

    Args:
        data_yaml: The dataset's ``data.yaml``.
        split: ``train``, ``val`` or ``test``.
        needed_for: What needs the split, for the error message.
    """
    from yolo_spine.io.xray import list_images

    folder = read_data_yaml(data_yaml).image_dirs.get(split)
    images = list_images(folder) if folder else []
    if not images:
        raise DataError(f"{data_yaml} has no images in a '{split}' split, which {needed_for} needs")
    return images


def read_data_yaml(data_yaml: str | Path) -> DatasetLayout:
    """Resolve a ``data.yaml`` into folders and names.

    The root is ``path`` (a relative one from the YAML's folder), or, without ``path`` (as yolo_spine writes
    them), the YAML's folder.

    Raises:
        DataError: If the file is missing, not YAML, or lacks ``names`` or a train split.
    """
    import yaml

    data_yaml = Path(data_yaml)
    if data_yaml.is_dir():
        hint = f"; did you mean {data_yaml / 'data.yaml'}?" if (data_yaml / "data.yaml").is_file() else ""
        raise DataError(f"{data_yaml} is a folder; give the dataset's data.yaml{hint}")
    if not data_yaml.is_file():
        raise DataError(f"data.yaml not found: {data_yaml}")
    not_a_dataset = f"{data_yaml} is not a dataset's data.yaml"
    if data_yaml.suffix.lower() not in {".yaml", ".yml"}:
        raise DataError(f"{not_a_dataset}: give the data.yaml that merge, augment or ct2yolo wrote")
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        raise DataError(f"{data_yaml} is not valid YAML") from None
    if not isinstance(data, dict) or "names" not in data:
        raise DataError(f"{not_a_dataset}: it has no 'names' (the class list)")
    root = dataset_root(data_yaml, data)
    names_raw = data["names"]
    names = (
        [str(names_raw[k]) for k in sorted(names_raw, key=int)]
        if isinstance(names_raw, dict)
        else [str(n) for n in names_raw]
    )
    image_dirs, label_dirs = {}, {}
    for split in SPLITS:
        rel = data.get(split)
        if not rel:
            continue
        if not isinstance(rel, str):
            raise DataError(f"{data_yaml}: '{split}' must be one folder (lists and .txt files are not supported)")
        d = Path(rel) if Path(rel).is_absolute() else root / rel
        image_dirs[split] = d
        # Ultralytics' rule: the last "images" path component becomes "labels"
        parts = list(d.parts)
        idx = max((i for i, p in enumerate(parts) if p == "images"), default=None)
        label_dirs[split] = Path(*parts[:idx], "labels", *parts[idx + 1 :]) if idx is not None else d.parent / "labels"
    if "train" not in image_dirs:
        raise DataError(f"{data_yaml} has no 'train' split")
    return DatasetLayout(root, image_dirs, label_dirs, names, int(data.get("nc", len(names))), data.get("anatomy"))
