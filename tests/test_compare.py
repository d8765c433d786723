"""The comparison with the baselines: every registered model builds, trains a step and evaluates; protopnet is
iaiabl with max pooling and no fine-annotation term; GradCAM / GradCAM++ from pytorch-grad-cam checked against
a hand computation; the compare params; the paired bootstrap; and the compare stages in process on a tiny
world, where a baseline trained by compare-train equals the main stages' model of the same architecture and
table1.json's AUROCs equal scikit-learn's on the saved predictions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ruamel.yaml import YAML
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from fpnpipe.classes import CLASSES, MARGIN_CLASSES, NEGATIVE_INDEX
from fpnpipe.config import ConfigError, ModelParams, PrototypeParams, parse_params
from fpnpipe.data.crops import margin_band
from fpnpipe.data.dataset import CropDataset, TrainEpoch
from fpnpipe.data.saliency_record import SaliencyRecord, read_saliency_record, write_saliency_record
from fpnpipe.data.schema import CropSet, write_crops
from fpnpipe.evaluate.comparison import ComparedModel, comparison_table
from fpnpipe.evaluate.predictions import Predictions, read_predictions
from fpnpipe.evaluate.run import evaluate_model
from fpnpipe.evaluate.saliency import last_conv_layer, saliency_maps, saliency_summary
from fpnpipe.explain.figure4 import figure4_rows, top_own_class_maps
from fpnpipe.losses import PrototypeLoss
from fpnpipe.metrics.bootstrap import bootstrap_ci, paired_mean_auroc_difference
from fpnpipe.metrics.classification import margin_tasks
from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.blackbox import BlackBoxVGG
from fpnpipe.model.build import build_network, prototype_network
from fpnpipe.model.registry import ARCHITECTURES
from fpnpipe.runtime import Runtime
from fpnpipe.train.loop import train_epoch
from fpnpipe.train.optim import build_optimizer
from fpnpipe.train.progress import StageProgress
from tests.conftest import ROOT, write_params

S = 32
CPU = Runtime(torch.device("cpu"), bf16=False, channels_last=False, pin_memory=False)


def tiny_world(per_class: int = 3, seed: int = 0) -> tuple[CropSet, CropSet]:
    """(lesion crops, negative patches) in train / val / test; a lesion is a bright disc whose radius grows
    with its class, its fine annotation the disc's margin band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S]
    parts: dict[bool, list[CropSet]] = {True: [], False: []}
    for split in ("train", "val", "test"):
        for label in range(len(CLASSES)):
            for k in range(per_class):
                img = 0.4 + 0.08 * rng.standard_normal((S, S))
                fine = np.zeros((S, S), np.uint8)
                if label != NEGATIVE_INDEX:
                    disc = (xx - 16) ** 2 + (yy - 16) ** 2 <= (4 + 3 * label) ** 2
                    img[disc] += 0.35
                    fine = margin_band(disc, 2).astype(np.uint8)
                parts[label != NEGATIVE_INDEX].append(CropSet(
                    images=np.clip(img, 0, 1).astype(np.float32)[None], fine=fine[None],
                    has_fine=np.array([label != NEGATIVE_INDEX]), roi=fine[None].copy(),
                    label=np.array([label], np.int64), split=np.array([split], dtype=object),
                    patient_id=np.array([f"p{split}{label}{k}"], dtype=object),
                    image_id=np.array([f"{split}-{CLASSES[label]}-{k}"], dtype=object),
                    source_box=np.array([[0, 0, S, S]], np.float32)))
    return CropSet.concat(parts[True], S), CropSet.concat(parts[False], S)


