"""The typed options loader: precedence, types, ranges, unknown keys, old names, and every stage's default.yaml.

Everything here runs in process (``yolo_spine.cli.main`` or the commands' option builders) and stops before a
command imports Ultralytics, torch or OpenCV.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from pathlib import Path

import pytest
import yaml

from yolo_spine.cli import build_parser, main
from yolo_spine.ct.commands import _ct2yolo_options
from yolo_spine.ct.options import CtOptions, anatomy_preset
from yolo_spine.datasets.commands import _augment_options, _merge_options
from yolo_spine.datasets.options import AugmentOptions, MergeOptions
from yolo_spine.demo.commands import _demo_options
from yolo_spine.demo.options import DemoOptions
from yolo_spine.errors import UserError
from yolo_spine.evaluate.options import Eval3dOptions
from yolo_spine.lift.commands import _lift_options
from yolo_spine.lift.options import LiftOptions
from yolo_spine.options import StageOptions, deep_update, load_options, read_yaml, resolve_options, shipped_presets
from yolo_spine.pacs.options import PacsOptions
from yolo_spine.predict.commands import _export_options, _predict_options
from yolo_spine.predict.options import ExportOptions, PredictOptions
from yolo_spine.resources import configs_dir
from yolo_spine.review.commands import _val_options
from yolo_spine.review.options import ReviewOptions
from yolo_spine.serve.options import ServeOptions
from yolo_spine.train.commands import _train_options
from yolo_spine.train.options import TrainOptions

#: Stages whose options go through yolo_spine.options, by their folder in configs/.
MIGRATED: dict[str, type[StageOptions]] = {
    "augment": AugmentOptions,
    "predict": PredictOptions,
    "review": ReviewOptions,
    "export": ExportOptions,
    "ct": CtOptions,
    "lift": LiftOptions,
    "eval3d": Eval3dOptions,
    "train": TrainOptions,
    "merge": MergeOptions,
    "demo": DemoOptions,
    "serve": ServeOptions,
    "pacs": PacsOptions,
}

PREDICT = ["predict", "--weights", "w.pt", "--source", "in", "--out", "out"]


def parse(*argv: object) -> object:
    return build_parser().parse_args([str(a) for a in argv])


def run_main(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ precedence


def test_precedence_default_config_set_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("iou: 0.6\nmax_det: 50\nmask_alpha: 0.2\nconf: 0.3\n")
    args = parse(
        *PREDICT,
        "--config", cfg,
        "--set", "iou=0.55", "--set", "iou=0.5",  # repeated: the last one wins
        "--set", "max_det=40",
        "--max-det", "30",
    )  # fmt: skip
    opts = _predict_options(args)
    assert (opts.iou, opts.max_det, opts.mask_alpha, opts.conf, opts.poll_s) == (0.5, 30, 0.2, 0.3, 1.0)
    origins = opts.origins()
    assert origins["iou"] == "--set" and origins["max_det"] == "flag"
    assert origins["mask_alpha"] == "config" and origins["conf"] == "config" and origins["poll_s"] == "default"
    record = opts.record()
    assert record["config"] == str(cfg) and record["options_from"]["max_det"] == "flag"
    assert "poll_s" not in record["options_from"] and record["poll_s"] == 1.0


def test_flags_not_given_leave_the_lower_layers_alone() -> None:
    opts = _predict_options(parse(*PREDICT, "--set", "save_txt=true", "--set", "order_fix=true"))
    assert opts.save_txt is True and opts.order_fix is True and opts.save_annotated is True
    assert opts.origins()["save_txt"] == "--set"
    opts = _predict_options(parse(*PREDICT, "--set", "save_annotated=false", "--no-annotated", "--conf", "AUTO"))
    assert opts.save_annotated is False and opts.origins()["save_annotated"] == "flag" and opts.conf == "auto"
    val = _val_options(parse("val", "--weights", "w.pt", "--data", "d.yaml", "--out", "r", "--set", "batch=8"))
    assert (val.batch, val.split, val.origins()["batch"], val.origins()["split"]) == (8, "val", "--set", "default")
    val = _val_options(parse("val", "--weights", "w", "--data", "d", "--out", "r", "--set", "batch=8", "--batch", "4"))
    assert val.batch == 4 and val.origins()["batch"] == "flag"


def test_augment_default_preset_and_nested_set(tmp_path: Path) -> None:
    opts = _augment_options(parse("augment", "d.yaml", "--out", "o"))
    assert opts.config_name() == "xray-spine" and opts.affine.rotate == 15.0 and opts.origins()["affine.p"] == "config"
    args = parse(
        "augment", "d.yaml", "--out", "o", "--config", "xray-teeth", "--copies", "4",
        "--set", "affine.rotate=[-5, 5]", "--set", "noise={p: 0.9}", "--set", "copies=9",
    )  # fmt: skip
    opts = _augment_options(args)
    assert opts.copies == 4 and opts.origins()["copies"] == "flag"  # the flag beats --set
    assert opts.affine.rotate == (-5.0, 5.0) and opts.affine.scale == (0.9, 1.1)  # the preset's other keys stay
    assert opts.noise.p == 0.9 and opts.noise.std == (0.01, 0.04) and opts.origins()["noise.std"] == "default"
    assert opts.blur.kernel == (3, 3) and all(isinstance(k, int) for k in opts.blur.kernel)
    bare = _augment_options(parse("augment", "d.yaml", "--out", "o", "--config", "default"))
    assert bare.hflip == 0.0 and bare.affine.p == 0.0


def test_yaml_values_are_converted_to_the_declared_types() -> None:
    opts = _predict_options(parse(*PREDICT, "--set", "device=0", "--set", "iou=1", "--set", "imgsz=null"))
    assert opts.device == "0" and opts.iou == 1.0 and isinstance(opts.iou, float) and opts.imgsz is None
    opts = _export_options(parse("export", "--weights", "w.pt", "--imgsz", "384,640", "--format", "openvino"))
    assert opts.imgsz == (384, 640) and opts.format == "openvino"
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.int8 = True  # type: ignore[misc]


def test_library_keyword_arguments_and_replace() -> None:
    opts = PredictOptions.load(iou=0.4, save_txt=True)
    assert opts.iou == 0.4 and opts.origins()["iou"] == "argument"
    again = resolve_options(PredictOptions, opts, {"max_det": 7})
    assert (again.iou, again.max_det, again.origins()["iou"], again.origins()["max_det"]) == (
        0.4,
        7,
        "argument",
        "argument",
    )
    assert resolve_options(PredictOptions, opts, {}) is opts
    with pytest.raises(UserError, match=r"iou = 2 is out of range"):
        opts.replace(iou=2)
    with pytest.raises(TypeError, match="expected PredictOptions"):
        resolve_options(PredictOptions, ReviewOptions.load(), {})
    assert PredictOptions.load(anatomy=Path("my_registry.yaml")).anatomy == "my_registry.yaml"
    review = ReviewOptions.load(split="test", batch=4)
    assert (review.split, review.batch, review.error_images) == ("test", 4, 6)


CT2YOLO = ["ct2yolo", "--volume", "v.nii.gz", "--labels", "l.nii.gz", "--out", "o"]


def test_ct2yolo_anatomy_preset_config_set_and_flags(tmp_path: Path) -> None:
    """configs/ct/<anatomy>.yaml applies without --config; --config replaces it; --set and flags go on top."""
    spine = _ct2yolo_options(parse(*CT2YOLO))
    assert spine.config_name() == "spine" and spine.label_scheme == "totalsegmentator_v2"
    assert spine.origins()["label_scheme"] == "config" and spine.origins()["drr.size"] == "default"
    brain = _ct2yolo_options(parse(*CT2YOLO, "--anatomy", "brain"))
    assert brain.config_name() == "brain" and brain.label_scheme == "aspects"
    assert anatomy_preset("brain") == "brain" and anatomy_preset(tmp_path / "spine.yaml") is None
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("planes: [axial]\ndrr: {size: 256, n_samples: 64}\n")
    args = parse(
        *CT2YOLO, "--config", cfg, "--set", "drr.size=300", "--set", "split.fractions.test=0.5",
        "--size", "128", "--planes", "Axial,coronal", "--views", "none", "--window", "50,400", "--orthographic",
    )  # fmt: skip
    opts = _ct2yolo_options(args)
    assert opts.label_scheme is None  # --config given: the anatomy's preset is not read
    assert opts.planes == ("axial", "coronal") and opts.views == () and opts.drr.orthographic is True
    assert (opts.drr.size, opts.drr.n_samples, opts.split.fractions.test, opts.split.fractions.train) == (
        128,
        64,
        0.5,
        0.7,
    )
    assert (opts.window.center, opts.window.width) == (50.0, 400.0)
    origins = opts.origins()
    assert origins["drr.size"] == "flag" and origins["drr.n_samples"] == "config"
    assert origins["split.fractions.test"] == "--set" and origins["drr.orthographic"] == "flag"
    # library calls: keyword arguments build the same object (the anatomy's preset applies)
    lib = CtOptions.for_anatomy("spine", flags={"planes": ["axial"], "drr": {"size": 128}})
    assert lib.planes == ("axial",) and lib.drr.size == 128 and lib.origins()["drr.size"] == "argument"


def test_ct2yolo_preset_is_a_deprecated_alias(tmp_path: Path) -> None:
    args = parse(*CT2YOLO, "--preset", "teeth")
    assert args.deprecations == ["--preset is deprecated and goes in the next release; use --config"]
    assert _ct2yolo_options(args).config_name() == "teeth"


def test_lift_and_eval3d_options_from_the_command_line(tmp_path: Path) -> None:
    cfg = tmp_path / "lift.yaml"
    cfg.write_text("fusion: weighted\nbackground_weight: 0.3\n")
    args = parse("lift", "ds", "--out", "s.nii.gz", "--config", cfg, "--set", "order_skip_cost=1", "--planes", "axial")
    opts = _lift_options(args)
    assert (opts.fusion, opts.background_weight, opts.order_skip_cost, opts.planes) == (
        "weighted",
        0.3,
        1.0,
        ("axial",),
    )
    assert opts.largest_cc is False and opts.origins()["planes"] == "flag"
    assert LiftOptions.load(planes=["sagittal"], max_gap=3).planes == ("sagittal",)


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "iou=1.5"], "iou = 1.5 is out of range: expected a number in [0, 1] (from --set)"),
        (["--set", "iou=high"], "iou = 'high' is not valid: expected a number in [0, 1] (from --set)"),
        (["--set", "max_det=2.5"], "max_det = 2.5 is not valid: expected a whole number of at least 1"),
        (["--max-det", "0"], "max_det = 0 is out of range: expected a whole number of at least 1 (from the command"),
        (["--set", "save_txt=maybe"], "save_txt = 'maybe' is not valid: expected true or false"),
        (["--set", "video_codec=h264x"], "video_codec = 'h264x' is not valid: expected a four-character FourCC"),
        (["--conf", "high"], "conf = 'high' is not valid: expected a number in [0, 1] or 'auto'"),
        (["--conf", "2"], "conf = 2.0 is out of range: expected a number in [0, 1] or 'auto'"),
        (["--set", "ioi=0.5"], "--set: unknown key 'ioi' (did you mean 'iou'?)"),
        (["--set", "iou"], "--set needs KEY=VALUE (e.g. --set iou=0.5), not 'iou'"),
        (["--set", "iou=[0.5"], "--set iou: '[0.5' is not a YAML value"),
        (["--config", "fast"], "no predict preset 'fast'"),
    ],
)
def test_predict_option_errors_are_one_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    code, err = run_main(capsys, *PREDICT[:-1], tmp_path / "never", *argv)
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and err.startswith("yolo_spine predict: error: ")
    assert not (tmp_path / "never").exists()


def test_errors_of_the_other_migrated_stages(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases = {
        ("val", "--weights", "w.pt", "--data", "d.yaml", "--out", tmp_path / "r", "--set", "split=train"): (
            "split = 'train' is not valid: expected one of 'val', 'test' (from --set)"
        ),
        ("val", "--weights", "w.pt", "--data", "d.yaml", "--out", tmp_path / "r", "--set", "batch=0"): (
            "batch = 0 is out of range: expected a whole number of at least 1"
        ),
        ("export", "--weights", "w.pt", "--set", "format=tflite"): "expected one of 'onnx', 'openvino'",
        ("export", "--weights", "w.pt", "--int8"): "--int8 is available for --format openvino",
        ("export", "--weights", "w.pt", "--set", "imgsz=[0, 640]"): "imgsz = [0, 640] is out of range",
        ("augment", "d.yaml", "--out", tmp_path / "a", "--set", "affine.p=2"): (
            "affine.p = 2 is out of range: expected a number in [0, 1] (from --set)"
        ),
        ("augment", "d.yaml", "--out", tmp_path / "a", "--set", "affine.rotat=5"): (
            "--set: unknown key 'affine.rotat' (did you mean 'affine.rotate'?)"
        ),
        ("augment", "d.yaml", "--out", tmp_path / "a", "--set", "affine=5"): (
            "affine = 5 is not valid: expected a mapping of p, rotate, scale, translate"
        ),
        ("augment", "d.yaml", "--out", tmp_path / "a", "--set", "vflip=0.5"): "pass --allow-order-breaking",
        (
            *CT2YOLO[:-1],
            tmp_path / "c",
            "--step",
            "0",
        ): "step = 0 is out of range: expected a whole number of at least 1",
        (*CT2YOLO[:-1], tmp_path / "c", "--views", "ap,pa"): "views = ['ap', 'pa'] is not valid: expected a list of",
        (*CT2YOLO[:-1], tmp_path / "c", "--planes", "none", "--views", "none"): "nothing to do: no planes and no DRR",
        (*CT2YOLO[:-1], tmp_path / "c", "--window", "400,0"): "window.width = 0.0 is out of range",
        (*CT2YOLO[:-1], tmp_path / "c", "--set", "drr.sod_fraction=1.2"): (
            "drr.sod_fraction = 1.2 is not valid: expected a number between 0 and 1"
        ),
        (*CT2YOLO[:-1], tmp_path / "c", "--set", "split.fractions={train: 0, val: 0, test: 0}"): (
            "split.fractions are all 0"
        ),
        (*CT2YOLO[:-1], tmp_path / "c", "--set", "drr.display_percentiles=[99, 1]"): (
            "drr.display_percentiles = [99, 1] is not valid: expected a [low, high] pair of numbers in [0, 100]"
        ),
        (*CT2YOLO[:-1], tmp_path / "c", "--split-mode", "slab", "--set", "split.slab_mm=0"): (
            "split.slab_mm = 0 is not valid: expected a number above 0"
        ),
        (*CT2YOLO[:-1], tmp_path / "c", "--drr-device", "cuda:0"): "the planes DRR backend runs on the CPU",
        (*CT2YOLO[:-1], tmp_path / "c", "--set", "max_memory_fraction=0"): "max_memory_fraction = 0 is not valid",
        ("lift", "ds", "--out", tmp_path / "s.nii.gz", "--set", "fusion=mean"): (
            "fusion = 'mean' is not valid: expected one of 'vote', 'weighted'"
        ),
        ("lift", "ds", "--out", tmp_path / "s.nii.gz", "--max-gap", "0"): "max_gap = 0 is out of range",
        ("eval3d", "--pred", "p.nii", "--gt", "g.nii", "--out", tmp_path / "m.csv", "--max-dist-mm", "0"): (
            "max_dist_mm = 0.0 is not valid: expected a number above 0"
        ),
        ("eval3d", "--pred", "p.nii", "--gt", "g.nii", "--out", tmp_path / "m.csv", "--tolerance-mm", "-1"): (
            "tolerance_mm = -1.0 is out of range"
        ),
    }
    for argv, message in cases.items():
        code, err = run_main(capsys, *argv)
        assert code == 2 and message in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_key_in_a_config_file_names_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("iou: 0.5\nmax_dets: 10\n")
    code, err = run_main(capsys, *PREDICT, "--config", cfg)
    assert code == 2 and f"{cfg}: unknown key 'max_dets' (did you mean 'max_det'?)" in err
    cfg.write_text("iou: 7\n")
    code, err = run_main(capsys, *PREDICT, "--config", cfg)
    assert code == 2 and f"iou = 7 is out of range: expected a number in [0, 1] (from {cfg})" in err


# ------------------------------------------------------------------------------------------------ old names


def test_preset_is_a_deprecated_alias_of_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = parse("augment", "d.yaml", "--out", "o", "--preset", "xray-teeth")
    assert args.config == "xray-teeth" and _augment_options(args).config_name() == "xray-teeth"
    assert args.deprecations == ["--preset is deprecated and goes in the next release; use --config"]
    code, err = run_main(capsys, "augment", tmp_path / "missing.yaml", "--out", tmp_path / "o", "--preset", "xray-spin")
    assert code == 2
    warning, error = err.strip().splitlines()
    assert warning == "yolo_spine augment: warning: --preset is deprecated and goes in the next release; use --config"
    assert "no augment preset 'xray-spin' (did you mean 'xray-spine'?)" in error
    assert not hasattr(parse("augment", "d.yaml", "--out", "o"), "deprecations")


def test_old_order_key_names_still_work_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="yolo_spine"):
        opts = _predict_options(parse(*PREDICT, "--set", "move_penalty=0.8", "--set", "skip_cost=0.1"))
    assert (opts.order_move_penalty, opts.order_skip_cost) == (0.8, 0.1)
    assert "'move_penalty' is deprecated" in caplog.text and "use 'order_move_penalty'" in caplog.text
    lift_defaults = yaml.safe_load((configs_dir() / "lift" / "default.yaml").read_text())
    assert {"order_move_penalty", "order_skip_cost"} <= set(lift_defaults)  # one name in both stages


# ------------------------------------------------------------------------------------------------ schema


def _yaml_keys(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in data.items():
        keys.add(prefix + k)
        if isinstance(v, dict):
            keys |= _yaml_keys(v, f"{prefix}{k}.")
    return keys


def _field_keys(cls: type, prefix: str = "") -> set[str]:
    hints = typing.get_type_hints(cls)
    keys = set()
    for f in dataclasses.fields(cls):
        keys.add(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            keys |= _field_keys(hints[f.name], f"{prefix}{f.name}.")
    return keys


def test_every_stage_folder_is_migrated() -> None:
    stages = {p.name for p in configs_dir().iterdir() if p.is_dir() and p.name != "anatomy"}
    assert stages == set(MIGRATED)


@pytest.mark.parametrize("stage", sorted(MIGRATED))
def test_default_yaml_and_dataclass_have_the_same_keys_and_defaults_validate(stage: str) -> None:
    cls = MIGRATED[stage]
    assert cls.stage == stage
    defaults = yaml.safe_load((configs_dir() / stage / "default.yaml").read_text())
    assert _yaml_keys(defaults) == _field_keys(cls)
    opts = load_options(cls, config="default")
    assert set(opts.origins().values()) == {"default"}
    for preset in shipped_presets(stage):
        assert load_options(cls, config=preset).config_name() == preset


def test_preset_files_only_use_known_keys() -> None:
    for stage, cls in MIGRATED.items():
        for preset in shipped_presets(stage):
            data = yaml.safe_load((configs_dir() / stage / f"{preset}.yaml").read_text())
            assert _yaml_keys(data) <= _field_keys(cls), (stage, preset)


def test_option_errors_stop_before_the_heavy_imports(tmp_path: Path) -> None:
    """The options are checked before a command imports torch, Ultralytics or OpenCV (a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys; from yolo_spine.cli import main\n"
        f"assert main(['predict', '--weights', 'w.pt', '--source', 'x', '--out', {str(tmp_path / 'p')!r}, "
        "'--set', 'iou=2']) == 2\n"
        f"assert main(['val', '--weights', 'w.pt', '--data', 'd', '--out', {str(tmp_path / 'v')!r}, "
        "'--set', 'batch=0']) == 2\n"
        "assert main(['export', '--weights', 'w.pt', '--set', 'dynamic=3']) == 2\n"
        f"assert main(['augment', 'd.yaml', '--out', {str(tmp_path / 'a')!r}, '--set', 'copies=0']) == 2\n"
        f"assert main(['ct2yolo', '--volume', 'v', '--labels', 'l', '--out', {str(tmp_path / 'c')!r}, "
        "'--set', 'drr.size=0']) == 2\n"
        f"assert main(['lift', 'ds', '--out', {str(tmp_path / 's.nii.gz')!r}, '--set', 'hull=2']) == 2\n"
        f"assert main(['eval3d', '--pred', 'p', '--gt', 'g', '--out', {str(tmp_path / 'm.csv')!r}, "
        "'--set', 'landmarks=1']) == 2\n"
        f"assert main(['train', '--data', 'd.yaml', '--out', {str(tmp_path / 't')!r}, '--set', 'mosaic=2']) == 2\n"
        f"assert main(['merge', 'src', '--out', {str(tmp_path / 'm')!r}, '--split', '0', '0', '0']) == 2\n"
        f"assert main(['demo', '--out', {str(tmp_path / 'd')!r}, '--epochs', '0']) == 2\n"
        "heavy = sorted(m for m in ('torch', 'ultralytics', 'cv2', 'albumentations', 'SimpleITK', 'monai') "
        "if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("error:") == 10


# ------------------------------------------------------------------------------------------------ train, merge, demo

TRAIN = ["train", "--data", "d.yaml", "--out", "run"]


def test_every_train_key_is_reachable_and_flags_win() -> None:
    """--set reaches each of the 39 keys (only 11 have flags); a named flag beats --set and --config."""
    defaults = TrainOptions.load().values()
    changed = {
        "model": "yolo11s-seg", "weights": "w.pt", "channels": 1, "epochs": 7, "patience": 3, "imgsz": 96,
        "batch": -1, "optimizer": "SGD", "lr0": 0.05, "lrf": 0.1, "warmup_epochs": 0.5, "nbs": 8, "cos_lr": True,
        "seed": 5, "deterministic": False,
        "device": "0", "workers": 0, "threads": 2, "cache": "ram", "amp": False, "repeat_threshold": 0.3,
        "fliplr": 0.0, "flipud": 0.5,
        "degrees": 10.0, "translate": 0.2, "scale": 0.25, "shear": -5.0, "perspective": 0.0005, "mosaic": 0.0,
        "close_mosaic": 0, "mixup": 0.1, "copy_paste": 0.2, "hsv_h": 0.1, "hsv_s": 0.2, "hsv_v": 0.3,
        "overlap_mask": False, "mask_ratio": 2, "plots": False, "save_period": 5, "val": False,
    }  # fmt: skip
    assert set(changed) == set(defaults) and all(changed[k] != defaults[k] for k in changed)
    sets = [arg for k, v in changed.items() for arg in ("--set", f"{k}={yaml.safe_dump(v).split(chr(10))[0]}")]
    opts = _train_options(parse(*TRAIN, "--config", "cpu-smoke", *sets))
    assert opts.values() == changed and set(opts.origins().values()) == {"--set"}
    opts = _train_options(parse(*TRAIN, "--config", "cpu-smoke", "--set", "epochs=9", "--epochs", "4"))
    assert (opts.epochs, opts.origins()["epochs"], opts.imgsz, opts.origins()["imgsz"]) == (4, "flag", 64, "config")
    assert opts.record()["config"] == "cpu-smoke"


def test_train_flags_have_help() -> None:
    sub = next(a for a in build_parser()._subparsers._group_actions if a.choices)  # type: ignore[union-attr]
    flags = {o: a for a in sub.choices["train"]._actions for o in a.option_strings}
    for flag in ("--epochs", "--imgsz", "--batch", "--patience", "--seed", "--config", "--set"):
        assert flags[flag].help, flag


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*TRAIN, "--set", "mosaic=1.5"], "mosaic = 1.5 is out of range: expected a number in [0, 1] (from --set)"),
        ([*TRAIN, "--batch", "0"], "batch = 0 is not valid: expected -1 (the largest batch that fits the GPU) or"),
        ([*TRAIN, "--imgsz", "16"], "imgsz = 16 is out of range: expected a whole number of at least 32"),
        ([*TRAIN, "--set", "optimizer=adam"], "optimizer = 'adam' is not valid: expected one of 'auto', 'SGD'"),
        (
            [*TRAIN, "--set", "cache=memory"],
            "cache = 'memory' is not valid: expected true or false or one of 'ram', 'disk'",
        ),
        ([*TRAIN, "--set", "save_period=0"], "save_period = 0 is not valid: expected -1 (only last.pt and best.pt)"),
        ([*TRAIN, "--set", "epoch=3"], "--set: unknown key 'epoch' (did you mean 'epochs'?)"),
        (["merge", "src", "--out", "m", "--split", "0", "0", "0"], "split = [0.0, 0.0, 0.0] is not valid: expected"),
        (["merge", "src", "--out", "m", "--split", "0.8", "-0.1", "0.3"], "split = [0.8, -0.1, 0.3] is out of range"),
        (["merge", "src", "--out", "m", "--set", "workers=-1"], "workers = -1 is out of range"),
        (["merge", "src", "--out", "m", "--config", "fast"], "no merge preset 'fast'"),
        (["demo", "--out", "d", "--set", "ct_config=dem"], "ct_config = 'dem' is not valid: expected a ct preset ("),
        (["demo", "--out", "d", "--set", "conf=1.5"], "conf = 1.5 is out of range: expected a number in [0, 1] or"),
        (["demo", "--out", "d", "--set", "ct.poses=1"], "--set: unknown key 'ct.poses'"),
    ],
)
def test_train_merge_demo_option_errors_are_one_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    argv = [str(tmp_path / a) if a in ("run", "m", "d") else a for a in argv]
    code, err = run_main(capsys, *argv)
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_merge_and_demo_options_from_flags_config_and_set(tmp_path: Path) -> None:
    opts = _merge_options(parse("merge", "a", "b", "--out", "m"))
    assert opts.values() == {"split": (0.8, 0.1, 0.1), "seed": 0, "keep_splits": False, "workers": 0}
    cfg = tmp_path / "m.yaml"
    cfg.write_text("split: [8, 1, 1]\nseed: 3\n")
    opts = _merge_options(parse("merge", "a", "--out", "m", "--config", cfg, "--keep-splits", "--set", "seed=4"))
    assert (opts.split, opts.seed, opts.keep_splits) == ((8.0, 1.0, 1.0), 4, True)
    assert opts.origins()["split"] == "config" and opts.origins()["keep_splits"] == "flag"
    demo = _demo_options(parse("demo", "--out", "d", "--epochs", "2", "--set", "conf=0.3", "--set", "ct_config=spine"))
    assert (demo.epochs, demo.conf, demo.ct_config, demo.imgsz) == (2, 0.3, "spine", 320)
    assert DemoOptions.load(conf="auto").conf == "auto"


# ------------------------------------------------------------------------------------------------ YAML helpers


def test_deep_update_merges_nested() -> None:
    assert deep_update({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}, "d": 1}


def test_read_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML at line 2"):
        read_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        read_yaml(lst)
