"""The anatomical order fix on hand-made detections (pure numpy: no model, no Ultralytics)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from yolo_spine.order import OrderChains, fix_order, fix_order_chains, move_cost
from yolo_spine.registry import load_registry

SPINE = load_registry("spine")
SEQ = [SPINE.index(n) for n in SPINE.order.sequences[0]]


def ids(*names: str) -> np.ndarray:
    return np.array([SPINE.index(n) for n in names])


def names_of(class_ids: np.ndarray) -> list[str]:
    return [SPINE.names[i] for i in class_ids]


def test_move_cost_is_free_to_keep_and_dearer_for_confident_and_far_moves() -> None:
    assert move_cost(0.99, 0, 0.5) == 0.0
    assert move_cost(0.9, 1, 0.5) > move_cost(0.3, 1, 0.5)
    assert move_cost(0.5, 2, 0.5) == pytest.approx(np.log(2) + 1.0)
    assert np.isfinite(move_cost(1.0, 1, 0.5))  # conf 1 is clipped, not infinite


def test_correct_order_is_kept() -> None:
    new, changed = fix_order([10, 20, 30, 40], ids("L1", "L2", "L3", "L4"), [0.9, 0.4, 0.9, 0.2], SEQ)
    assert names_of(new) == ["L1", "L2", "L3", "L4"] and changed == 0


def test_swapped_pair_is_swapped_back() -> None:
    # top to bottom: L2, L4, L3, L5 -> L3 and L4 are swapped
    new, changed = fix_order([10, 20, 30, 40], ids("L2", "L4", "L3", "L5"), [0.9, 0.7, 0.7, 0.9], SEQ)
    assert names_of(new) == ["L2", "L3", "L4", "L5"]
    assert changed == 2


def test_input_order_does_not_matter() -> None:
    pos, cls, conf = [30, 10, 40, 20], ids("L3", "L2", "L5", "L4"), [0.7, 0.9, 0.9, 0.7]
    new, changed = fix_order(pos, cls, conf, SEQ)
    assert names_of(new) == ["L4", "L2", "L5", "L3"]  # in the input order: positions 30, 10, 40, 20
    assert changed == 2


def test_duplicate_moves_the_less_confident_detection() -> None:
    # T12, L1, L1, L3 from top to bottom; the second L1 is unsure and L2 is free below it
    new, changed = fix_order([10, 20, 30, 40], ids("T12", "L1", "L1", "L3"), [0.9, 0.95, 0.3, 0.9], SEQ)
    assert names_of(new) == ["T12", "L1", "L2", "L3"]
    assert changed == 1
    # the same, but the upper L1 is the unsure one and T11 is free above it... only if T12 moves, which is dear
    new, _ = fix_order([10, 20, 30], ids("L1", "L1", "L2"), [0.3, 0.95, 0.95], SEQ)
    assert names_of(new) == ["T12", "L1", "L2"]


def test_gap_is_allowed_when_detections_are_confident() -> None:
    # L4 missed by the detector: L3 then L5 stays L3, L5 (no shift to fill the gap)
    new, changed = fix_order([10, 20, 30], ids("L2", "L3", "L5"), [0.9, 0.9, 0.9], SEQ)
    assert names_of(new) == ["L2", "L3", "L5"] and changed == 0


def test_gap_cost_can_pull_an_unsure_detection_into_the_gap() -> None:
    new, changed = fix_order([10, 20, 30], ids("L2", "L3", "L5"), [0.9, 0.9, 0.01], SEQ, skip_cost=1.0)
    assert names_of(new) == ["L2", "L3", "L4"] and changed == 1


def test_levels_strictly_increase_whatever_the_input() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        pos = rng.permutation(n).astype(float)
        cls = rng.integers(0, len(SEQ), n)
        conf = rng.random(n)
        new, changed = fix_order(pos, cls, conf, SEQ)
        levels = [SEQ.index(c) for c in new[np.argsort(pos)]]
        assert all(b > a for a, b in itertools.pairwise(levels))
        assert changed == int(np.sum(new != cls))


def test_classes_outside_the_sequence_are_untouched_and_too_many_detections_keep_extras() -> None:
    new, changed = fix_order([1, 2, 3], [5, 99, 5], [0.9, 0.9, 0.2], [4, 5, 6])
    assert new.tolist() == [5, 99, 6] and changed == 1
    new, changed = fix_order([1, 2, 3], [0, 0, 1], [0.9, 0.1, 0.8], [0, 1])  # 3 detections, 2 levels
    assert new.tolist() == [0, 0, 1] and changed == 0


def test_empty_and_mismatched_inputs() -> None:
    new, changed = fix_order([], [], [], SEQ)
    assert new.size == 0 and changed == 0
    with pytest.raises(ValueError, match="differ in length"):
        fix_order([1, 2], [0], [0.5], SEQ)


def test_teeth_chains_order_each_arch_left_to_right_in_the_image() -> None:
    teeth = load_registry("teeth")
    chains = OrderChains.from_registry(teeth)
    assert chains is not None and chains.axis == 0 and len(chains.sequences) == 2
    t = teeth.index
    # upper arch, image left to right: 13 12 11 21 predicted as 13 11 12 21 (11/12 swapped); lower arch correct
    cls = np.array([t("13"), t("11"), t("12"), t("21"), t("42"), t("41"), t("31")])
    xy = np.array([[10, 5], [20, 5], [30, 5], [40, 5], [20, 50], [30, 50], [40, 50]], dtype=float)
    conf = np.array([0.9, 0.6, 0.6, 0.9, 0.9, 0.9, 0.9])
    new, changed = fix_order_chains(xy, cls, conf, chains)
    assert [teeth.names[c] for c in new] == ["13", "12", "11", "21", "42", "41", "31"]
    assert changed == 2


def test_brain_has_no_chains() -> None:
    assert OrderChains.from_registry(load_registry("brain")) is None


def test_apply_order_fix_records_the_predicted_class() -> None:
    from yolo_spine.predict.run import apply_order_fix

    chains = OrderChains.from_registry(SPINE)
    names = list(SPINE.names)

    def inst(name: str, y: float, conf: float) -> dict:
        return {
            "class": name,
            "class_id": SPINE.index(name),
            "conf": conf,
            "box_xyxy": [0.0, y, 10.0, y + 8.0],
            "polygon_xy": [],
            "order_changed_from": None,
        }

    instances = [inst("L2", 0, 0.9), inst("L4", 10, 0.7), inst("L3", 20, 0.7), inst("L5", 30, 0.9)]
    assert apply_order_fix(instances, chains, names, 0.5, 0.05) == 2
    assert [i["class"] for i in instances] == ["L2", "L3", "L4", "L5"]
    assert [i["order_changed_from"] for i in instances] == [None, "L4", "L3", None]
    assert [i["class_id"] for i in instances] == [SPINE.index(n) for n in ("L2", "L3", "L4", "L5")]
