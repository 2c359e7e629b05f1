"""Ultralytics segmentation trainer that knows left from right.

Importing this module imports Ultralytics, after :func:`yolo_spine.ultra.configure_environment` has set the
offline environment; it is imported only when training (``yolo_spine train``) and by Ultralytics' DDP
workers, which re-import the trainer class from this module by name.

Plain ``fliplr`` mirrors the image but keeps every label, which teaches a dental model that an upper-left
canine (23) looks like an upper-right one (13). :class:`AnatomySegmentationTrainer` replaces the horizontal
:class:`~ultralytics.data.augment.RandomFlip` of the training dataset with :class:`MirrorAwareFlip`, which
also permutes class ids through the registry's mirror pairs. Datasets whose registry has no mirror pairs
(the spine) train exactly as Ultralytics would.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, cast

import numpy as np

from yolo_spine.ultra import configure_environment

configure_environment()  # must precede the first Ultralytics import, also in DDP worker processes

from ultralytics.data.augment import Compose, RandomFlip  # noqa: E402
from ultralytics.data.dataset import YOLODataset  # noqa: E402
from ultralytics.models.yolo.segment import SegmentationTrainer  # noqa: E402
from ultralytics.utils import LOGGER, RANK  # noqa: E402

from yolo_spine.registry import load_registry  # noqa: E402
from yolo_spine.ultra import drop_upload_callbacks, install_offline_amp_check  # noqa: E402

install_offline_amp_check()  # also in DDP workers, which import this module by name


def mirror_map_for(data: dict[str, Any]) -> np.ndarray | None:
    """Return the class-id permutation of a horizontal flip for a dataset, or ``None`` when flips keep labels.

    Args:
        data: The dataset dictionary (``data.yaml`` contents); its ``anatomy`` key names the registry.
    """
    anatomy = data.get("anatomy")
    if not anatomy:
        return None
    reg = load_registry(anatomy)
    if not reg.has_mirror_pairs:
        return None
    return np.asarray(reg.mirror_index_map(), dtype=np.int64)


class MirrorAwareFlip(RandomFlip):
    """Horizontal flip that also swaps left/right classes (``cls → mirror[cls]``)."""

    def __init__(self, p: float, mirror: np.ndarray) -> None:
        super().__init__(p=p, direction="horizontal")
        self.mirror = np.asarray(mirror, dtype=np.int64)

    # Same signature as RandomFlip.apply_instances, which itself narrows BaseTransform's (Ultralytics' typing).
    def apply_instances(self, labels: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        """Flip geometry as Ultralytics does, then map each class id to its mirror class."""
        labels = super().apply_instances(labels, params)
        if params["flip"] and labels.get("cls") is not None and len(labels["cls"]):
            cls = labels["cls"]
            labels["cls"] = self.mirror[cls.astype(np.int64).reshape(-1)].reshape(cls.shape).astype(cls.dtype)
        return labels


def make_mirror_aware(transforms: Compose, mirror: np.ndarray) -> int:
    """Replace every horizontal :class:`RandomFlip` in ``transforms`` (recursively) by a mirror-aware one.

    Returns:
        How many flips were replaced.
    """
    replaced = 0
    items = transforms.transforms
    for k, t in enumerate(items):
        if type(t) is RandomFlip and t.direction == "horizontal":
            items[k] = MirrorAwareFlip(t.p, mirror)
            replaced += 1
        elif isinstance(t, Compose):
            replaced += make_mirror_aware(t, mirror)
    return replaced


class MirrorAwareYOLODataset(YOLODataset):
    """YOLODataset whose training transforms swap mirrored classes on horizontal flips.

    ``mirror_map`` is set after construction; ``build_transforms`` runs again when mosaic closes, and keeps
    the swap then too.
    """

    mirror_map: np.ndarray | None = None

    def build_transforms(self, hyp: Any = None) -> Compose:
        """Build Ultralytics' transforms, then make the horizontal flip mirror-aware."""
        transforms = super().build_transforms(hyp)
        if self.mirror_map is not None and self.augment:
            make_mirror_aware(transforms, self.mirror_map)
        return transforms


class AnatomySegmentationTrainer(SegmentationTrainer):
    """SegmentationTrainer with left/right-aware flips and copy-paste for registries with mirror pairs.

    It also drops Ultralytics' Platform upload and usage-event callbacks, so that no setting or environment
    variable (``ULTRALYTICS_API_KEY``) can make a training run send patient images anywhere, and makes the run
    folder private (0700) while it trains: its ``args.yaml`` and checkpoints hold full paths, which ``--resume``
    needs, until ``train`` sanitises the finished run (:mod:`yolo_spine.train.shareable`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        drop_upload_callbacks(self.callbacks)
        if RANK in {-1, 0}:  # here, not in train(): Ultralytics' DDP launcher deletes and re-creates the folder
            with contextlib.suppress(OSError):
                os.chmod(self.save_dir, 0o700)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        """Build the dataset as Ultralytics does; for training with mirror pairs, make flips mirror-aware."""
        dataset = super().build_dataset(img_path, mode, batch)
        mirror = mirror_map_for(self.data)
        if mode != "train" or mirror is None:
            return dataset
        if type(dataset) is not YOLODataset:
            LOGGER.warning(
                "left/right classes: unexpected dataset type %s; horizontal flips turned off", type(dataset).__name__
            )
            self.args.fliplr = 0.0
            dataset.transforms = dataset.build_transforms(hyp=self.args)
            return dataset
        dataset.__class__ = MirrorAwareYOLODataset
        cast(MirrorAwareYOLODataset, dataset).mirror_map = mirror
        if getattr(self.args, "copy_paste", 0) and getattr(self.args, "copy_paste_mode", "flip") == "flip":
            # copy-paste in "flip" mode pastes mirrored instances under their old label: use MixUp-style pasting
            self.args.copy_paste_mode = "mixup"
        # Ultralytics annotates the trainer's args as SimpleNamespace; they are its IterableSimpleNamespace.
        dataset.transforms = dataset.build_transforms(hyp=self.args)  # type: ignore[arg-type]
        return dataset
