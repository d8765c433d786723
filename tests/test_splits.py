"""Patient-level splits: no leakage, seeded, order-free, explicit split wins."""

from __future__ import annotations

import random
from collections import Counter

from fpnpipe.data.splits import assign_splits


def _rows(n_patients: int, views: int = 2) -> list[tuple[str, str, None]]:
    labels = ["circumscribed", "indistinct", "spiculated", "normal"]
    return [(f"P{i:03d}", labels[i % 4], None) for i in range(n_patients) for _ in range(views)]


def test_every_patient_in_exactly_one_split_with_requested_fractions():
    rows = _rows(100)
    result = assign_splits(rows, 0.15, 0.25, seed=3)
    assert set(result.assignment) == {p for p, _, _ in rows}
    counts = Counter(result.assignment.values())
    assert counts == {"test": 25, "val": 15, "train": 60}


def test_stratified_every_class_in_every_split():
    rows = _rows(80)
    result = assign_splits(rows, 0.2, 0.2, seed=0)
    seen = {(result.assignment[p], label) for p, label, _ in rows}
    for split in ("train", "val", "test"):
        for label in ("circumscribed", "indistinct", "spiculated", "normal"):
            assert (split, label) in seen


def test_seeded_and_independent_of_row_order():
    rows = _rows(50)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert assign_splits(rows, 0.2, 0.2, 7).assignment == assign_splits(shuffled, 0.2, 0.2, 7).assignment
    assert assign_splits(rows, 0.2, 0.2, 7).assignment != assign_splits(rows, 0.2, 0.2, 8).assignment


def test_explicit_split_wins_and_named_test_set_is_kept():
    rows = _rows(40) + [("T1", "spiculated", "test"), ("T1", "spiculated", None), ("V1", "indistinct", "val")]
    result = assign_splits(rows, 0.2, 0.3, seed=0)
    assert result.assignment["T1"] == "test" and result.assignment["V1"] == "val"
    # The manifest named a test set and a val set: nothing else is drawn into them.
    assert result.drawn == ()
    assert [p for p, s in result.assignment.items() if s == "test"] == ["T1"]


def test_named_test_set_still_carves_validation():
    rows = _rows(40) + [("T1", "spiculated", "test")]
    result = assign_splits(rows, 0.25, 0.3, seed=0)
    assert result.drawn == ("val",)
    counts = Counter(result.assignment.values())
    assert counts["test"] == 1 and counts["val"] == 10


def test_conflicting_explicit_splits_are_reported_not_assigned():
    rows = _rows(10) + [("X", "spiculated", "train"), ("X", "spiculated", "test")]
    result = assign_splits(rows, 0.2, 0.2, seed=0)
    assert "X" not in result.assignment
    assert result.conflicts == {"X": ("test", "train")}
