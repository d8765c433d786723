"""Choosing the cases, computing contributions, and the wording of captions and tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpnpipe.classes import CLASSES, NEGATIVE_INDEX
from fpnpipe.explain.cases import case_record, choose_cases, explain_images
from fpnpipe.explain.text import caption, probability_table, safe_name
from fpnpipe.metrics.activation import high_activation_box, upsample_activation
from tests.test_explain_stage import SIZE, tiny_crops, tiny_model


def _onehot_probs(predicted: list[int], confidence: list[float]) -> np.ndarray:
    """(N, 4) probabilities whose argmax is `predicted` with the given probability."""
    n = len(predicted)
    probs = np.full((n, len(CLASSES)), 0.0)
    for i, (k, p) in enumerate(zip(predicted, confidence, strict=True)):
        probs[i] = (1 - p) / (len(CLASSES) - 1)
        probs[i, k] = p
    return probs


@pytest.fixture
def every_group():
    """Two correct and two wrong cases of each class, with distinct confidences."""
    labels, predicted, confidence = [], [], []
    for c in range(len(CLASSES)):
        for k, p in enumerate((0.6, 0.9, 0.7, 0.8)):
            labels.append(c)
            predicted.append(c if k < 2 else (c + 1) % len(CLASSES))
            confidence.append(p)
    return np.array(labels), _onehot_probs(predicted, confidence)


def test_small_n_covers_every_class_and_both_outcomes(every_group) -> None:
    labels, probs = every_group
    chosen = choose_cases(labels, probs, 4)
    correct = probs.argmax(1) == labels
    assert sorted(labels[chosen].tolist()) == [0, 1, 2, 3]
    assert set(correct[chosen].tolist()) == {True, False}


def test_eight_cases_take_each_class_correct_and_wrong_most_confident_first(every_group) -> None:
    labels, probs = every_group
    chosen = choose_cases(labels, probs, 8)
    correct = probs.argmax(1) == labels
    groups = [(int(labels[i]), bool(correct[i])) for i in chosen]
    assert groups == [(c, ok) for c in range(len(CLASSES)) for ok in (True, False)]
    # Within every group the most confident case is the one taken: 0.9 among correct, 0.8 among wrong.
    assert np.allclose(probs[chosen].max(1), [0.9, 0.8] * len(CLASSES))


def test_missing_groups_are_filled_from_the_others_and_n_is_respected(every_group) -> None:
    labels, probs = every_group
    only_correct = np.array([c for c in range(len(CLASSES)) for _ in range(3)])
    chosen = choose_cases(only_correct, _onehot_probs(only_correct.tolist(), [0.5, 0.7, 0.6] * 4), 6)
    assert len(chosen) == 6 and sorted(set(only_correct[chosen].tolist())) == [0, 1, 2, 3]
    assert len(choose_cases(labels, probs, 100)) == len(labels)
    assert len(choose_cases(labels, probs, 0)) == 0
    np.testing.assert_array_equal(choose_cases(labels, probs, 5), choose_cases(labels, probs, 5))


def test_contributions_rows_and_activation_boxes() -> None:
    model, _ = tiny_model()
    lesions, negatives = tiny_crops()
    images = np.concatenate([lesions.images[:2], negatives.images[:1]])
    cases = explain_images(model, images, ["a", "b", "c"], [0, None, NEGATIVE_INDEX], top=3)
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(images)[:, None])
    for b, case in enumerate(cases):
        k = case.predicted
        assert k == int(out.logits[b].argmax())
        # The predicted class's logit is the sum over all prototypes of similarity x class connection.
        assert case.contributions.shape == (model.num_prototypes,)
        assert case.contributions.sum() == pytest.approx(float(out.logits[b, k]), abs=1e-5)
        assert [r.contribution for r in case.rows] == sorted(case.contributions, reverse=True)[:3]
        for row in case.rows:
            j, level = row.prototype, row.level
            assert level == int(model.prototype_level[j]) and row.prototype_class == int(model.prototype_class[j])
            assert row.similarity == pytest.approx(float(out.similarities[b, j]), abs=1e-6)
            assert row.connection == pytest.approx(float(model.last_layer.weight[k, j].detach()))
            raw = out.activations[model.levels.index(level)][b, j - model.level_slice(level).start].numpy()
            assert row.activation.shape == (SIZE, SIZE)
            assert row.box == high_activation_box(upsample_activation(raw, SIZE))
    assert [c.correct for c in cases] == [cases[0].predicted == 0, None, cases[2].predicted == NEGATIVE_INDEX]
    record = case_record(cases[1], None)
    assert record["true"] is None and record["figure"] is None and len(record["rows"]) == 3


def test_black_box_cases_have_probabilities_only() -> None:
    model, _ = tiny_model("vgg16")
    images = tiny_crops()[0].images[:2]
    cases = explain_images(model, images, ["a", "b"], [0, 1], top=3)
    assert all(c.rows == () and c.contributions.size == 0 for c in cases)
    assert all(c.probabilities.sum() == pytest.approx(1.0) for c in cases)


def test_captions_tables_and_file_names() -> None:
    assert caption(0, 0) == "This circumscribed lesion is correctly classified as circumscribed."
    assert caption(2, NEGATIVE_INDEX) == "This spiculated lesion is wrongly classified as negative (no lesion)."
    assert caption(NEGATIVE_INDEX, 1) == "This negative (no lesion) patch is wrongly classified as indistinct."
    assert caption(None, 1) == "This lesion is classified as indistinct."
    table = probability_table([0.1, 0.2, 0.6, 0.1]).splitlines()
    assert len(table) == 2 + len(CLASSES)
    assert table[2 + 2].startswith("spiculated") and table[2 + 2].endswith("<- predicted")
    assert sum("<- predicted" in line for line in table) == 1
    assert safe_name("images/P 001#2") == "images_P_001_2"
    assert safe_name("Mass-Test_P_00016_LEFT_CC.dcm") == "Mass-Test_P_00016_LEFT_CC_dcm"
    assert safe_name("../..") == "case" and safe_name("") == "case"
