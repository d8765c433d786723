"""reports/explanations/index.html: a static page that lists the explained cases with their figures and the
prototype gallery, filterable by true class, predicted class and correct / wrong.

Everything is in the one file (inline CSS and a few lines of inline JavaScript) and every link is relative,
so the page opens from the file system and fetches nothing from the network.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from string import Template
from typing import Any

from fpnpipe.classes import CLASSES
from fpnpipe.explain.text import caption

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 1.5em auto;
       max-width: 1600px; padding: 0 1em; color: #111; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #444; }
.filters { position: sticky; top: 0; background: #f4f6f8; border: 1px solid #d8dde3; padding: 0.6em 0.9em;
           display: flex; flex-wrap: wrap; gap: 1.2em; align-items: center; z-index: 1; }
.filters label { font-weight: 600; }
.filters select { font-size: 1em; margin-left: 0.4em; }
article.case { border: 1px solid #d8dde3; border-left: 6px solid #2e7d32; margin: 1.2em 0; padding: 0.6em 1em 1em; }
article.case[data-outcome="wrong"] { border-left-color: #c62828; }
article.case h3 { margin: 0.2em 0 0.4em; font-size: 1.15em; }
.badge { display: inline-block; font-size: 0.8em; font-weight: 700; padding: 0.1em 0.5em; border-radius: 0.3em;
         color: #fff; background: #2e7d32; vertical-align: middle; margin-right: 0.5em; }
article.case[data-outcome="wrong"] .badge { background: #c62828; }
table.probs { border-collapse: collapse; margin: 0.3em 0 0.6em; }
table.probs th, table.probs td { border: 1px solid #ccc; padding: 0.15em 0.6em; text-align: right; }
table.probs th { background: #f4f6f8; }
table.probs td.predicted { font-weight: 700; background: #fff7d6; }
img { max-width: 100%; height: auto; display: block; border: 1px solid #eee; }
figure { margin: 1em 0; }
figcaption { color: #444; font-size: 0.95em; }
.note { background: #fff7d6; border: 1px solid #e6d38a; padding: 0.7em 1em; }
.warning { background: #fdecea; border: 1px solid #e0a3a0; border-left: 6px solid #c62828; padding: 0.7em 1em; }
table.results { border-collapse: collapse; margin: 0.5em 0; }
table.results th, table.results td { border: 1px solid #ccc; padding: 0.15em 0.6em; text-align: right; }
table.results th { background: #f4f6f8; text-align: left; }
code { background: #f4f6f8; padding: 0 0.25em; }
article.case, figure { scroll-margin-top: 4.5em; }
</style>
</head>
<body>
<h1>$title</h1>
<p class="meta">$summary</p>
$warnings
$note
$results
<p id="compare"><a href="../compare/index.html">FPN-IAIA-BL beside its baselines</a> (VGG-16, ProtoPNet, IAIA-BL;
Table 1 and Figure 4, with GradCAM and GradCAM++): built by <code>dvc repro compare/dvc.yaml</code>.</p>
<section id="cases">
<h2>Test cases</h2>
<p>$selection</p>
$how_to_read
<form class="filters" id="filters" onsubmit="return false">
<label for="filter-true">True class<select id="filter-true">$class_options</select></label>
<label for="filter-predicted">Predicted class<select id="filter-predicted">$class_options</select></label>
<label for="filter-outcome">Prediction<select id="filter-outcome">
<option value="all">correct and wrong</option>
<option value="correct">correct</option>
<option value="wrong">wrong</option>
</select></label>
<span id="shown-count" aria-live="polite"></span>
</form>
$cases
<p id="no-match" hidden>No case matches these filters.</p>
</section>
<section id="gallery">
<h2>Prototype gallery</h2>
$gallery
</section>
<script>
(function () {
  var trueSel = document.getElementById("filter-true");
  var predSel = document.getElementById("filter-predicted");
  var outSel = document.getElementById("filter-outcome");
  var cases = Array.prototype.slice.call(document.querySelectorAll("article.case"));
  function keep(value, wanted) { return wanted === "all" || value === wanted; }
  function apply() {
    var shown = 0;
    cases.forEach(function (c) {
      var ok = keep(c.dataset.true, trueSel.value) && keep(c.dataset.predicted, predSel.value) &&
               keep(c.dataset.outcome, outSel.value);
      c.hidden = !ok;
      if (ok) { shown += 1; }
    });
    document.getElementById("shown-count").textContent = shown + " of " + cases.length + " cases shown";
    document.getElementById("no-match").hidden = shown > 0 || cases.length === 0;
  }
  [trueSel, predSel, outSel].forEach(function (s) { s.addEventListener("change", apply); });
  apply();
})();
</script>
</body>
</html>
""")


