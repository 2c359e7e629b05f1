"""The Ultralytics patches of ``yolo_spine.ultra``: each one switches off a network or pip access, no more."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolo_spine.errors import UserError
from yolo_spine.ultra import drop_upload_callbacks


def _fn(module: str):
    def f(*_a):
        return None

    f.__module__ = module
    return f


def test_drop_upload_callbacks_keeps_everything_else():
    """Platform, events and hub callbacks go; Ultralytics' own and the user's stay, in their order."""
    keep = [_fn("ultralytics.utils.callbacks.base"), _fn("my_lab.callbacks")]
    drop = [_fn(m) for m in ("ultralytics.utils.callbacks.platform", "ultralytics.utils.callbacks.events")]
    callbacks = {"on_fit_epoch_end": [keep[0], drop[0], keep[1]], "on_train_end": [drop[1]], "on_val_end": []}
    drop_upload_callbacks(callbacks)
    assert callbacks == {"on_fit_epoch_end": keep, "on_train_end": [], "on_val_end": []}


def test_offline_amp_check_is_installed_once_and_off_on_the_cpu():
    """Installing twice must not wrap the check in itself (it would recurse), and the CPU never gets AMP."""
    import torch

    from yolo_spine.ultra import import_ultralytics, install_offline_amp_check, offline_check_amp

    import_ultralytics()
    import ultralytics.engine.trainer as ul_trainer

    install_offline_amp_check()
    original = ul_trainer._yolo_spine_original_check_amp
    install_offline_amp_check()
    assert ul_trainer.check_amp is offline_check_amp
    assert ul_trainer._yolo_spine_original_check_amp is original is not offline_check_amp
    assert ul_trainer.check_amp(torch.nn.Linear(2, 2)) is False


def test_requirement_checks_are_skipped_only_where_asked():
    from yolo_spine.ultra import import_ultralytics, skip_requirement_checks

    import_ultralytics()
    import ultralytics.engine.exporter as exporter
    import ultralytics.models.yolo.segment.val as seg_val

    before = seg_val.check_requirements
    skip_requirement_checks("exporter")
    assert exporter.check_requirements("some-package-that-does-not-exist") is True
    assert seg_val.check_requirements is before
    with pytest.raises(KeyError):
        skip_requirement_checks("trainer")


def test_load_segmentation_model_refuses_clearly(tmp_path: Path):
    from yolo_spine.ultra import load_segmentation_model

    with pytest.raises(UserError, match="weights not found"):
        load_segmentation_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"cannot load .*bad\.pt as a YOLO model"):
        load_segmentation_model(bad)
