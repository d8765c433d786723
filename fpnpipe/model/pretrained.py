"""Reading torchvision's VGG-16 ImageNet weights from a local file (model.pretrained)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

from fpnpipe.config import ConfigError
from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.safe_load import UnreadableFile, UnsafeFile, load_plain


def _feature_weights(state: Mapping[str, object], expected: Mapping[str, Tensor]) -> dict[str, object]:
    """The `features.*` entries of a full VGG state dict, prefix removed; a features-only dict as it is."""
    prefixed = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    return prefixed or {k: v for k, v in state.items() if k in expected}


def load_imagenet_features(backbone: VGGBackbone, path: str | Path) -> None:
    """Copy torchvision's VGG-16 ImageNet weights from `path` into `backbone` (in place).

    The file is read with torch.load(weights_only=True): no arbitrary object is ever unpickled. It may hold
    the whole `torchvision.models.vgg16` state dict (the classifier is ignored) or only `features`.
    Raises ConfigError naming model.pretrained if the file is missing, unreadable, or holds other weights
    (e.g. another VGG depth, batch-norm VGG, or a backbone of width < 1).
    """
    path = Path(path)
    if backbone.width != 1.0:
        raise ConfigError(f"model.pretrained: ImageNet weights fit only model.width 1.0, not {backbone.width}")
    if not path.is_file():
        raise ConfigError(f"model.pretrained: file not found: {path}")
    try:
        state = load_plain(path)
    except UnsafeFile as exc:
        raise ConfigError(
            f"model.pretrained: {path}: refused: not a plain state dict ({exc.detail}); fpnpipe never loads such "
            "files"
        ) from None
    except UnreadableFile as exc:
        raise ConfigError(f"model.pretrained: {path} is not a readable PyTorch state dict ({exc.detail})") from None
    if not isinstance(state, Mapping):
        raise ConfigError(f"model.pretrained: {path} holds a {type(state).__name__}, not a state dict")
    expected = backbone.features.state_dict()
    found = _feature_weights(state, expected)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [
        f"{k}: {tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__} instead of {tuple(expected[k].shape)}"
        for k, v in found.items()
        if k in expected and (not isinstance(v, Tensor) or v.shape != expected[k].shape)
    ]
    if missing or unexpected or wrong:
        details = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}" if missing else "",
                f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}" if unexpected else "",
                f"shape mismatch {', '.join(wrong[:4])}{' ...' if len(wrong) > 4 else ''}" if wrong else "",
            )
            if part
        )
        raise ConfigError(
            f"model.pretrained: {path} does not hold torchvision's VGG-16 (configuration D, no batch norm) "
            f"weights: {details}"
        )
    backbone.features.load_state_dict({k: found[k] for k in expected})
