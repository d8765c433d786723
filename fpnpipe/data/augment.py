"""Training augmentation applied to a crop and its fine mask together (flips, 90-degree rotations, a small
affine), plus intensity jitter on the crop only (gamma, window level / width).

Randomness comes from an explicit torch.Generator, so a given (seed, epoch, sample) always gets the same
augmentation, whichever DataLoader worker draws it.
"""

from __future__ import annotations

import math

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from fpnpipe.config import AugmentParams


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def augment_pair(
    image: torch.Tensor, mask: torch.Tensor, p: AugmentParams, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment image (1, S, S) float in [0, 1] and mask (1, S, S) uint8 with the same geometry.

    Returns the augmented (image, mask), same shapes and dtypes. The affine part resamples the image
    bilinearly and the mask by nearest neighbour; pixels brought in from outside are 0 (air, not relevant).
    """
    if p.hflip and torch.rand((), generator=gen) < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    if p.vflip and torch.rand((), generator=gen) < 0.5:
        image, mask = image.flip(-2), mask.flip(-2)
    if p.rot90:
        k = int(torch.randint(4, (), generator=gen))
        image, mask = torch.rot90(image, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))
    if p.affine_degrees > 0 or p.affine_translate > 0 or p.affine_scale != (1.0, 1.0):
        size = image.shape[-1]
        angle = _uniform(gen, -p.affine_degrees, p.affine_degrees)
        shift = [round(_uniform(gen, -p.affine_translate, p.affine_translate) * size) for _ in range(2)]
        scale = math.exp(_uniform(gen, math.log(p.affine_scale[0]), math.log(p.affine_scale[1])))
        image = TF.affine(image, angle=angle, translate=shift, scale=scale, shear=[0.0, 0.0],
                          interpolation=InterpolationMode.BILINEAR)
        mask = TF.affine(mask, angle=angle, translate=shift, scale=scale, shear=[0.0, 0.0],
                         interpolation=InterpolationMode.NEAREST)
    if p.gamma != (1.0, 1.0):
        image = image.clamp(0, 1).pow(math.exp(_uniform(gen, math.log(p.gamma[0]), math.log(p.gamma[1]))))
    if p.window_jitter > 0:
        # Window jitter: shift the level and stretch the width by up to +-window_jitter.
        level = _uniform(gen, -p.window_jitter, p.window_jitter)
        width = 1.0 + _uniform(gen, -p.window_jitter, p.window_jitter)
        image = ((image - 0.5 - level) / width + 0.5).clamp(0, 1)
    return image, mask
