"""train: offline, every core, run.json, mirror-aware flips, grayscale models, clear errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from yolo_spine.io.labels import read_yolo_labels
from yolo_spine.registry import load_registry


def test_tiny_run_is_offline_and_recorded(tiny_model: Path, spine_dataset: Path):
    import torch

    run = json.loads((tiny_model / "run.json").read_text())
    # the dataset's data.yaml names no folder; Ultralytics found its 8 training and 2 validation images from the
    # YAML's own folder (train_images_per_second and final_metrics below)
    assert "path" not in yaml.safe_load(spine_dataset.read_text()) and str(spine_dataset.parent) not in (
        spine_dataset.read_text()
    )
    for name in ("best.pt", "last.pt"):  # checkpoints of this run: the dataset's classes, trained at 64 px
        ckpt = torch.load(tiny_model / "weights" / name, map_location="cpu", weights_only=False)
        assert ckpt["model"].names == load_registry("spine").names_dict and ckpt["train_args"]["imgsz"] == 64
    assert run["model"]["source"] == "scratch" and run["model"]["start"] == "yolo11n-seg.yaml"  # --weights none
    assert run["device"] == "cpu" and run["torch_threads"] == os.cpu_count() and run["ddp"] is False
    assert run["epochs_completed"] == run["epochs_requested"] == run["epochs_this_session"] == 1
    assert len(run["epoch_seconds"]) == 1 and run["epoch_seconds"][0] > 0 and run["resumed_from_epoch"] is None
    assert run["train_images_per_second"] == pytest.approx(8 / run["epoch_seconds"][0], abs=1e-3)  # 8 train images
    assert "metrics/mAP50(M)" in run["final_metrics"] and "fitness" not in run["final_metrics"]
    assert run["dataset"]["data_yaml"] == "data.yaml" and run["inputs"]["data_yaml"]["name"] == "data.yaml"
    assert len(run["dataset"]["labels_sha256"]) == 64 and run["dataset"]["label_files"] == 12
    for key in ("versions", "options", "wall_seconds", "machine", "final_metrics"):
        assert key in run
    assert run["versions"]["ultralytics"].startswith("8.4")
    assert run["options"]["imgsz"] == 64 and run["options"]["epochs"] == 1
    assert not any(p.name.endswith(".partial") for p in tiny_model.parent.iterdir())


def test_start_checkpoint_order(tmp_path: Path):
    """--weights FILE, then weights/<model>.pt, then the packaged checkpoint (3-channel models only)."""
    from yolo_spine.errors import UserError
    from yolo_spine.resources import packaged_checkpoint
    from yolo_spine.train.train import resolve_model

    packaged = packaged_checkpoint("yolo11n-seg")
    assert packaged is not None and packaged.stat().st_size > 1_000_000  # the real checkpoint, not a pointer
    assert resolve_model("yolo11n-seg", None, tmp_path) == (str(packaged), "packaged")
    (tmp_path / "yolo11n-seg.pt").write_bytes(b"x")
    assert resolve_model("yolo11n-seg", None, tmp_path) == (str(tmp_path / "yolo11n-seg.pt"), "checkpoint")
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"x")
    assert resolve_model("yolo11n-seg", mine, tmp_path) == (str(mine), "checkpoint")
    with pytest.raises(UserError, match="--weights none"):
        resolve_model("yolo11n-seg", tmp_path / "missing.pt", tmp_path)
    assert packaged_checkpoint("yolo11s-seg") is None  # no packaged checkpoint for other architectures


def test_errors_are_one_sentence(run_cli, spine_dataset: Path, tmp_path: Path, tiny_model: Path):
    proc = run_cli(
        "train",
        "--data",
        spine_dataset,
        "--out",
        tmp_path / "r",
        "--weights",
        tmp_path / "nope.pt",
        "--config",
        "cpu-smoke",
        offline=True,
    )
    assert proc.returncode == 2 and "checkpoint not found" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    proc = run_cli("train", "--data", spine_dataset, "--out", tmp_path / "r", "--config", bad)
    assert proc.returncode == 2 and "did you mean 'epochs'" in proc.stderr
    proc = run_cli("train", "--data", spine_dataset, "--out", tiny_model, "--config", "cpu-smoke")
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    proc = run_cli("train", "--data", tmp_path / "none.yaml", "--out", tmp_path / "r")
    assert proc.returncode == 2 and "not found" in proc.stderr
    proc = run_cli(
        "train", "--data", spine_dataset, "--out", tmp_path / "r", "--model", "yolo11n-cls", "--config", "cpu-smoke"
    )
    assert proc.returncode == 2 and "segmentation" in proc.stderr, proc.stderr


def _flipped_sample(data_yaml: Path, tmp_path: Path, fliplr: float) -> tuple[dict, Path]:
    from yolo_spine.train.trainer import AnatomySegmentationTrainer

    tr = AnatomySegmentationTrainer(
        overrides={
            "model": "yolo11n-seg.yaml",
            "data": str(data_yaml),
            "imgsz": 128,
            "fliplr": fliplr,
            "mosaic": 0.0,
            "degrees": 0.0,
            "translate": 0.0,
            "scale": 0.0,
            "hsv_v": 0.0,
            "device": "cpu",
            "project": str(tmp_path),
            "name": "flip",
            "plots": False,
        }
    )
    tr.model = tr.get_model(cfg="yolo11n-seg.yaml", verbose=False)
    ds = tr.build_dataset(img_path=tr.data["train"], mode="train", batch=1)
    return ds[0], Path(ds.im_files[0])


@pytest.mark.parametrize("anatomy", ["brain", "spine"])
def test_horizontal_flip_swaps_mirrored_classes(anatomy: str, brain_dataset: Path, spine_dataset: Path, tmp_path: Path):
    data = brain_dataset if anatomy == "brain" else spine_dataset
    reg = load_registry(anatomy)
    sample, img = _flipped_sample(data, tmp_path, fliplr=1.0)
    lbl = img.parent.parent.parent / "labels" / img.parent.name / f"{img.stem}.txt"
    original = {(int(i.cls), round(float(i.polygon_xy_norm[:, 0].mean()), 1)) for i in read_yolo_labels(lbl).instances}
    cls = sample["cls"].numpy().reshape(-1).astype(int)
    x = sample["bboxes"].numpy()[:, 0]  # normalised x centre after the flip
    mirror = reg.mirror_index_map()
    assert len(cls) == len(original)
    for c, xc in zip(cls, x, strict=True):
        # the flipped instance of class c sits where the mirror class was, mirrored about the image centre
        src = mirror[c]
        assert any(o[0] == src and abs(o[1] - (1 - xc)) < 0.08 for o in original), (reg.names[c], xc)
    if anatomy == "brain":
        assert any(mirror[c] != c for c in cls)
    else:
        assert all(mirror[c] == c for c in cls)  # a flip changes no vertebra


def test_no_flip_keeps_classes(brain_dataset: Path, tmp_path: Path):
    sample, img = _flipped_sample(brain_dataset, tmp_path, fliplr=0.0)
    lbl = img.parent.parent.parent / "labels" / img.parent.name / f"{img.stem}.txt"
    orig = sorted(i.cls for i in read_yolo_labels(lbl).instances)
    assert sorted(sample["cls"].numpy().reshape(-1).astype(int).tolist()) == orig


def test_mirror_aware_flip_unit():
    from ultralytics.utils.instance import Instances

    from yolo_spine.train.trainer import MirrorAwareFlip

    mirror = np.array([1, 0, 2])
    inst = Instances(
        bboxes=np.array([[0.2, 0.5, 0.1, 0.1], [0.7, 0.5, 0.1, 0.1]]),
        segments=np.zeros((2, 4, 2)),
        bbox_format="xywh",
        normalized=True,
    )
    labels = {"img": np.zeros((8, 8, 3), np.uint8), "instances": inst, "cls": np.array([[0.0], [2.0]])}
    out = MirrorAwareFlip(p=1.0, mirror=mirror)(labels)
    assert out["cls"].reshape(-1).tolist() == [1.0, 2.0]
    np.testing.assert_allclose(out["instances"].bboxes[:, 0], [0.8, 0.3])


@pytest.mark.slow  # a second training run
def test_grayscale_channels_1(run_cli, spine_dataset: Path, tmp_path: Path):
    out = tmp_path / "gray"
    # --record-paths: the run folder keeps full paths (test_run_folder_names_no_folder checks the default)
    proc = run_cli(
        "train",
        "--data",
        spine_dataset,
        "--out",
        out,
        "--config",
        "cpu-smoke",
        "--channels",
        "1",
        "--record-paths",
        offline=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    assert run["model"]["channels"] == 1 and run["inputs"]["data_yaml"]["path"] == str(spine_dataset.resolve())
    import torch

    ckpt = torch.load(out / "weights" / "best.pt", map_location="cpu", weights_only=False)
    first = next(m for m in ckpt["model"].modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 1
    assert (
        ckpt["train_args"]["project"]
        == str(out.parent.resolve())
        == yaml.safe_load((out / "args.yaml").read_text())["project"]
    )
    derived, original = (yaml.safe_load(p.read_text()) for p in (out / "data.yaml", spine_dataset))
    assert derived == {**original, "path": str(spine_dataset.parent.resolve()), "channels": 1}
    assert "channels" not in original  # the user's data.yaml is untouched


PATIENT = ("Doe", "Janet", "19710203")


def _strings(obj, seen=None):
    """Every string in a loaded checkpoint's dicts, lists and objects' attributes (tensors skipped)."""
    import torch

    seen = set() if seen is None else seen
    if isinstance(obj, str):
        yield obj
    elif id(obj) in seen or isinstance(obj, torch.Tensor):
        return
    else:
        seen.add(id(obj))
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from _strings(k, seen)
                yield from _strings(v, seen)
        elif isinstance(obj, (list, tuple, set)):
            for v in obj:
                yield from _strings(v, seen)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            yield from _strings(vars(obj), seen)


@pytest.mark.slow  # a training run with plots and an epoch checkpoint (about 30 s)
def test_run_folder_names_no_folder(tmp_path: Path):
    """Issue 14: a dataset and run inside a folder named after a patient leave no trace of it in the run folder.

    Ultralytics writes full paths into args.yaml and into every checkpoint (train_args, the model's args);
    every file is searched byte by byte, and every string of every checkpoint after unpickling.
    """
    import torch

    from yolo_spine.synth import make_xray_dataset
    from yolo_spine.train.options import TrainOptions
    from yolo_spine.train.train import train

    patient = tmp_path / "_".join(PATIENT)
    data = make_xray_dataset(patient / "ds", "spine", n_train=8, n_val=2, n_test=2, imgsz=128)
    out = patient / f"{patient.name}_seg"  # the run folder named after the patient too
    # plots (labels.jpg, batch mosaics, curves), an epoch checkpoint and a derived data.yaml (channels 1)
    train(data, out, TrainOptions.load("cpu-smoke"), plots=True, save_period=1, channels=1)

    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {p.relative_to(out).as_posix() for p in files}
    must = {"args.yaml", "data.yaml", "run.json", "results.csv", "labels.jpg", "train_batch0.jpg"}
    assert must | {"weights/best.pt", "weights/last.pt", "weights/epoch0.pt"} <= names, names
    for p in files:
        raw = p.read_bytes()
        for word in PATIENT:
            assert word.encode() not in raw, f"{word} in {p.relative_to(out)}"
            assert word not in p.relative_to(out).as_posix()
    for name in ("best.pt", "last.pt", "epoch0.pt"):
        ckpt = torch.load(out / "weights" / name, map_location="cpu", weights_only=False)
        text = "\n".join(_strings(ckpt))
        assert "yolo11n-seg.yaml" in text and not any(word in text for word in PATIENT), name
        targs = ckpt["train_args"]  # save_dir: only in unstripped checkpoints (epoch0.pt)
        assert (targs["data"], targs["project"], targs.get("save_dir", "<folder>")) == ("data.yaml", *["<folder>"] * 2)
        model = ckpt["model"] or ckpt["ema"]  # epoch0.pt is not stripped: its model is the EMA
        model_args = model.args if isinstance(model.args, dict) else vars(model.args)
        assert model_args["project"] == model_args["name"] == "<folder>" and model_args["imgsz"] == 64
    args = yaml.safe_load((out / "args.yaml").read_text())
    assert (args["data"], args["project"], args["name"], args["save_dir"]) == ("data.yaml", *["<folder>"] * 3)
    assert args["epochs"] == 1 and args["split"] == "val" and args["optimizer"] == "auto"  # the rest kept
    assert yaml.safe_load((out / "data.yaml").read_text())["path"] == "<folder>"
    mask = os.umask(0)
    os.umask(mask)
    assert (out.stat().st_mode & 0o777) == 0o777 & ~mask  # trained private, published with the umask's mode


def test_sanitize_train_args_keeps_options_drops_folders(tmp_path: Path):
    from yolo_spine.identifiers import recording_paths
    from yolo_spine.train.shareable import sanitize_run_folder, sanitize_train_args

    patient = "/data/Doe_Janet_19710203"
    args = {
        "data": f"{patient}/ds/data.yaml",
        "model": "../Doe_Janet_19710203/weights/best.pt",
        "project": patient,
        "name": ".Doe_Janet_19710203.partial",
        "save_dir": f"{patient}/.Doe_Janet_19710203.partial",
        "resume": True,
        "tracker": "botsort.yaml",
        "split": "val",
        "optimizer": "auto",
        "epochs": 3,
        "fliplr": 0.5,
        "cfg": None,
        "augmentations": [{"source": f"{patient}/bg.png", "p": 0.1}],
    }
    got = sanitize_train_args(args)
    assert got == {
        **args,
        "data": "data.yaml",
        "model": "best.pt",
        "project": "<folder>",
        "name": "<folder>",
        "save_dir": "<folder>",
        "augmentations": [{"source": "bg.png", "p": 0.1}],
    }
    (tmp_path / "args.yaml").write_text(yaml.safe_dump(args, sort_keys=False))
    before = (tmp_path / "args.yaml").read_bytes()
    with recording_paths(True):  # the CLI's --record-paths
        assert sanitize_run_folder(tmp_path) == []
    assert (tmp_path / "args.yaml").read_bytes() == before
    assert sanitize_run_folder(tmp_path) == [tmp_path / "args.yaml"]
    assert yaml.safe_load((tmp_path / "args.yaml").read_text()) == got


def test_amp_is_off_on_the_cpu():
    """CPU autocast runs in bfloat16, many times slower on CPUs without native bf16: AMP must stay off there."""
    import torch

    from yolo_spine.ultra import offline_check_amp

    assert offline_check_amp(torch.nn.Linear(2, 2)) is False


def test_run_json_comes_from_the_run_folder_alone(tiny_model: Path, tmp_path: Path):
    """run.json's epochs, timings and metrics are read from results.csv and the checkpoints, as under DDP.

    Under DDP the parent's callbacks never fire; the builder must not need them. It is given nothing but the run
    folder (a copy without run.json) and must reproduce what the finished CPU run recorded.
    """
    import shutil

    from yolo_spine.train.train import checkpoint_meta, read_results_csv, run_results

    run = json.loads((tiny_model / "run.json").read_text())
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("run.json"))
    got = run_results(folder, start_epoch=0, n_train=8)
    for key, value in got.items():
        assert run[key] == value, key  # the recorded run.json is exactly this builder's output
    rows = read_results_csv(folder / "results.csv")
    assert got["epochs_completed"] == len(rows) == 1 and got["epoch_seconds"] == [round(rows[0]["time"], 3)]
    best = checkpoint_meta(folder / "weights" / "best.pt")
    assert got["final_metrics"] == {k: v for k, v in best["train_metrics"].items() if k != "fitness"}
    assert got["final_metrics"]["val/seg_loss"] == pytest.approx(rows[0]["val/seg_loss"], rel=1e-4)

    # A resumed run's results.csv: Ultralytics' clock restarts each session, and an epoch logged but not
    # checkpointed before the interruption (epoch 2) is run and logged again.
    fake = tmp_path / "resumed"
    fake.mkdir()
    (fake / "results.csv").write_text(
        "                  epoch,     time, metrics/mAP50(M)\n1,10.0,0.1\n2,21.5,0.2\n2,12.0,0.25\n3,25.0,0.3\n"
    )
    got = run_results(fake, start_epoch=1, n_train=8)
    assert (got["epochs_completed"], got["epochs_this_session"], got["epoch_seconds"]) == (3, 2, [12.0, 13.0])
    assert got["train_images_per_second"] == pytest.approx(8 * 2 / 25.0)
    assert got["final_metrics"] == {} and got["epochs_requested"] is None  # no checkpoints in this folder
    assert run_results(tmp_path / "empty")["epochs_completed"] == 0


@pytest.mark.slow
def test_resume_finishes_an_interrupted_run(
    spine_dataset: Path, brain_dataset: Path, tmp_path: Path, monkeypatch, run_cli
):
    """Interrupted after epoch 1 of 2: --resume runs epoch 2 only and run.json describes the whole run."""
    import yolo_spine.train.trainer as trainer_module
    from yolo_spine.io.atomic import partial_path
    from yolo_spine.train.options import TrainOptions
    from yolo_spine.train.train import checkpoint_meta, read_results_csv, train

    class Interrupted(Exception):
        pass

    def stop_after_first_epoch(trainer) -> None:  # after epoch 1's checkpoint: what Ctrl-C or a lost node leaves
        if trainer.epoch == 0:
            raise Interrupted

    class InterruptedTrainer(trainer_module.AnatomySegmentationTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback("on_fit_epoch_end", stop_after_first_epoch)

    out = tmp_path / "run"
    monkeypatch.setattr(trainer_module, "AnatomySegmentationTrainer", InterruptedTrainer)
    with pytest.raises(Interrupted):
        train(spine_dataset, out, TrainOptions.load("cpu-smoke"), epochs=2)
    monkeypatch.undo()
    work = partial_path(out)
    assert not out.exists() and (work / "weights" / "last.pt").is_file()
    # the interrupted run keeps the full paths that resuming needs, in a folder only its owner can read
    assert checkpoint_meta(work / "weights" / "last.pt")["train_args"]["data"] == str(spine_dataset.resolve())
    assert (work.stat().st_mode & 0o777) == 0o700
    assert [r["epoch"] for r in read_results_csv(work / "results.csv")] == [1.0]

    proc = run_cli("train", "--data", brain_dataset, "--out", out, "--resume", "--config", "cpu-smoke", offline=True)
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert re.search(r"error: .* was trained on .*spine_ds.*, not .*brain_ds.*; resume it with that --data", errors[0])
    assert [r["epoch"] for r in read_results_csv(work / "results.csv")] == [1.0]  # the interrupted run untouched
    # --epochs is the checkpoint's on resume (Ultralytics keeps it): run.json must say 2, not this call's 1
    res = train(spine_dataset, out, TrainOptions.load("cpu-smoke"), epochs=1, resume=True)
    run = json.loads((out / "run.json").read_text())
    assert run == json.loads(json.dumps(res.manifest))
    assert not work.exists() and (out / "weights" / "best.pt").is_file()
    assert [r["epoch"] for r in read_results_csv(out / "results.csv")] == [1.0, 2.0]
    assert (run["epochs_completed"], run["epochs_requested"], run["epochs_this_session"]) == (2, 2, 1)
    assert run["resumed_from_epoch"] == 1 and run["options"]["epochs"] == 2 and run["options"]["resume"] is True
    assert run["model"]["source"] == "resume" and len(run["epoch_seconds"]) == 1 and run["final_metrics"]
    for name in ("best.pt", "last.pt"):  # the finished run: base names and <folder> only
        args = checkpoint_meta(out / "weights" / name)["train_args"]
        assert (args["data"], args["project"], args["name"]) == ("data.yaml", "<folder>", "<folder>")
    assert yaml.safe_load((out / "args.yaml").read_text())["save_dir"] == "<folder>"

    # error paths through the CLI: one sentence, exit code 2, nothing touched
    before = sorted(p.name for p in out.iterdir())
    for out_dir, data, expected in (
        (out, spine_dataset, f"error: the run in {out} has finished (of 2 epochs asked); nothing to resume"),
        (tmp_path / "none", spine_dataset, f"error: nothing to resume: no interrupted run in {tmp_path / 'none'}"),
    ):
        proc = run_cli("train", "--data", data, "--out", out_dir, "--resume", "--config", "cpu-smoke", offline=True)
        errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
        assert proc.returncode == 2 and len(errors) == 1 and expected in errors[0], proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == before and not (tmp_path / "none").exists()