_HOW_TO_READ = """<p>How to read a case figure (the layout of the paper's Figure 3): <b>a</b> the test crop; <b>b</b>
where the prototype activates on it (colour overlay; the solid cyan box holds its pixels at or above the 95th
percentile); <b>c</b> the most relevant part of the prototype, the part of its training crop inside that box;
<b>d</b> the training crop the prototype comes from, with the box and (dashed green) the receptive field of its
latent patch; <b>e</b> the prototype's activation on its own training crop; <b>f</b> similarity &times; class
connection = contribution to the predicted class's score. The rows are the prototypes with the largest
contributions; the sum over all prototypes is the score (logit), given under the rows.</p>"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _class_options() -> str:
    options = ['<option value="all">all</option>']
    options += [f'<option value="{_esc(c)}">{_esc(c)}</option>' for c in CLASSES]
    return "".join(options)


def _probability_table(probabilities: Mapping[str, float], predicted: str) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in CLASSES)
    cells = "".join(
        f'<td class="predicted">{probabilities[c]:.3f}</td>' if c == predicted else f"<td>{probabilities[c]:.3f}</td>"
        for c in CLASSES
    )
    return f'<table class="probs"><tr><th>class</th>{head}</tr><tr><th>probability</th>{cells}</tr></table>'


def _case_caption(case: Mapping[str, Any]) -> str:
    true = case.get("true")
    return caption(None if true is None else CLASSES.index(true), CLASSES.index(case["predicted"]))


def _case(number: int, case: Mapping[str, Any]) -> str:
    """One <article> from a cases.json entry."""
    sentence = _case_caption(case)
    outcome = "correct" if case["correct"] else "wrong"
    figure = case.get("figure")
    parts = [
        f'<article class="case" id="case-{number}" data-true="{_esc(case["true"])}" '
        f'data-predicted="{_esc(case["predicted"])}" data-outcome="{outcome}">',
        f'<h3><span class="badge">{outcome}</span>{number}. {_esc(sentence)}</h3>',
        f'<p class="meta">Test case <code>{_esc(case["image_id"])}</code></p>',
        _probability_table(case["probabilities"], case["predicted"]),
    ]
    if figure:
        alt = f"Case-based explanation of test case {case['image_id']}: {sentence}"
        parts.append(f'<a href="{_esc(figure)}"><img src="{_esc(figure)}" alt="{_esc(alt)}" loading="eager"></a>')
    parts.append("</article>")
    return "\n".join(parts)


def _gallery_figure(level: int, path: str) -> str:
    alt = f"Prototypes of FPN level {level}"
    return (
        f'<figure id="level-{level}"><a href="{_esc(path)}"><img src="{_esc(path)}" alt="{_esc(alt)}" '
        f'loading="eager"></a><figcaption>FPN level {level} prototypes.</figcaption></figure>'
    )


def _gallery(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return "<p>This model has no prototypes, so there is no gallery.</p>"
    intro = (
        "<p>Every prototype, one figure per FPN level (the paper's Figure 5), grouped by class: the training crop "
        "it was projected onto, with its high-activation box, and its self-activation.</p>"
    )
    levels = [int(e["level"]) for e in entries]
    links = " · ".join(f'<a href="#level-{level}">level {level}</a>' for level in levels)
    figures = [_gallery_figure(level, str(e["figure"])) for level, e in zip(levels, entries, strict=True)]
    return "\n".join([intro, f"<p>Levels: {links}</p>", *figures])


def report_document(
    arch: str, n_prototypes: int, n_test: int, selection: str, note: str | None,
    cases: Sequence[Mapping[str, Any]], gallery: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any] | None = None, warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The content of cases.json, from which the page is rendered: the model, the test split's size, how the
    cases were chosen, a note (or None), the case entries (fpnpipe.explain.cases.case_record), the gallery
    figures ({"level", "figure"}, paths relative to the page), the test metrics (reports/metrics.json, or
    None when evaluate has not run) and the warnings read off them (fpnpipe.metrics.warnings)."""
    return {
        "model": {"arch": arch, "n_prototypes": int(n_prototypes)},
        "n_test": int(n_test),
        "selection": selection,
        "note": note,
        "warnings": list(warnings),
        "metrics": dict(metrics) if metrics is not None else None,
        "cases": list(cases),
        "gallery": list(gallery),
    }


