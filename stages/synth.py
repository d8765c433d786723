"""Write the built-in synthetic mammography dataset into synth.out_dir: DICOM images (images/), lesion ROI
masks (masks/) and manifest.csv in the generic manifest format. Same params, same bytes."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, fail, log, start


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("synth", params)

    from fpnpipe.data.synth_dataset import write_dataset

    out_dir = Path(p.synth.out_dir)
    try:
        counts = write_dataset(out_dir, p.synth, p.seed.data)
    except OSError as exc:
        fail(f"synth: cannot write {out_dir}: {exc}")
    summary = ", ".join(f"{label} {n}" for label, n in counts.items())
    log.info("synth: wrote %d images to %s (%s)", sum(counts.values()), out_dir, summary)
