"""Why plain projection can put many prototypes onto a handful of training crops (iaiabl on real data: 32
prototypes onto 5 crops), shown on the crops of data/processed: the latent patches of iaiabl's add-on space
(the conv-5 map, untrained), their effective dimension, and where the nearest-patch rule sends 32 prototypes
when the patches are squeezed onto their top-k principal directions and the prototypes sit at their own
distance or 16x farther from the data.

A prototype far from every patch (relative to how far the patches lie from each other) takes the patch that
sticks out furthest in its direction; when the patches span few directions, few patches stick out, and every
prototype of a class takes one of them. Duplicate-free projection (project.distinct) then still gives each
prototype of a class and level its own crop.

    python bench/projection_collapse.py                     # after `dvc repro negatives` (the quickstart crops)
    python bench/projection_collapse.py --root /path/to/repo
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.data.dataset import split_crops
from fpnpipe.data.schema import read_crops
from fpnpipe.model.build import build_network


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="folder holding data/processed/{crops,negatives}.h5")
    args = parser.parse_args(argv)
    crops = split_crops(read_crops(f"{args.root}/data/processed/crops.h5"),
                        read_crops(f"{args.root}/data/processed/negatives.h5"), "train")
    torch.manual_seed(0)
    model = build_network(ModelParams(arch="iaiabl"), PrototypeParams()).eval()
    with torch.no_grad():
        z = model.forward_features(torch.from_numpy(crops.images)[:, None])[-1].float()  # (N, d, H, W)
    n, d, h, w = z.shape
    inner = model.prototype_layer.border_cells(h)  # projection never takes border cells
    z = z[:, :, inner : h - inner, inner : w - inner]
    patches = z.permute(0, 2, 3, 1).reshape(n, -1, d)  # (N, cells, d)
    flat = patches.reshape(-1, d)
    centre = flat.mean(0)
    _, sv, vt = torch.linalg.svd(flat - centre, full_matrices=False)
    energy = sv**2
    participation = float(energy.sum() ** 2 / (energy**2).sum())
    print(f"{n} training crops, {flat.shape[0]} latent patches of dimension {d}; effective dimension "
          f"(participation ratio of the principal variances) {participation:.1f}")
    protos = model.prototype_layer.prototype_vectors.detach().float()
    classes = model.prototype_class.numpy()
    spread = float((flat - centre).norm(dim=1).median())
    for scale in (1, 16):
        far = centre + scale * (protos - centre)
        gap = float(torch.cdist(far, flat).min(1).values.median())
        print(f"prototypes at {scale}x their distance from the patches' centre: median distance to the nearest "
              f"patch {gap:.2f} (the patches lie {spread:.2f} from their centre)")
        for k in (d, 8, 4, 2, 1):
            basis = vt[:k]
            squeezed = centre + ((patches - centre) @ basis.T) @ basis  # (N, cells, d)
            sources = set()
            for j in range(len(far)):
                own = np.flatnonzero(crops.label == classes[j])
                dist = ((squeezed[own] - far[j]) ** 2).sum(-1)  # (n_own, cells)
                sources.add(int(own[int(dist.min(1).values.argmin())]))
            print(f"  patches on their top {k:2d} principal directions: plain projection puts the {len(far)} "
                  f"prototypes onto {len(sources):2d} distinct crops")


if __name__ == "__main__":
    main()