def _tiny_net(arch: str):
    protos = PrototypeParams(per_class={c: (1, 1, 0, 1) for c in CLASSES}, top_k=(2, 1, 1, 2), border_fraction=0.0)
    torch.manual_seed(0)
    return build_network(ModelParams(arch=arch, width=0.0625, fpn_channels=8, addon_channels=8), protos)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_registered_model_builds_trains_a_step_and_evaluates(arch: str) -> None:
    lesions, negatives = tiny_world(per_class=1)
    crops = CropSet.concat([lesions, negatives], S)
    model = _tiny_net(arch)
    params = parse_params({"crop": {"size": S}})
    loss_fn = PrototypeLoss.for_model(params.loss, model)
    groups = model.param_groups()
    optimizer = build_optimizer(groups, dict.fromkeys(groups, 1e-3), params.warmup.optimizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with StageProgress("one step", 1.0) as progress:
        stats = train_epoch(model, TrainEpoch(CropDataset(crops), 16, 0, 0, False, CPU.device), loss_fn, optimizer,
                            CPU, progress, "one step")
    assert np.isfinite(stats["total"])
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    result = evaluate_model(model, crops, CPU, params.eval.model_copy(update={"bootstrap_samples": 10}), 0)
    assert set(result.metrics["auroc"]) == {*MARGIN_CLASSES, "average"}
    assert ("activation_precision" in result.metrics) == (prototype_network(model) is not None)


def test_protopnet_is_iaiabl_with_max_pooling_and_no_fine_annotation_term() -> None:
    iaiabl, protopnet = _tiny_net("iaiabl"), _tiny_net("protopnet")
    assert iaiabl.uses_fine_annotation and not protopnet.uses_fine_annotation
    # Same seed, same weights: the two differ in pooling only.
    assert all(torch.equal(a, b) for a, b in zip(iaiabl.state_dict().values(), protopnet.state_dict().values(),
                                                 strict=True))
    x = torch.rand(2, 1, S, S)
    out = protopnet(x)
    assert torch.allclose(out.similarities, out.activations[0].flatten(2).amax(dim=2))
    assert not torch.allclose(iaiabl(x).similarities, out.similarities)  # iaiabl's k = 2 here
    lesions, _ = tiny_world(per_class=1)
    images = torch.from_numpy(lesions.images)[:, None]
    labels, fine = torch.from_numpy(lesions.label), torch.from_numpy(lesions.fine)
    params = parse_params({"crop": {"size": S}}).loss
    has = torch.ones(len(labels), dtype=torch.bool)
    assert float(PrototypeLoss.for_model(params, protopnet)(protopnet(images), labels, fine, has).fine.detach()) == 0
    assert float(PrototypeLoss.for_model(params, iaiabl)(iaiabl(images), labels, fine, has).fine.detach()) > 0


def test_protopnet_ignores_top_k_in_params_validation() -> None:
    big_k = {"model": {"arch": "protopnet"}, "prototypes": {"top_k": [4, 2, 1, 40]}}  # 36 cells at 96 px
    assert parse_params(big_k).model.arch == "protopnet"  # k = 1 always fits
    with pytest.raises(ConfigError, match=r"prototypes.top_k\[3\]"):
        parse_params({**big_k, "model": {"arch": "iaiabl"}})


def _hand_cams(model: BlackBoxVGG, x: torch.Tensor, classes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """GradCAM and GradCAM++ by their formulas: A = the last conv layer's (rectified) maps, g = d logit_c / dA.
    GradCAM: w_k = spatial mean of g_k (Selvaraju et al. eq. 1). GradCAM++: w_k = sum_ij relu(g) alpha with
    alpha = g^2 / (2 g^2 + sum_ij(A_k) g^3) (Chattopadhay et al. eq. 19). Map: ReLU(sum_k w_k A_k), upsampled
    bilinearly to the crop, scaled to [0, 1] by its minimum and maximum."""
    saved: dict[str, torch.Tensor] = {}
    hook = last_conv_layer(model).register_forward_hook(lambda m, i, o: saved.__setitem__("a", o))
    logits = model(x).logits
    hook.remove()
    a = saved["a"]
    g = torch.autograd.grad(logits[torch.arange(len(classes)), classes].sum(), a)[0]
    a, g = a.detach().double(), g.double()
    alpha = g**2 / (2 * g**2 + a.sum(dim=(2, 3), keepdim=True) * g**3 + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    out = []
    for w in (g.mean(dim=(2, 3), keepdim=True), (F.relu(g) * alpha).sum(dim=(2, 3), keepdim=True)):
        cam = F.relu((w * a).sum(dim=1, keepdim=True))
        up = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        lo = up.amin(dim=(1, 2), keepdim=True)
        up = up - lo
        out.append((up / (up.amax(dim=(1, 2), keepdim=True) + 1e-7)).numpy())
    return out[0], out[1]


def test_gradcam_and_gradcam_pp_match_their_formulas_and_have_the_crop_shape() -> None:
    torch.manual_seed(0)
    model = BlackBoxVGG(VGGBackbone(0.125), len(CLASSES)).eval()
    x = torch.full((2, 1, 64, 64), 0.2)
    x[0, 0, 10:30, 34:54] = 0.9  # a bright square in the top right corner
    x[1, 0, 40:60, 4:24] = 0.9
    classes = np.array([1, 2])
    expected = _hand_cams(model, x, torch.from_numpy(classes))
    for method, hand in zip(("gradcam", "gradcam_pp"), expected, strict=True):
        maps = saliency_maps(model, x, method, classes)
        assert maps.shape == (2, 64, 64) and maps.dtype == np.float32
        assert maps.reshape(2, -1).std(axis=1).min() > 0.05  # not constant
        np.testing.assert_allclose(maps, hand, atol=1e-4)


def test_saliency_summary_on_maps_whose_answer_is_known(tmp_path: Path) -> None:
    fine = np.zeros((2, 20, 20), np.uint8)
    fine[:, 5:10, 5:10] = 1  # 25 of 400 pixels: chance 0.0625
    inside = fine.astype(np.float32) + np.linspace(0, 0.01, 400, dtype=np.float32).reshape(20, 20)
    outside = 1.0 - inside
    record = SaliencyRecord(image_id=np.array(["a", "b"], dtype=object), patient_id=np.array(["p", "q"], dtype=object),
                            label=np.array([0, 2]), predicted=np.array([0, 1]), fine=fine,
                            maps={"gradcam": inside, "gradcam_pp": outside})
    summary = saliency_summary(record)
    assert summary["gradcam"]["activation_precision"]["average"] == 1.0
    assert summary["gradcam_pp"]["activation_precision"]["average"] == 0.0
    assert summary["gradcam"]["activation_precision"]["chance"]["average"] == pytest.approx(25 / 400)
    assert summary["gradcam"]["activation_precision"]["n_maps"] == 2
    write_saliency_record(tmp_path / "a.h5", record)
    write_saliency_record(tmp_path / "b.h5", read_saliency_record(tmp_path / "a.h5"))
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def _params_data() -> dict:
    return YAML(typ="safe").load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize(("models", "key"), [
    ({"protopnet": {"prototypes": {"top_kk": [1, 1, 1, 1]}}}, "compare.models.protopnet.prototypes.top_kk"),
    ({"iaiabl": {"prototypes": {"top_k": [4, 2, 1, 40]}}}, r"compare.models.iaiabl.prototypes.top_k\[3\]"),
    ({"bar": {"seed": 1}}, "compare.models.bar.seed"),
    ({"bar": {}}, "compare.models.bar.model.arch"),
    ({"bar": {"model": {"arch": "iaiabl"}, "warmup": {"lr": {"neck": -1}}}}, "compare.models.bar.warmup.lr.neck"),
    ({"fpn_iaiabl": {}}, "compare.models"),
])
def test_a_bad_baseline_override_names_its_key(models: dict, key: str) -> None:
    data = _params_data()
    data["compare"]["models"].update(models)
    with pytest.raises(ConfigError, match=key):
        parse_params(data, "params.yaml")


def test_baseline_params_merge_the_overrides_into_the_shared_sections() -> None:
    data = _params_data()
    data["compare"]["models"]["k3"] = {"model": {"arch": "iaiabl"}, "prototypes": {"top_k": [4, 2, 1, 3]},
                                       "finetune": {"lr": {"backbone": 0.5}}}
    params = parse_params(data)
    k3 = params.baseline("k3")
    assert (k3.model.arch, k3.prototypes.top_k, k3.finetune.lr.backbone) == ("iaiabl", (4, 2, 1, 3), 0.5)
    assert k3.finetune.lr.neck == params.finetune.lr.neck and k3.seed == params.seed  # the rest is shared
    assert params.baseline("vgg16").model.arch == "vgg16" and params.model.arch == "fpn_iaiabl"
    data["compare"]["saliency_model"] = "nope"
    with pytest.raises(ConfigError, match="saliency_model"):
        parse_params(data)


def test_paired_difference_pairs_the_resamples() -> None:
    rng = np.random.default_rng(1)
    n = 60
    labels = rng.integers(0, 4, n)
    patients = np.array([f"p{i // 2}" for i in range(n)])
    a = rng.dirichlet(np.ones(4), n)
    b = 0.5 * a + 0.5 * rng.dirichlet(np.ones(4), n)
    tasks_a, tasks_b = margin_tasks(labels, a), margin_tasks(labels, b)
    same = paired_mean_auroc_difference(list(tasks_a.values()), list(tasks_a.values()), patients, 200, 0.95, 3)
    assert same.point == 0 and same.interval == (0.0, 0.0)  # a model against itself: no spread at all
    diff = paired_mean_auroc_difference(list(tasks_a.values()), list(tasks_b.values()), patients, 200, 0.95, 3)
    ci_a = bootstrap_ci(tasks_a, patients, 200, 0.95, 3, average_key="average").intervals["average"]
    ci_b = bootstrap_ci(tasks_b, patients, 200, 0.95, 3, average_key="average").intervals["average"]
    width_unpaired = (ci_a[1] - ci_a[0]) + (ci_b[1] - ci_b[0])
    assert diff.interval[0] <= diff.point <= diff.interval[1]
    assert diff.interval[1] - diff.interval[0] < width_unpaired  # correlated models: pairing narrows it


def test_comparison_table_realigns_rows_and_refuses_other_test_crops() -> None:
    rng = np.random.default_rng(2)
    n = 40
    labels = rng.integers(0, 4, n)
    ids = np.array([f"i{k}" for k in range(n)], dtype=object)
    pats = np.array([f"p{k // 2}" for k in range(n)], dtype=object)
    split = np.array(["test"] * n, dtype=object)
    main = Predictions(ids, pats, split, labels, rng.dirichlet(np.ones(4), n))
    perm = rng.permutation(n)
    other = Predictions(ids[perm], pats[perm], split, labels[perm], main.probs[perm])
    table = comparison_table([ComparedModel("main", "M", main), ComparedModel("copy", "C", other)], 50, 0.95, 0)
    assert table["copy"]["auroc"] == table["main"]["auroc"] and table["copy"]["auroc_diff"]["average"] == 0
    short = Predictions(ids[1:], pats[1:], split[1:], labels[1:], main.probs[1:])
    with pytest.raises(ValueError, match="short.csv: its test crops differ"):
        comparison_table([ComparedModel("main", "M", main), ComparedModel("s", "S", short, source="short.csv")],
                         50, 0.95, 0)


def test_figure_cases_cover_the_margin_classes_and_top_maps_are_own_class() -> None:
    lesions, _ = tiny_world(per_class=2)
    test = lesions.in_split("test")
    rows = figure4_rows(test, 4)
    assert [int(test.label[r]) for r in rows] == [0, 1, 2, 0]
    net = _tiny_net("fpn_iaiabl")
    images = torch.from_numpy(test.images[rows])[:, None]
    maps, best = top_own_class_maps(net, images, test.label[rows], CPU)
    assert maps.shape == (4, S, S)
    out = net(images)
    for k, j in enumerate(best.tolist()):
        own = torch.nonzero(net.prototype_class == int(test.label[rows[k]])).flatten()
        assert j in own.tolist() and out.similarities[k, j] == out.similarities[k, own].max()


# --- the compare stages in process, on a tiny world --------------------------------------------------------

TINY_TRAINING = {
    "crop": {"size": S}, "train": {"device": "cpu"},
    "model": {"width": 0.0625, "fpn_channels": 8, "addon_channels": 8},
    "prototypes": {"per_class": {c: [1, 1, 0, 1] for c in CLASSES}, "top_k": [2, 1, 1, 1]},
    "warmup": {"epochs": 1, "batch_size": 16},
    "finetune": {"epochs": 1, "batch_size": 16, "project_every": 1, "last_layer_epochs": 1},
    "eval": {"bootstrap_samples": 50},
    "compare": {"figure_cases": 2, "dpi": 50, "models": {
        "vgg16": {}, "protopnet": {}, "iaiabl": {"prototypes": {"top_k": [2, 1, 1, 2]}},
        "fpn_copy": {"model": {"arch": "fpn_iaiabl"}}}},
}


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from stages.cli import build_app

    root = tmp_path_factory.mktemp("compare_world")
    lesions, negatives = tiny_world()
    (root / "data/processed").mkdir(parents=True)
    write_crops(root / "data/processed/crops.h5", lesions)
    write_crops(root / "data/processed/negatives.h5", negatives)
    params = copy.deepcopy(TINY_TRAINING)
    write_params(root / "params.yaml", params)
    old = Path.cwd()
    os_chdir(root)
    try:
        runner = CliRunner()
        commands = [["warmup"], ["project"], ["finetune"], ["evaluate"],
                    *[["compare-train", name] for name in params["compare"]["models"]],
                    ["compare-saliency"], ["compare-report"]]
        for command in commands:
            result = runner.invoke(build_app(), command, catch_exceptions=False)
            assert result.exit_code == 0, (command, result.output)
    finally:
        os_chdir(old)
    return root


def os_chdir(path: Path) -> None:
    import os

    os.chdir(path)


def test_a_baseline_trained_by_compare_train_equals_the_main_stages_model(compared: Path) -> None:
    # fpn_copy is the main architecture trained by compare-train: the same library calls in one process.
    main = json.loads((compared / "reports/metrics.json").read_text())
    copy_ = json.loads((compared / "reports/compare/models/fpn_copy/metrics.json").read_text())
    assert copy_ == main
    assert ((compared / "reports/compare/models/fpn_copy/predictions.csv").read_text()
            == (compared / "reports/predictions.csv").read_text())


def test_table1_aurocs_equal_sklearn_on_the_saved_predictions(compared: Path) -> None:
    table = json.loads((compared / "reports/compare/table1.json").read_text())
    files = {"fpn_iaiabl": compared / "reports/predictions.csv",
             **{n: compared / f"reports/compare/models/{n}/predictions.csv" for n in ("vgg16", "protopnet", "iaiabl")}}
    for name, path in files.items():
        p = read_predictions(path)
        lesion = p.labels != NEGATIVE_INDEX
        margins = p.probs[lesion][:, :3] / p.probs[lesion][:, :3].sum(axis=1, keepdims=True)
        aurocs = [roc_auc_score(p.labels[lesion] == k, margins[:, k]) for k in range(3)]
        for k, c in enumerate(MARGIN_CLASSES):
            assert table[name]["auroc"][c] == pytest.approx(aurocs[k], abs=1e-12)
        assert table[name]["auroc"]["average"] == pytest.approx(np.mean(aurocs), abs=1e-12)
        assert table[name]["margin_balanced_accuracy"] == pytest.approx(
            balanced_accuracy_score(p.labels[lesion], margins.argmax(axis=1)))
        if name != "fpn_iaiabl":
            assert table[name]["auroc_diff"]["average"] == pytest.approx(
                np.mean(aurocs) - table["fpn_iaiabl"]["auroc"]["average"], abs=1e-12)
            lo, hi = table[name]["auroc_diff_ci95"]["average"].values()
            assert lo <= hi
    main = json.loads((compared / "reports/metrics.json").read_text())
    assert table["fpn_iaiabl"]["auroc_ci95"] == main["auroc_ci95"]  # the same resamples as evaluate's
    assert table["fpn_iaiabl"]["activation_precision"]["level_2"] == main["activation_precision"]["level_2"]


def test_gradcam_precision_in_the_table_recomputes_from_maps_h5(compared: Path) -> None:
    from fpnpipe.metrics.activation import activation_precision

    table = json.loads((compared / "reports/compare/table1.json").read_text())
    record = read_saliency_record(compared / "reports/compare/saliency/maps.h5")
    assert record.maps["gradcam"].shape == (9, S, S)  # every annotated test lesion: 3 per margin class
    mine = np.mean([activation_precision(m, f) for m, f in zip(record.maps["gradcam"], record.fine, strict=True)])
    assert table["vgg16"]["gradcam"]["activation_precision"]["average"] == pytest.approx(mine)
    assert table["vgg16"]["gradcam"]["activation_precision"]["chance"]["average"] == pytest.approx(
        record.fine.mean())


def test_report_writes_markdown_figures_and_an_offline_page(compared: Path) -> None:
    md = (compared / "reports/compare/table1.md").read_text()
    for label in ("FPN-IAIA-BL", "VGG-16", "ProtoPNet", "IAIA-BL", "GradCAM++ (VGG-16)", "FPN-IAIA-BL (fpn_copy)"):
        assert label in md
    figures = sorted((compared / "reports/compare/figure4").glob("*.png"))
    assert len(figures) == 2
    page = (compared / "reports/compare/index.html").read_text()
    assert all(f'src="figure4/{f.name}"' in page for f in figures)
    assert "http" not in page


def test_the_explanations_page_links_the_comparison_page() -> None:
    from fpnpipe.explain.html import render_index, report_document
    from fpnpipe.explain.report import COMPARISON_LINKS

    page = render_index(report_document("fpn_iaiabl", 8, 10, "chosen", None, [], [], links=COMPARISON_LINKS))
    assert 'href="../compare/index.html"' in page and "dvc repro stages/compare/dvc.yaml" in page
