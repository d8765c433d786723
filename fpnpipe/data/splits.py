"""Patient-level train / val / test split: no patient is ever in two splits.

Rules, in order:
1. A patient whose rows name a split (the manifest's `split` column) goes there. A patient whose rows name
   two different splits is a conflict: all its rows are refused.
2. The other patients are shuffled with the seed, within strata of their label (so every split sees every
   class), and cut by `val_fraction` and `test_fraction`. If any patient was placed in `test` by the
   manifest, no further test patients are drawn (the named test set is kept as is, e.g. CBIS-DDSM's official
   one); likewise for `val`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SplitResult:
    assignment: dict[str, str]
    """patient_id -> train / val / test."""
    conflicts: dict[str, tuple[str, ...]]
    """patient_id -> the different splits its rows named (those patients are left out)."""
    drawn: tuple[str, ...]
    """Which splits were drawn at random from the unassigned patients (the rest came from the manifest)."""


def _stratum_seed(seed: int, stratum: str) -> list[int]:
    digest = hashlib.sha256(stratum.encode()).digest()
    return [seed, int.from_bytes(digest[:4], "little")]


def assign_splits(
    rows: Iterable[tuple[str, str, str | None]],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> SplitResult:
    """Assign every patient to one split.

    rows: (patient_id, label, explicit split or None) per manifest row; the patient's stratum is its
    sorted set of labels. The result does not depend on row order.
    """
    named: dict[str, set[str]] = defaultdict(set)
    labels: dict[str, set[str]] = defaultdict(set)
    for patient, label, split in rows:
        labels[patient].add(label)
        if split:
            named[patient].add(split)

    assignment: dict[str, str] = {}
    conflicts: dict[str, tuple[str, ...]] = {}
    for patient, splits in named.items():
        if len(splits) > 1:
            conflicts[patient] = tuple(sorted(splits))
        else:
            assignment[patient] = next(iter(splits))

    fractions = {"test": test_fraction, "val": val_fraction}
    drawn = tuple(s for s in ("test", "val") if s not in set(assignment.values()) and fractions[s] > 0)

    strata: dict[str, list[str]] = defaultdict(list)
    for patient in sorted(labels):
        if patient not in assignment and patient not in conflicts:
            strata["+".join(sorted(labels[patient]))].append(patient)

    # Each stratum is shuffled and spread evenly over one global order (position k of n gets the key
    # (k + 0.5) / n), which is then cut by the fractions: exact global counts, every class in every split.
    keyed: list[tuple[float, str, str]] = []
    for stratum, patients in strata.items():
        order = np.random.default_rng(_stratum_seed(seed, stratum)).permutation(len(patients))
        keyed += [((k + 0.5) / len(patients), stratum, patients[i]) for k, i in enumerate(order)]
    keyed.sort()
    start = 0
    for split in drawn:
        count = int(round(fractions[split] * len(keyed)))
        for _, _, patient in keyed[start : start + count]:
            assignment[patient] = split
        start += count
    for _, _, patient in keyed[start:]:
        assignment[patient] = "train"
    return SplitResult(assignment=assignment, conflicts=conflicts, drawn=drawn)
