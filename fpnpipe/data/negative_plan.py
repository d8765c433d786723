"""How many negative patches each image gives, and which lesion crop each one imitates.

Every split gets round(`ratio` x its lesion crops) patches. Each patch has a template: a training lesion
crop whose side it copies and whose framing and intensity statistics (fpnpipe.data.crop_stats.MATCHED) it
is matched to. Templates are dealt in shuffled rounds, so every training lesion crop serves about equally
often, and patches are dealt over the split's usable images in a shuffled order, so they spread evenly
(an image gets a second patch only once every image of its split has one). Training crops serve as
templates for every split: test lesion crops never shape anything.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpnpipe.data.crop_stats import MATCHED, box_sides, columns, crop_statistics
from fpnpipe.data.image_table import ImageEntry
from fpnpipe.data.schema import SPLITS, CropSet

_MIN_SCALE = 0.01
"""Floor of a matched statistic's spread (all lie in [0, 1]), so one that barely varies among the lesion
crops (e.g. the dark share where none holds air) cannot dominate the matching distance."""


@dataclass(frozen=True)
class Template:
    """What one negative patch imitates: a lesion crop's box side (source pixels) and its MATCHED statistics."""

    side: int
    stats: tuple[float, ...]


@dataclass(frozen=True)
class NegativeSource:
    """An image of the table and its file, found again through the manifest row that names it (None when
    that row no longer resolves to a file)."""

    entry: ImageEntry
    image_path: Path | None


@dataclass(frozen=True)
class NegativeJob:
    """One image (index `index` into the sources), the templates of the patches it is to give in dealing
    round `round`, and the boxes it gave in earlier rounds (new patches must not overlap them much)."""

    index: int
    source: NegativeSource
    templates: tuple[Template, ...]
    round: int = 0
    taken: tuple[tuple[int, int, int, int], ...] = ()


@dataclass(frozen=True)
class NegativePlan:
    sources: list[NegativeSource]
    jobs: list[NegativeJob]
    """The first dealing round: the images given at least one template."""
    scale: tuple[float, ...]
    """Spread (standard deviation) of each MATCHED statistic over the templates: the matching distance's units."""
    wanted: dict[str, int]
    """Patches wanted per split."""
    notes: list[dict[str, str]]
    """Images that cannot give patches, and splits that have no usable image, with the reason."""


def locate(entries: list[ImageEntry], paths: dict[tuple[str, int], Path]) -> list[NegativeSource]:
    """Each entry with its file from {(source, row): image file} (see fpnpipe.data.sources.image_paths)."""
    return [NegativeSource(e, paths.get((e.source, e.row))) for e in entries]


def templates_of(lesions: CropSet) -> list[Template]:
    """One template per training lesion crop (every lesion crop if the training split has none)."""
    pool = lesions.in_split("train") if (lesions.split == "train").any() else lesions
    stats = columns(crop_statistics(pool.images, box_sides(pool.source_box)), MATCHED)
    sides = np.round(box_sides(pool.source_box)).astype(np.int64)
    return [Template(int(side), tuple(float(v) for v in row)) for side, row in zip(sides, stats, strict=True)]


def _unusable(source: NegativeSource) -> str | None:
    entry = source.entry
    if not entry.all_lesions_known:
        return "not used: a lesion row of this image was rejected, so its extent is unknown"
    if source.image_path is None:
        return f"not used: {entry.source} row {entry.row} no longer names a readable image; rerun preprocess"
    return None


def _rounds(count: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` indices into range(count) dealt in shuffled rounds (each index once per round)."""
    rounds = -(-n // count)
    return np.concatenate([rng.permutation(count) for _ in range(rounds)])[:n]


def plan_negatives(sources: list[NegativeSource], lesions: CropSet, ratio: float, seed: int) -> NegativePlan:
    """Templates for every image of `sources` (in their order): round(ratio x lesion crops) patches per split,
    dealt as the module docstring says, reproducibly from `seed`."""
    templates = templates_of(lesions)
    stats = np.array([t.stats for t in templates]).reshape(len(templates), len(MATCHED))
    scale = tuple(float(v) for v in np.maximum(stats.std(axis=0) if len(templates) else 0.0, _MIN_SCALE))
    notes = [{"image": s.entry.image_id, "note": why} for s in sources if (why := _unusable(s))]
    assigned: list[list[Template]] = [[] for _ in sources]
    wanted: dict[str, int] = {}
    for split in SPLITS:
        n = int(round(ratio * int((lesions.split == split).sum())))
        images = [i for i, s in enumerate(sources) if s.entry.split == split and _unusable(s) is None]
        if n == 0:
            continue
        wanted[split] = n
        if not images or not templates:
            notes.append({"image": f"({split} split)", "note": f"{n} patches wanted but no usable image or template"})
            continue
        rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
        order = rng.permutation(images)
        for k, t in enumerate(_rounds(len(templates), n, rng)):
            assigned[int(order[k % len(order)])].append(templates[int(t)])
    jobs = [NegativeJob(i, s, tuple(a)) for i, (s, a) in enumerate(zip(sources, assigned, strict=True)) if a]
    return NegativePlan(sources, jobs, scale, wanted, notes)


def redeal(
    plan: NegativePlan,
    failed: list[tuple[int, Template]],
    taken: dict[int, list[tuple[int, int, int, int]]],
    round: int,
    seed: int,
) -> list[NegativeJob]:
    """Jobs of dealing round `round` (1, 2, ...): each (source index, template) that found no place on its
    image goes to another usable image of the same split, images without lesions first, each group in a
    shuffled order (reproducible from `seed` and the round), skipping the image it failed on; `taken`: the
    boxes each image already gave."""
    usable = [i for i, s in enumerate(plan.sources) if _unusable(s) is None]
    assigned: dict[int, list[Template]] = {}
    for split in SPLITS:
        mine = [(i, t) for i, t in failed if plan.sources[i].entry.split == split]
        images = [i for i in usable if plan.sources[i].entry.split == split]
        if not mine or len(images) < 2:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(split.encode()), round])
        # Images without lesions first: a large template that found no room beside a lesion fits there best.
        order = [int(i) for i in rng.permutation(images) if not plan.sources[i].entry.lesion_boxes] + \
            [int(i) for i in rng.permutation(images) if plan.sources[i].entry.lesion_boxes]
        k = 0
        for failed_on, template in mine:
            if order[k % len(order)] == failed_on:
                k += 1
            assigned.setdefault(order[k % len(order)], []).append(template)
            k += 1
    return [NegativeJob(i, plan.sources[i], tuple(ts), round, tuple(taken.get(i, ()))) for i, ts in
            sorted(assigned.items())]
