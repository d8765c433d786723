"""The mammography phantom's image model: breast anatomy, masses, detector. Pure functions on numpy arrays;
`fpnpipe.data.synthetic` assembles them into a dataset and `stages/synth.py` writes the files."""

from fpnpipe.data.phantom.breast import BreastGeometry, breast_outline, fibroglandular, thickness_profile
from fpnpipe.data.phantom.detector import PixelEncoding, detector
from fpnpipe.data.phantom.lesion import MARGINS, Mass, MassImage, draw_mass, render_mass
from fpnpipe.data.phantom.texture import power_law_noise, skewed_draw

__all__ = [
    "MARGINS",
    "BreastGeometry",
    "Mass",
    "MassImage",
    "PixelEncoding",
    "breast_outline",
    "detector",
    "draw_mass",
    "fibroglandular",
    "power_law_noise",
    "render_mass",
    "skewed_draw",
    "thickness_profile",
]
