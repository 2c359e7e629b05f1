"""NNCF's accuracy-aware INT8 quantisation of an FP32 OpenVINO export (``export --int8`` when plain INT8 misses).

``nncf.quantize_with_accuracy_control`` quantises like Ultralytics' post-training recipe (mixed preset, the
detection head's box decoding kept in FP32, calibrated on every image of the calibration split), then validates
the result on the tuning split and returns the layers whose quantisation costs most to FP32, one group at a time,
until the metric is within ``max_drop`` of FP32's. The metric is mask mAP50-95 by Ultralytics' validator (conf
0.001, batch 1), as the INT8 guard computes it; layers are ranked by how far their INT8 outputs move from FP32's
on the tuning images. Neither split may be test: that is the one a held-out figure is measured on.

Runs offline on the CPU with the installed NNCF (the ``export`` extra); on 2 cores it took 11 minutes for the
demo's model (30 tuning images, 39 validations; BENCHMARKS.md "INT8 accuracy").
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AccuracyAwareRecord:
    """What the accuracy-aware quantisation did (for the export's run manifest).

    Attributes:
        seconds: Wall-clock seconds of ``quantize_with_accuracy_control``.
        validations: Calls of the validation function (whole split and the ranking subsets).
        fake_quantize: FakeQuantize operations left in the model (the plain recipe's count minus those restored).
        tuning_split: The split the metric was computed on.
        tuning_images: Images in it.
        split_metrics: Mask mAP50-95 (0..1) at each whole-split validation: FP32, INT8, then each model with
            layers restored.
    """

    seconds: float
    validations: int
    fake_quantize: int
    tuning_split: str
    tuning_images: int
    split_metrics: list[float] = field(default_factory=list)


def preprocess(path: Path, size: int) -> Any:
    """An image as the exported network takes it: letterboxed like the validator's, RGB, float32 in 0..1.

    Returns:
        ``(1, 3, size, size)`` array.
    """
    import cv2
    import numpy as np
    from ultralytics.data.augment import LetterBox

    img: Any = LetterBox(new_shape=(size, size), scaleup=False)(image=cv2.imread(str(path), cv2.IMREAD_COLOR))
    return np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0


@contextlib.contextmanager
def compiled_model_as(compiled: Any) -> Iterator[None]:
    """While inside, every ``openvino.Core.compile_model`` returns ``compiled``.

    Ultralytics' validator then runs a model NNCF holds in memory through its usual OpenVINO backend (reading the
    FP32 folder for class names and input size).
    """
    import openvino as ov

    original = ov.Core.compile_model
    ov.Core.compile_model = lambda self, *a, **k: compiled
    try:
        yield
    finally:
        ov.Core.compile_model = original


def head_ignored_scope(ov_model: Any) -> Any:
    """Ultralytics' INT8 recipe keeps the detection head's box decoding (its DFL and sigmoids) in FP32."""
    import nncf

    ops = ov_model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    head = sigmoids[-1].split("/", 1)[0]
    names = [
        op.get_friendly_name()
        for op in ops
        if op.get_type_name() == "Sigmoid" or op.get_friendly_name().startswith((f"{head}/", f"{head}.dfl"))
    ]
    return nncf.IgnoredScope(names=names, validate=False)


def fake_quantize_ops(folder: Path) -> int:
    """FakeQuantize operations in an OpenVINO model folder (0: not quantised)."""
    return next(folder.glob("*.xml")).read_text(encoding="utf-8").count('type="FakeQuantize"')


def accuracy_aware_int8(
    fp32: Path,
    data: Path,
    *,
    calibration_split: str,
    tuning_split: str,
    size: int,
    max_drop: float,
    out: Path,
    scratch: Path,
) -> AccuracyAwareRecord:
    """Quantise an FP32 OpenVINO export with NNCF's accuracy control and write it as an OpenVINO folder.

    Args:
        fp32: The FP32 OpenVINO export folder (``*.xml``, ``*.bin``, ``metadata.yaml``).
        data: The dataset ``data.yaml``.
        calibration_split: Split whose images calibrate the quantisation (train or val).
        tuning_split: Split on which the metric is kept within ``max_drop`` (train or val).
        size: Square input size of the export, pixels.
        max_drop: Largest accepted drop of mask mAP50-95, points of 100.
        out: The folder to write (must not exist); its ``metadata.yaml`` is the FP32 export's.
        scratch: A folder for the validator's list files and run folders.

    Returns:
        The record of the run.
    """
    import nncf
    import openvino as ov
    import yaml
    from nncf.openvino.engine import OVCompiledModelEngine

    from yolo_spine.io.labels import read_data_yaml, split_images
    from yolo_spine.predict.export import mask_map
    from yolo_spine.ultra import quiet_loggers

    names = dict(enumerate(read_data_yaml(data).names))
    calib = split_images(data, calibration_split, "INT8 calibration")
    tuning = split_images(data, tuning_split, "accuracy-aware INT8 tuning")
    scratch.mkdir(parents=True, exist_ok=True)
    calls = {"n": 0}
    split_metrics: list[float] = []

    def validate(compiled: Any, items: Any) -> tuple[float, list[list[Any]]]:
        # The metric over the given images (Ultralytics' validator on a list file); the per-image outputs of the
        # network let NNCF rank layers by output change instead of re-validating image by image.
        paths = [Path(p) for p in items]
        calls["n"] += 1
        listing = scratch / f"tune_{calls['n']}.txt"
        listing.write_text("\n".join(str(p) for p in paths) + "\n", encoding="utf-8")
        doc = {"path": str(scratch), "train": str(listing), "val": str(listing), "names": names}
        yaml_path = scratch / f"tune_{calls['n']}.yaml"
        yaml_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        with compiled_model_as(compiled):
            metric, _ = mask_map(fp32, yaml_path, "val", size, scratch)
        if len(paths) == len(tuning):  # the whole split: NNCF's initial, quantised and each restored model
            split_metrics.append(metric)
        engine = OVCompiledModelEngine(compiled, stateful=False)  # NNCF's own engine: its outputs, its order
        outputs = [list(engine.infer(preprocess(p, size)).values()) for p in paths]
        return metric, outputs

    model = ov.Core().read_model(str(next(fp32.glob("*.xml"))))
    t0 = time.perf_counter()
    with quiet_loggers("nncf"):  # one INFO line per operation it leaves unquantised; the figures are recorded
        quantized = nncf.quantize_with_accuracy_control(
            model,
            calibration_dataset=nncf.Dataset([str(p) for p in calib], lambda p: preprocess(Path(p), size)),
            validation_dataset=nncf.Dataset([str(p) for p in tuning], lambda p: preprocess(Path(p), size)),
            validation_fn=validate,
            max_drop=max_drop / 100.0,
            drop_type=nncf.DropType.ABSOLUTE,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(calib),
            ignored_scope=head_ignored_scope(model),
        )
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True)
    ov.save_model(quantized, str(out / f"{out.name}.xml"), compress_to_fp16=False)
    shutil.copy(fp32 / "metadata.yaml", out / "metadata.yaml")
    fq = sum(1 for op in quantized.get_ordered_ops() if op.get_type_name() == "FakeQuantize")
    return AccuracyAwareRecord(
        seconds=round(seconds, 1),
        validations=calls["n"],
        fake_quantize=fq,
        tuning_split=tuning_split,
        tuning_images=len(tuning),
        split_metrics=[round(m, 5) for m in split_metrics],
    )
