"""Explain one new image with the trained model: crop the lesion given by --box or --roi exactly as
preprocessing does, predict, print the class probabilities, and write the case figure (paper Figure 3
layout) to --out."""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import FINAL_MODEL, FINAL_RECORD

OUT_DIR = Path("reports/explain-image")
"""Where the figure goes by default: <OUT_DIR>/<image file stem>.png, or <OUT_DIR>/I-<12 hex>.png when
data.pseudonymize is on for data.source (the pseudonym is recorded in data/private/pseudonyms.csv)."""


def main(
    image: Path = typer.Argument(..., help="The image to explain: a DICOM file (or PNG / TIFF / PGM).", dir_okay=False),
    box: str | None = typer.Option(None, "--box", help="Lesion box x0,y0,x1,y1 in image pixels (x = column)."),
    roi: Path | None = typer.Option(None, "--roi", help="Lesion ROI mask file, same size as the image.",
                                    dir_okay=False),
    model_path: Path = typer.Option(FINAL_MODEL, "--model", help="Trained model checkpoint.", dir_okay=False),
    record_path: Path = typer.Option(FINAL_RECORD, "--record", help="The model's projection record.", dir_okay=False),
    out: Path | None = typer.Option(None, "--out", help="Figure path (PNG); default reports/explain-image/<stem>.png.",
                                    dir_okay=False),
    params: Path = PARAMS_OPTION,
) -> None:
    # Arguments first, with the standard library only: a malformed --box or a missing file is reported at
    # once, not after torch and the model code have loaded.
    from fpnpipe.explain.arguments import NewImageError, check_inputs, parse_box

    if (box is None) == (roi is None):
        fail("explain-image: give exactly one of --box x0,y0,x1,y1 or --roi MASK", code=2)
    try:
        lesion_box = parse_box(box) if box is not None else None
    except NewImageError as exc:
        fail(f"explain-image: {exc}", code=2)
    try:
        check_inputs(image, roi, model_path)
    except NewImageError as exc:
        fail(f"explain-image: {exc}")
    p = start("explain-image", params)

    from fpnpipe.explain.cases import explain_images
    from fpnpipe.explain.consistency import ExplainInputError, load_model_and_record
    from fpnpipe.explain.drawing import activation_scale
    from fpnpipe.explain.figures import case_figure, save_figure
    from fpnpipe.explain.single import crop_new_lesion
    from fpnpipe.explain.text import probability_table, safe_name
    from fpnpipe.model.build import prototype_network

    try:
        model, record = load_model_and_record(model_path, record_path, p.crop.size)
    except ExplainInputError as exc:
        fail(f"explain-image: {exc}")
    if record is None and not record_path.exists():
        log.warning("explain-image: %s has no prototypes and %s is absent: the crop size cannot be checked "
                    "against the model's training crops", model_path, record_path)

    try:
        lesion, mm_per_pixel = crop_new_lesion(image, p.crop, p.data.voi_window, p.data.intensity_percentiles,
                                               box=lesion_box, roi=roi)
    except NewImageError as exc:
        fail(f"explain-image: {exc}")
    if p.data.pseudonymized:  # the figure title and file name would otherwise quote the file name
        from fpnpipe.data.pseudonym import file_pseudonym

        case_id = stem = file_pseudonym(image)
    else:
        case_id, stem = image.name, safe_name(image.stem)
    case = explain_images(model, lesion.image[None], [case_id], [None], p.explain.top_prototypes)[0]
    typer.echo(probability_table(case.probabilities))
    net = prototype_network(model)
    if not case.rows or record is None or net is None:
        typer.echo(f"The model ({model.arch}) has no prototypes: there is no case-based explanation to draw.")
        return
    target = out if out is not None else OUT_DIR / f"{stem}.png"
    scale = activation_scale(net.prototype_layer.similarity, record.self_activation)
    save_figure(case_figure(case, record, scale, p.explain.dpi, roi=lesion.roi, mm_per_pixel=mm_per_pixel), target)
    typer.echo(f"figure: {target}")
    log.info("explain-image: wrote %s", target)
