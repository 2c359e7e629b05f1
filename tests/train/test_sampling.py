"""Repeat-factor sampling (``train.repeat_threshold``): LVIS's rule, its rounding, and the list Ultralytics reads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from yolo_spine.train.sampling import class_repeat_factors, image_repeat_counts, write_repeat_list


def test_class_factors_follow_lvis_rule():
    # 10 images: class 0 in all, class 1 in one, class 2 in five, class 3 in none
    sets = [{0} for _ in range(10)]
    sets[0] = {0, 1}
    for k in range(5):
        sets[k] |= {2}
    r = class_repeat_factors(sets, threshold=0.5, n_classes=4)
    assert r[0] == 1.0  # f = 1 > t: never below 1
    assert r[1] == pytest.approx(math.sqrt(0.5 / 0.1))
    assert r[2] == pytest.approx(1.0)  # f = 0.5 = t
    assert r[3] == 1.0  # in no image: nothing to repeat


def test_image_counts_keep_the_expected_repeats_and_are_seeded():
    sets = [{1}] * 2000 + [{0}] * 10 + [set()]
    factors = np.array([1.0, 2.3])
    counts = image_repeat_counts(sets, factors, seed=7)
    assert set(counts[:2000]) == {2, 3} and np.mean(counts[:2000]) == pytest.approx(2.3, abs=0.05)
    assert counts[2000:] == [1] * 11  # factor 1 and an empty image: listed once
    assert counts == image_repeat_counts(sets, factors, seed=7) != image_repeat_counts(sets, factors, seed=8)


def test_repeat_list_names_every_training_image(spine_dataset: Path, tmp_path: Path):
    from yolo_spine.io.labels import read_data_yaml

    lay = read_data_yaml(spine_dataset)
    images = sorted(p.resolve() for p in lay.image_dirs["train"].iterdir())
    out = tmp_path / "list.txt"
    plan = write_repeat_list(lay.image_dirs["train"], lay.label_dirs["train"], lay.names, 1.0, 0, out)
    lines = out.read_text().splitlines()
    assert sorted(set(lines)) == [str(p) for p in images] and lines == sorted(lines)  # all, absolute, sorted
    assert plan.images == len(images) and plan.listed == len(lines)
    assert plan.repeated == sum(lines.count(str(p)) > 1 for p in images)
    # the factors are those of the rule on this split's labels
    names = list(plan.class_factors)
    assert names == [n for n in lay.names if n in plan.class_factors]  # registry order, not alphabetical
    assert all(r >= 1.0 for r in plan.class_factors.values())


@pytest.mark.slow  # one training epoch
def test_training_reads_the_repeated_list(spine_dataset: Path, tmp_path: Path):
    """Ultralytics trains on the list (duplicates kept); the dataset and the run folder keep the split itself."""
    from yolo_spine.train.options import TrainOptions
    from yolo_spine.train.train import train

    seen: dict[str, int] = {}

    def on_train_start(trainer) -> None:
        seen["images"] = len(trainer.train_loader.dataset.im_files)

    before = spine_dataset.read_text()
    out = tmp_path / "run"
    opts = TrainOptions.load("cpu-smoke")
    res = train(spine_dataset, out, opts, repeat_threshold=1.0, callbacks={"on_train_start": on_train_start})
    run = res.manifest
    n_train = len(list((spine_dataset.parent / "images" / "train").iterdir()))
    assert seen["images"] > n_train  # the spine's end vertebrae are in fewer images: some are repeated
    assert run["options"]["repeat_threshold"] == 1.0
    assert run["train_images_per_second"] == pytest.approx(seen["images"] / run["epoch_seconds"][0], abs=1e-3)
    copy = yaml.safe_load((out / "data.yaml").read_text())
    assert copy["train"] == yaml.safe_load(before)["train"] and spine_dataset.read_text() == before
    assert not list(tmp_path.glob(".*"))  # the derived data.yaml and the list are gone
