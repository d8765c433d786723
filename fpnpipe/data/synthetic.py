"""The built-in synthetic dataset: which patients and views exist, and each view's picture.

`plan_views` decides everything about the files (patients, labels, views, pixel encodings, fake
identities); `render_view` draws one view's presentation image and lesion mask. Both are pure functions of
the params and the seed. Random streams are keyed by SeedSequence([seed, stream, index, ...]): labels
per block of patients (stream 1), patient and picture draws per patient and view (stream 0), file
encodings per view (stream 2); so adding patients never changes earlier ones. Images are drawn in canonical
orientation (chest wall on the left, as for a left breast) and mirrored for right breasts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fpnpipe.classes import MARGIN_CLASSES, NORMAL_LABEL
from fpnpipe.config.data import SynthParams
from fpnpipe.data.dicom_write import Identity
from fpnpipe.data.phantom import (
    BreastGeometry,
    Mass,
    PixelEncoding,
    breast_outline,
    detector,
    draw_mass,
    fibroglandular,
    render_mass,
    skewed_draw,
    thickness_profile,
)

LABELS: tuple[str, ...] = (*MARGIN_CLASSES, NORMAL_LABEL)
BLOCK = 20
"""Patients are assigned labels in blocks of this many, so class counts stay close to the weights."""
BITS_CHOICES: tuple[int, ...] = (12, 14, 16)
RESCALE_CHOICES: tuple[tuple[float, float] | None, ...] = (None, None, (1.0, 0.0), (0.5, -1024.0), (2.0, 100.0))
RLE_FRACTION = 0.3
WINDOW_FRACTION = 0.5
DENSITY_EASY, DENSITY_HARD = 0.08, 0.6
"""Fibroglandular fraction of the breast area at the easy and hard ends of `difficulty`."""


@dataclass(frozen=True)
class ViewPlan:
    """One image file to write: who, what, and how its pixels are stored."""

    image_id: str
    patient_id: str
    patient_index: int
    view_index: int
    label: str
    laterality: str
    view: str
    encoding: PixelEncoding
    rle: bool
    window: bool
    identity: Identity


@dataclass(frozen=True)
class RenderedView:
    """presentation: (H, W) float32 in [0, 1], bright = dense; roi: (H, W) bool lesion mask or None
    (normal view); breast: (H, W) bool breast mask; mass: the drawn lesion or None."""

    presentation: np.ndarray
    roi: np.ndarray | None
    breast: np.ndarray
    mass: Mass | None


def assign_labels(n_patients: int, synth: SynthParams, seed: int) -> list[str]:
    """One label per patient (margin class or "normal"), in proportion to `synth.class_weights`.

    Each block of BLOCK patients is filled by systematic sampling of the weights (every label gets the
    floor or ceiling of its share) and then shuffled; a block's labels depend only on seed and block index.
    """
    weights = np.array([getattr(synth.class_weights, name) for name in LABELS], dtype=float)
    bounds = np.cumsum(weights / weights.sum())
    labels: list[str] = []
    for block in range((n_patients + BLOCK - 1) // BLOCK):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, block]))
        positions = (rng.random() + np.arange(BLOCK)) / BLOCK
        picks = np.minimum(np.searchsorted(bounds, positions, side="right"), len(LABELS) - 1)
        labels.extend(LABELS[i] for i in rng.permutation(picks))
    return labels[:n_patients]


def patient_id(index: int) -> str:
    return f"synth{index:05d}"


def plan_views(synth: SynthParams, seed: int) -> list[ViewPlan]:
    """Every view of every patient, in patient order."""
    labels = assign_labels(synth.n_patients, synth, seed)
    plans: list[ViewPlan] = []
    for index, label in enumerate(labels):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0, index]))
        n_views = int(rng.integers(synth.views_per_patient[0], synth.views_per_patient[1] + 1))
        laterality = "L" if rng.random() < 0.5 else "R"
        pid = patient_id(index)
        for k in range(n_views):
            view = ("CC", "MLO")[k % 2]
            fmt = np.random.default_rng(np.random.SeedSequence([seed, 2, index, k]))
            photometric = "MONOCHROME1" if fmt.random() < synth.monochrome1_fraction else "MONOCHROME2"
            encoding = PixelEncoding(
                photometric=photometric,
                bits_stored=int(fmt.choice(BITS_CHOICES)),
                rescale=RESCALE_CHOICES[int(fmt.integers(len(RESCALE_CHOICES)))],
            )
            image_id = f"{pid}_{laterality}_{view}_{k}"
            plans.append(
                ViewPlan(
                    image_id=image_id,
                    patient_id=pid,
                    patient_index=index,
                    view_index=k,
                    label=label,
                    laterality=laterality,
                    view=view,
                    encoding=encoding,
                    rle=bool(fmt.random() < RLE_FRACTION),
                    window=bool(fmt.random() < WINDOW_FRACTION),
                    identity=fake_identity(index, k),
                )
            )
    return plans


def fake_identity(index: int, view_index: int) -> Identity:
    """Obviously fake identifying header values (distinct from the manifest's patient_id)."""
    return Identity(
        patient_name=f"Fake^Phantom{index:05d}",
        patient_id=f"FAKE-MRN-{index:05d}",
        birth_date=f"19{50 + index % 40:02d}0101",
        accession=f"FAKEACC{index:05d}{view_index:02d}",
        institution="Nowhere Phantom Hospital",
    )


def render_view(plan: ViewPlan, synth: SynthParams, seed: int) -> RenderedView:
    """Draw the presentation image (and lesion mask) of one planned view; deterministic in its inputs."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0, plan.patient_index, 1 + plan.view_index]))
    shape = (int(synth.image_shape[0]), int(synth.image_shape[1]))
    breast = breast_outline(shape, plan.view, rng)
    image = _anatomy(breast, synth, rng, mlo=plan.view == "MLO")

    roi = None
    mass = None
    if plan.label != NORMAL_LABEL:
        mass, centre = _place_mass(plan.label, breast, synth, rng)
        rendered = render_mass(mass, centre, rng)
        roi = np.zeros(shape, dtype=bool)
        _paste(image, rendered.intensity, rendered.top, rendered.left, add=True)
        _paste(roi, rendered.roi, rendered.top, rendered.left, add=False)
        roi &= breast.mask

    blur = float(rng.uniform(*synth.blur_sigma_px))
    image = detector(image, blur, synth.noise, rng)
    mask = breast.mask
    if plan.laterality == "R":
        image, mask = np.fliplr(image), np.fliplr(mask)
        roi = None if roi is None else np.fliplr(roi)
    contiguous = np.ascontiguousarray
    return RenderedView(
        presentation=contiguous(image),
        roi=None if roi is None else contiguous(roi),
        breast=contiguous(mask),
        mass=mass,
    )


def _anatomy(breast: BreastGeometry, synth: SynthParams, rng: np.random.Generator, *, mlo: bool) -> np.ndarray:
    """(H, W) float32 presentation image of the lesion-free breast against air, before the detector."""
    rows, cols = breast.mask.shape
    beta = float(rng.uniform(*synth.background_beta))
    density = skewed_draw(rng, DENSITY_EASY, DENSITY_HARD, synth.difficulty)
    tilt = (0.25 if mlo else 0.0) + float(rng.normal(0.0, 0.12))
    tissue, noise = fibroglandular(breast, beta, density, rng, anisotropy=float(rng.uniform(1.5, 2.5)), angle=tilt)

    air = float(rng.uniform(0.02, 0.05))
    fat = float(rng.uniform(0.28, 0.36))
    dense = fat + float(rng.uniform(0.12, 0.22))
    body = fat + (dense - fat) * tissue + 0.03 * noise
    # The pectoral muscle: brightest at the chest-wall corner, fading a little towards its edge.
    y, x = np.ogrid[0:rows, 0:cols]
    corner = np.clip(np.sqrt((x / cols) ** 2 + (y / rows) ** 2) / 0.6, 0.0, 1.0)
    muscle = float(rng.uniform(0.5, 0.62)) + 0.08 * (1.0 - corner) + 0.02 * noise
    if breast.pectoral.any():
        pectoral = ndimage.gaussian_filter(breast.pectoral.astype(np.float32), 1.5)
        body = body + pectoral * (muscle - body)
    thickness = thickness_profile(breast.skin_distance, rim_px=cols * float(rng.uniform(0.05, 0.09)))
    skin = float(rng.uniform(0.05, 0.09)) * np.exp(-0.5 * ((breast.skin_distance - 1.5) / 0.9) ** 2)
    image = np.where(breast.mask, air + thickness * (body - air) + skin, air)
    return image.astype(np.float32)


def _place_mass(
    label: str, breast: BreastGeometry, synth: SynthParams, rng: np.random.Generator
) -> tuple[Mass, tuple[float, float]]:
    """Draw a mass and a centre (x, y) that keeps all of it inside the breast, off the pectoral muscle
    and clear of the skin line; if no place fits, redraw the mass smaller (and, at last, take the
    deepest point)."""
    # Depth inside the allowed region (breast minus pectoral, image border excluded), on a half-resolution
    # grid: placement needs no sub-pixel accuracy and this is the costliest step of a view.
    allowed = (breast.mask & ~breast.pectoral)[::2, ::2].copy()
    allowed[0, :] = allowed[-1, :] = allowed[:, 0] = allowed[:, -1] = False
    depth = 2.0 * ndimage.distance_transform_edt(allowed) - 2.0
    clearance = 0.04 * breast.mask.shape[1] + 4.0
    shrink = 1.0
    for _ in range(6):
        radius = (synth.lesion_radius_px[0] * shrink, synth.lesion_radius_px[1] * shrink)
        mass = draw_mass(label, radius, synth.lesion_contrast, synth.difficulty, rng)
        need = mass.extent() + 3.0 * mass.edge_sigma + clearance
        rows, cols = np.nonzero(depth >= need)
        if len(rows):
            pick = int(rng.integers(len(rows)))
            return mass, (2.0 * cols[pick] + float(rng.random()), 2.0 * rows[pick] + float(rng.random()))
        shrink *= 0.8
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return mass, (2.0 * col, 2.0 * row)


def _paste(target: np.ndarray, patch: np.ndarray, top: int, left: int, *, add: bool) -> None:
    """Add (or OR / assign) `patch` into `target` at (top, left), clipped to the target's bounds."""
    h, w = target.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch.shape[0], h), min(left + patch.shape[1], w)
    if y0 >= y1 or x0 >= x1:
        return
    piece = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    if add:
        target[y0:y1, x0:x1] += piece
    else:
        target[y0:y1, x0:x1] |= piece
