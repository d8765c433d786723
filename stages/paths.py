"""Artifact paths of the pipeline (DESIGN.md, "Stages"), relative to the repo root. dvc.yaml names the
same paths."""

from pathlib import Path

CROPS = Path("data/processed/crops.h5")
IMAGES = Path("data/processed/images.json")
THUMBNAILS = Path("data/processed/thumbnails.h5")
NEGATIVES = Path("data/processed/negatives.h5")
PREPROCESS_REPORT = Path("reports/preprocess.json")
NEGATIVES_REPORT = Path("reports/negatives.json")

WARMUP_MODEL = Path("models/warmup.pt")
PROJECTED_MODEL = Path("models/projected.pt")
PROJECTED_RECORD = Path("models/projected_prototypes.h5")
FINAL_MODEL = Path("models/final.pt")
FINAL_RECORD = Path("models/final_prototypes.h5")
WARMUP_LIVE = Path("dvclive/warmup")
FINETUNE_LIVE = Path("dvclive/finetune")

METRICS = Path("reports/metrics.json")
PREDICTIONS = Path("reports/predictions.csv")
PLOTS = Path("reports/plots")
ACTIVATION_MAPS = Path("reports/activation_maps.npz")
EXPLANATIONS = Path("reports/explanations")

# The comparison with the baselines (stages/compare/dvc.yaml); per baseline <name> of compare.models:
COMPARE_MODELS = Path("models/compare")  # <name>/final.pt, <name>/final_prototypes.h5
COMPARE_LIVE = Path("dvclive/compare")  # <name>/: training curves
COMPARE_REPORTS = Path("reports/compare")
COMPARE_MODEL_REPORTS = COMPARE_REPORTS / "models"  # <name>/metrics.json, <name>/predictions.csv
COMPARE_SALIENCY = COMPARE_REPORTS / "saliency"  # maps.h5, metrics.json
TABLE1_JSON = COMPARE_REPORTS / "table1.json"
TABLE1_MD = COMPARE_REPORTS / "table1.md"
FIGURE4 = COMPARE_REPORTS / "figure4"
COMPARE_INDEX = COMPARE_REPORTS / "index.html"
COMPARE_COMMAND = "dvc repro stages/compare/dvc.yaml"

RESUME_DIR = Path(".fpnpipe/resume")
"""Per-epoch training state of warmup and finetune (<stage>.pt): git-ignored, outside every DVC output."""

OUTPUTS: dict[str, tuple[Path, ...]] = {
    "preprocess": (CROPS, IMAGES, THUMBNAILS, PREPROCESS_REPORT),
    "negatives": (NEGATIVES, NEGATIVES_REPORT),
    "warmup": (WARMUP_MODEL, WARMUP_LIVE),
    "project": (PROJECTED_MODEL, PROJECTED_RECORD),
    "finetune": (FINAL_MODEL, FINAL_RECORD, FINETUNE_LIVE),
    "evaluate": (METRICS, PREDICTIONS, PLOTS, ACTIVATION_MAPS),
    "explain": (EXPLANATIONS,),
}
"""Each stage's outputs as dvc.yaml declares them (a DVCLive folder as a whole; synth's is synth.out_dir)."""
