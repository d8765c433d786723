"""The training objective, equation (4) of the paper, and the last-layer phase's loss.

Every term is a plain function with documented shapes, so it can be checked against its formula on its
own; PrototypeLoss combines them with the lambdas of the `loss` params section.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fpnpipe.config import LossParams
from fpnpipe.metrics.activation import upsample_maps
from fpnpipe.model.base import ClassifierNet, PrototypeOutput
from fpnpipe.model.build import prototype_network
from fpnpipe.model.head import class_identity


class LossTerms(NamedTuple):
    """Scalar tensors: the differentiable total and each (unweighted) term, for logging."""

    total: Tensor
    ce: Tensor
    clust: Tensor
    sep: Tensor
    ortho: Tensor
    fine: Tensor
    l1: Tensor


def _own_class(labels: Tensor, prototype_class: Tensor) -> Tensor:
    """(B, m) bool: prototype j belongs to the class of image b."""
    return prototype_class.to(labels.device)[None, :] == labels[:, None]


def cluster_loss(similarities: Tensor, labels: Tensor, prototype_class: Tensor) -> Tensor:
    """Cosine-form cluster cost (Deformable ProtoPNet): minus the batch mean of each image's highest pooled
    similarity to a prototype of its own class.

    similarities: (B, m); labels: (B,) long; prototype_class: (m,) long. Every label's class needs at least
    one prototype (params validation guarantees it). Returns a scalar."""
    own = _own_class(labels, prototype_class)
    return -similarities.masked_fill(~own, float("-inf")).amax(dim=1).mean()


def separation_loss(similarities: Tensor, labels: Tensor, prototype_class: Tensor) -> Tensor:
    """Separation cost (Deformable ProtoPNet): the batch mean of each image's highest pooled similarity to a
    prototype of another class. Shapes as cluster_loss. Returns a scalar."""
    own = _own_class(labels, prototype_class)
    return similarities.masked_fill(own, float("-inf")).amax(dim=1).mean()


def best_patch_similarity(activations: Sequence[Tensor]) -> Tensor:
    """(B, m): each prototype's highest patch similarity on each image (max-pooling, as ProtoPNet and
    Deformable ProtoPNet pool for their cluster and separation costs). activations: per level
    (B, m_l, H_l, W_l), levels in the global prototype order."""
    return torch.cat([maps.float().flatten(2).amax(dim=2) for maps in activations if maps.shape[1]], dim=1)


def prototype_groups(prototype_class: Tensor, prototype_level: Tensor, num_classes: int) -> Tensor:
    """(m,) long group id, equal for prototypes sharing both class and FPN level."""
    return prototype_level * num_classes + prototype_class


def orthogonality_loss(prototypes: Tensor, groups: Tensor) -> Tensor:
    """Orthogonality loss (Deformable ProtoPNet), grouped by class and level: with P_g the unit-normalised
    prototypes of group g, the sum over groups of ||P_g P_g^T - I||_F^2.

    prototypes: (m, d); groups: (m,) integer group ids. Returns a float32 scalar, also under autocast (0 for
    orthonormal groups; a group of one prototype contributes 0)."""
    with torch.autocast(device_type=prototypes.device.type, enabled=False):
        unit = F.normalize(prototypes.float(), dim=1)
        gram = unit @ unit.T
        same = (groups[:, None] == groups[None, :]).to(gram.dtype)
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        return ((gram - eye).square() * same).sum()


def _sqrt_with_zero_grad_at_zero(x: Tensor) -> Tensor:
    """sqrt(x) for x >= 0 whose gradient at 0 is 0 rather than infinite (which would give NaN)."""
    positive = x > 0
    return torch.where(positive, x.clamp(min=torch.finfo(x.dtype).tiny).sqrt(), torch.zeros_like(x))


def fine_annotation_loss(
    activations: Sequence[Tensor],
    fine: Tensor,
    has_fine: Tensor,
    labels: Tensor,
    prototype_class: Tensor,
    inside: Tensor,
    outside: Tensor,
    relative: bool = False,
) -> Tensor:
    """Fine-annotation loss, IAIA-BL's generalised to per-(image class, prototype class) coefficients.

    activations: per level (B, m_l, H_l, W_l) patch similarity maps, levels in the global prototype order
        (their m_l sum to m); fine: (B, S, S) 1 = the annotated (relevant) region; has_fine: (B,) bool;
        labels: (B,) long; prototype_class: (m,) long; inside, outside: (C, C) coefficients, row = image
        class, column = prototype class.

    Each map is upsampled bilinearly to S x S and clamped at 0 (a negative value is not activation, and must
    not cancel activation elsewhere). With a_bj that map and m_b the mask, RMS(x) = ||x||_F / S (independent
    of the crop size):

        l_bj = inside[y_b, c_j] * RMS(a_bj * m_b) + outside[y_b, c_j] * RMS(a_bj * (1 - m_b))

    averaged over the m prototypes, then over the annotated images only (independent of prototype count and
    batch size). Computed in float32, also under autocast. Returns 0 when no image of the batch is annotated.

    relative: measure each map against its own mean over the patch grid, a_bj = s_bj - mean(s_bj), before
        upsampling and clamping: the quantity the focal similarity of eq. (3) pools. Absolute cosines can be
        pushed below zero everywhere, where the clamp no longer sees them, while the focal similarity (and
        any percentile-based activation region) still ranks the patches the same way; relative activation
        leaves no such way out.
    """
    with torch.autocast(device_type=fine.device.type, enabled=False):
        return _fine_annotation_loss(activations, fine, has_fine, labels, prototype_class, inside, outside, relative)


def _fine_annotation_loss(
    activations: Sequence[Tensor],
    fine: Tensor,
    has_fine: Tensor,
    labels: Tensor,
    prototype_class: Tensor,
    inside: Tensor,
    outside: Tensor,
    relative: bool,
) -> Tensor:
    size = fine.shape[-2:]
    mask = fine.to(torch.float32)
    regions = torch.stack((mask, 1 - mask), dim=1).flatten(2)  # (B, 2, S*S): inside, outside
    pixels = float(size[0] * size[1])
    energies: list[Tensor] = []
    for maps in activations:
        if maps.shape[1] == 0:
            continue
        maps = maps.float()
        if relative:
            maps = maps - maps.mean(dim=(2, 3), keepdim=True)
        a = F.relu(upsample_maps(maps, (int(size[0]), int(size[1]))))
        # squared Frobenius norm inside and outside in one pass: (B, m_l, S*S) x (B, S*S, 2) -> (B, m_l, 2)
        energies.append(torch.bmm(a.square().flatten(2), regions.transpose(1, 2)))
    rms = _sqrt_with_zero_grad_at_zero(torch.cat(energies, dim=1) / pixels)  # (B, m, 2)
    rms_in, rms_out = rms[..., 0], rms[..., 1]
    proto_class = prototype_class.to(labels.device)
    coef_in = inside.to(rms_in)[labels][:, proto_class]  # (B, m)
    coef_out = outside.to(rms_in)[labels][:, proto_class]
    per_image = (coef_in * rms_in + coef_out * rms_out).mean(dim=1)  # (B,)
    annotated = has_fine.to(device=per_image.device, dtype=torch.bool)
    per_image = torch.where(annotated, per_image, torch.zeros_like(per_image))
    return per_image.sum() / annotated.sum().clamp(min=1).to(per_image.dtype)


def l1_wrong_class(weight: Tensor, prototype_class: Tensor) -> Tensor:
    """ProtoPNet's L1 penalty on the last-layer weights from each prototype to the classes it does not
    belong to. weight: (C, m); prototype_class: (m,). Returns a scalar."""
    wrong = 1 - class_identity(prototype_class.to(weight.device), weight.shape[0]).to(weight.dtype)
    return (weight.abs() * wrong).sum()


def _gradient_if(weight: float) -> AbstractContextManager[None]:
    """No autograd graph for a term whose lambda is 0: it is only logged."""
    return torch.no_grad() if weight == 0 else nullcontext()


class PrototypeLoss(nn.Module):
    """Equation (4): CE + l_clust * clust + l_sep * sep + l_ortho * ortho + l_fine * fine.

    Args:
        params: the `loss` params section (lambdas and the fine-annotation coefficient matrices).
        prototype_class, prototype_level: (m,) long, or None for the black-box vgg16 (then the loss is CE).
        num_classes: C.
        orthogonality: include the orthogonality term (for_model: as the model's similarity says).
        fine_annotation: include the fine-annotation term (for_model: as the model says).

    forward(output, labels (B,), fine (B, S, S) or None, has_fine (B,) bool or None) -> LossTerms.
    A term whose lambda is 0 is still reported but computed without gradient; a term that does not apply
    (no prototypes, no masks given, orthogonality off) is reported as 0. Build with `for_model`.
    """

    prototype_class: Tensor
    groups: Tensor
    fine_inside: Tensor
    fine_outside: Tensor

    def __init__(
        self,
        params: LossParams,
        prototype_class: Tensor | None,
        prototype_level: Tensor | None,
        num_classes: int,
        orthogonality: bool = True,
        fine_annotation: bool = True,
    ) -> None:
        super().__init__()
        self.params = params
        self.orthogonality = orthogonality
        self.fine_annotation = fine_annotation
        self.num_classes = num_classes
        self.has_prototypes = prototype_class is not None
        if prototype_class is not None:
            if prototype_level is None:
                raise ValueError("prototype_level is required with prototype_class")
            missing = sorted(set(range(num_classes)) - set(prototype_class.tolist()))
            if missing:
                raise ValueError(f"classes {missing} have no prototype; every class needs at least one")
            groups = prototype_groups(prototype_class, prototype_level, num_classes)
            self.register_buffer("prototype_class", prototype_class.clone(), persistent=False)
            self.register_buffer("groups", groups, persistent=False)
        inside = torch.tensor(params.fine_inside.matrix(), dtype=torch.float32)
        outside = torch.tensor(params.fine_outside.matrix(), dtype=torch.float32)
        if inside.shape != (num_classes, num_classes):
            raise ValueError(f"fine coefficient matrices must be {num_classes} x {num_classes}")
        self.register_buffer("fine_inside", inside, persistent=False)
        self.register_buffer("fine_outside", outside, persistent=False)

    @classmethod
    def for_model(cls, params: LossParams, model: ClassifierNet) -> PrototypeLoss:
        """The loss for a model of the registry, on the model's device: without prototypes it is CE alone;
        the orthogonality term applies where the model's similarity says it does (not in the iaiabl
        baseline's sigmoid latent space), the fine-annotation term where the model uses fine annotations."""
        net = prototype_network(model)
        if net is None:
            return cls(params, None, None, model.num_classes)
        loss = cls(params, net.prototype_class, net.prototype_level, net.num_classes,
                   orthogonality=net.prototype_layer.similarity.orthogonality,
                   fine_annotation=net.uses_fine_annotation)
        return loss.to(net.prototype_class.device)

    def cross_entropy(self, output: PrototypeOutput, labels: Tensor) -> Tensor:
        if output.logits.ndim != 2 or labels.shape != output.logits.shape[:1]:
            raise ValueError(f"labels must be (B,) for logits (B, C), got {tuple(labels.shape)}")
        return F.cross_entropy(output.logits.float(), labels)

    def cluster_similarities(self, output: PrototypeOutput) -> Tensor:
        """(B, m) similarities for the cluster and separation costs (loss.cluster_similarity): each
        prototype's best patch similarity (max over its map), or the pooled similarity of the logits."""
        if self.params.cluster_similarity == "pooled":
            if output.similarities is None:
                raise ValueError("pooled cluster similarities need a prototype model's output")
            return output.similarities.float()
        return best_patch_similarity(output.activations)

    def forward(
        self, output: PrototypeOutput, labels: Tensor, fine: Tensor | None = None, has_fine: Tensor | None = None
    ) -> LossTerms:
        ce = self.cross_entropy(output, labels)
        zero = ce.new_zeros(())
        if not self.has_prototypes or output.similarities is None or output.prototypes is None:
            return LossTerms(ce, ce, zero, zero, zero, zero, zero)
        p = self.params
        sims = self.cluster_similarities(output)
        with _gradient_if(p.lambda_clust):
            clust = cluster_loss(sims, labels, self.prototype_class)
        with _gradient_if(p.lambda_sep):
            sep = separation_loss(sims, labels, self.prototype_class)
        ortho = zero
        if self.orthogonality:
            with _gradient_if(p.lambda_ortho):
                ortho = orthogonality_loss(output.prototypes, self.groups)
        fine_term = zero
        if self.fine_annotation and fine is not None and has_fine is not None:
            if fine.ndim != 3 or fine.shape[0] != labels.shape[0] or has_fine.shape != labels.shape:
                raise ValueError(
                    f"expected fine (B, S, S) and has_fine (B,) for B = {labels.shape[0]}, "
                    f"got {tuple(fine.shape)} and {tuple(has_fine.shape)}"
                )
            with _gradient_if(p.lambda_fine):
                fine_term = fine_annotation_loss(
                    output.activations,
                    fine,
                    has_fine,
                    labels,
                    self.prototype_class,
                    self.fine_inside,
                    self.fine_outside,
                    relative=p.fine_activation == "relative",
                )
        total = ce + p.lambda_clust * clust + p.lambda_sep * sep + p.lambda_ortho * ortho + p.lambda_fine * fine_term
        return LossTerms(total, ce, clust, sep, ortho, fine_term, zero)

    def last_layer_loss(self, output: PrototypeOutput, labels: Tensor, model: ClassifierNet) -> LossTerms:
        """The last-layer phase: CE + lambda_l1 * L1 of the wrong-class last-layer weights (CE alone for
        the black box, which has no prototype classes)."""
        ce = self.cross_entropy(output, labels)
        zero = ce.new_zeros(())
        if not self.has_prototypes:
            return LossTerms(ce, ce, zero, zero, zero, zero, zero)
        net = prototype_network(model)
        if net is None:
            raise ValueError("the last-layer L1 term needs a prototype model")
        l1 = l1_wrong_class(net.last_layer.weight, self.prototype_class)
        return LossTerms(ce + self.params.lambda_l1 * l1, ce, zero, zero, zero, zero, l1)
