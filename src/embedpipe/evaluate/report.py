"""The evaluation's page beside the validation report: the numbers as tables and the ROC curves."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: compute nodes have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from embedpipe.evaluate.metrics import Evaluation  # noqa: E402
from embedpipe.store.html_page import PAGE_STYLE, html_figure, html_table, plain, save_figure  # noqa: E402

MAX_CURVES = 20  # a legend past this is unreadable; the table has every class


def plot_roc(result: Evaluation, path: Path) -> None:
    """Each class's ROC on the test rows (k-fold: every row, scored by the fold that tested it)."""
    m = result.metrics
    targets = np.concatenate([result.targets[f.test] for f in result.folds])
    scores = np.concatenate([f.probe_scores for f in result.folds])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("tab20")
    for c, name in enumerate(m["classes"][:MAX_CURVES]):
        if 0 < targets[:, c].sum() < len(targets):
            fpr, tpr, _ = roc_curve(targets[:, c], scores[:, c])
            ax.plot(fpr, tpr, color=cmap(c % 20), lw=1.2, label=f"{plain(name)} ({m['per_class'][name]['auroc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    pooled = "" if m["protocol"]["kind"] == "split" else ", test folds pooled"
    ax.set_title(f"{plain(m['task'])}: linear probe ROC{pooled}\nmacro AUROC {_fmt(m['macro_auroc']['value'])}",
                 fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    save_figure(fig, path)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ci(pair: list[float | None]) -> str:
    return "n/a" if None in pair else f"{pair[0]:.3f} – {pair[1]:.3f}"


def evaluation_section(m: dict[str, Any], roc: Path) -> str:
    """The tables and the figure, as one HTML fragment."""
    probe, knn, join = m["probe"], m["knn"], m["join"]
    chosen = probe["chosen_c"]
    summary = html_table(["measure", "value"], [
        ["task", m["task"]],
        ["protocol", m["protocol"]["kind"] + (f" ({m['protocol']['folds']} folds)" if "folds" in m["protocol"]
                                              else "")],
        ["rows train / validation / test", f"{m['n_train']} / {m['n_validation']} / {m['n_test']}"],
        ["linear probe: macro AUROC (95 % CI)", f"{_fmt(m['macro_auroc']['value'])} ({_ci(m['macro_auroc']['ci95'])})"],
        ["C chosen on validation", chosen if not isinstance(chosen, list) else ", ".join(map(str, chosen))],
        [f"k-NN (k={knn['k']}, cosine): accuracy", f"{_fmt(knn['accuracy'])} ({knn['accuracy_kind']})"],
        ["k-NN macro AUROC", _fmt(knn["macro_auroc"])],
        ["bootstrap", f"{m['bootstrap']['resamples']} resamples, {m['bootstrap']['skipped_macro']} skipped"],
    ])
    classes = html_table(
        ["class", "positives", "probe AUROC", "95 % CI", "k-NN AUROC"],
        [[name, ", ".join(f"{k} {v}" for k, v in c["positives"].items()), _fmt(c["auroc"]), _ci(c["ci95"]),
          _fmt(knn["per_class"][name])] for name, c in m["per_class"].items()],
    )
    joined = html_table(["rows", "count"], [[k.replace("_", " "), v] for k, v in join.items()
                                             if not k.endswith("_examples")])
    dropped = html_table(["class", "why it is not measured"], list(m["dropped_classes"].items())) \
        if m["dropped_classes"] else "<p>none</p>"
    return (f"<h2>Evaluation: {html.escape(m['task'])}</h2>{summary}<h3>Per class</h3>{classes}"
            f"{html_figure(roc, 'ROC curves of the linear probe')}<h3>Classes left out</h3>{dropped}"
            f"<h3>The join</h3>{joined}")


def render_html(m: dict[str, Any], roc: Path, title: str) -> str:
    source = html.escape(json.dumps({"source": m["source"], "protocol": m["protocol"], "seed": m["seed"]},
                                    indent=2, default=str))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} — evaluation</title>
<style>
{PAGE_STYLE}
</style></head><body>
<h1>{html.escape(title)}: evaluation report</h1>
{evaluation_section(m, roc)}
<h2>Labels and protocol</h2><pre>{source}</pre>
</body></html>
"""
