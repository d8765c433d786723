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