def _value(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"


def _with_ci(point: Any, ci: Mapping[str, Any] | None) -> str:
    ci = ci or {}
    return f"{_value(point)} ({_value(ci.get('lo'))}&ndash;{_value(ci.get('hi'))})"


def _results(metrics: Mapping[str, Any] | None) -> str:
    """The headline test metrics as a small table (reports/metrics.json keys), or a pointer to evaluate."""
    if metrics is None:
        return "<p class=\"note\">No test metrics: reports/metrics.json was not found (run the evaluate stage).</p>"
    auroc, ci = metrics.get("auroc") or {}, metrics.get("auroc_ci95") or {}
    detection = metrics.get("detection") or {}
    rows = [(f"Margin AUROC among test lesions, {name} (95% CI)", _with_ci(auroc.get(name), ci.get(name)))
            for name in ("average", "circumscribed", "indistinct", "spiculated")]
    rows += [
        ("Detection AUROC, lesion vs negative (95% CI)", _with_ci(detection.get("auroc"), detection.get("auroc_ci95"))),
        ("Margin balanced accuracy (lesions)", _value(metrics.get("margin_balanced_accuracy"))),
        ("Balanced accuracy (four classes)", _value(metrics.get("balanced_accuracy"))),
    ]
    precision = metrics.get("activation_precision")
    if precision:
        chance = (precision.get("chance") or {}).get("average")
        rows.append(("Activation precision (chance level)", f"{_value(precision.get('average'))} ({_value(chance)})"))
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    counts = (f"{int(metrics.get('n_test', 0))} test crops, {int(metrics.get('n_test_lesions', 0))} of them lesions "
              f"from {int(metrics.get('n_test_lesion_patients', 0))} patients")
    return (f'<section id="results"><h2>Test results</h2><p class="meta">{_esc(counts)}; intervals are '
            f'patient-level bootstrap 95% CIs.</p><table class="results">{body}</table></section>')


def _warnings(warnings: Sequence[str]) -> str:
    return "".join(f'<p class="warning"><b>Warning:</b> {_esc(w)}</p>' for w in warnings)


def render_index(document: Mapping[str, Any]) -> str:
    """The whole index.html from a `report_document` (the content of cases.json)."""
    cases = document["cases"]
    model = document["model"]
    n_prototypes = int(model["n_prototypes"])
    prototypes = f"{n_prototypes} prototypes" if n_prototypes else "no prototypes"
    summary = (
        f"Model <code>{_esc(model['arch'])}</code> ({prototypes}); {len(cases)} of the {int(document['n_test'])} "
        "test crops (lesion crops and negative patches) explained."
    )
    note = f'<p class="note">{_esc(document["note"])}</p>' if document.get("note") else ""
    body = "\n".join(_case(k + 1, case) for k, case in enumerate(cases))
    return _PAGE.substitute(
        title=f"Case-based explanations of the {_esc(model['arch'])} model",
        summary=summary,
        note=note,
        warnings=_warnings(document.get("warnings") or ()),
        results=_results(document.get("metrics")),
        selection=_esc(document["selection"]),
        how_to_read=_HOW_TO_READ if n_prototypes else "",
        class_options=_class_options(),
        cases=body or "<p>No cases were explained (explain.n_cases is 0).</p>",
        gallery=_gallery(document["gallery"]),
    )
