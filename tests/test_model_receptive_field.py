"""Receptive-field boxes of latent cells, against values derived by hand from VGG-16's layer list.

VGG-16 by hand (3x3 convs pad 1, 2x2 pools stride 2): a c2 cell i reads input rows 4i-6 .. 4i+9 (16 px);
a c5 cell i reads 16i-90 .. 16i+105 (196 px). z2's 3x3 adds one c2 cell (4 px) per side: 4i-10 .. 4i+13.
"""

from __future__ import annotations

import pytest

from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.model.build import build_network


@pytest.fixture(scope="module")
def net():
    return build_network(ModelParams(), PrototypeParams())


def test_level_2_lateral_box(net):
    # row i = 10: 30 .. 53; column j = 3: 2 .. 25 (half-open boxes: x1 = 26, y1 = 54)
    assert net.receptive_field(2, 10, 3, 224) == (2, 30, 26, 54)
    assert net.receptive_field(2, 0, 0, 224) == (0, 0, 14, 14)  # clipped at the border


def test_level_5_box(net):
    assert net.receptive_field(5, 7, 7, 224) == (22, 22, 218, 218)


def test_level_3_box_and_width_independence(net):
    # c3 cell i: 8i-18 .. 8i+25 (44 px); z3's 3x3 adds 8 px per side: 8i-26 .. 8i+33
    assert net.receptive_field(3, 5, 6, 224) == (22, 14, 82, 74)
    full = build_network(ModelParams(width=1.0, fpn_channels=8), PrototypeParams())
    assert full.receptive_field(3, 5, 6, 224) == (22, 14, 82, 74)


def test_top_down_path_widens_the_box(net):
    # z4 cell i reads z5 / c4 / c5 cells i-1 .. i+1 (same grid at stride 16): 16(i-1)-90 .. 16(i+1)+105
    assert net.receptive_field(4, 14, 14, 448, include_top_down=True) == (118, 118, 346, 346)
    lateral = net.receptive_field(4, 14, 14, 448)  # c4 cell i: 16i-42 .. 16i+57; plus 16 px per side
    assert lateral == (166, 166, 298, 298)  # 16i-58 .. 16i+73 for i = 14


def test_iaiabl_box_is_the_conv5_field():
    iaiabl = build_network(ModelParams(arch="iaiabl"), PrototypeParams())
    assert iaiabl.receptive_field(5, 7, 7, 224) == (22, 22, 218, 218)


def test_bad_cell_or_level(net):
    with pytest.raises(ValueError, match="outside"):
        net.receptive_field(5, 14, 0, 224)
    with pytest.raises(ValueError, match="level"):
        net.receptive_field(1, 0, 0, 224)
