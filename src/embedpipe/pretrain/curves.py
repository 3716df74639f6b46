"""The pretraining curves for the reports: `metrics.csv`'s losses and learning rate per step as a
picture (`loss.png`, in Snakemake's report), and a section of the validation report."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: compute nodes have no display
import matplotlib.pyplot as plt  # noqa: E402

from embedpipe.store.html_page import html_figure, html_table, save_figure  # noqa: E402

LOSSES = (("loss", "total"), ("pred_loss", "prediction (smooth L1)"), ("sigreg_loss", "SIGReg"))


def _series(rows: list[dict[str, str]], column: str) -> tuple[list[int], list[float]]:
    pairs = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def plot_curves(rows: list[dict[str, str]], path: Path) -> None:
    """Left: the total loss and its two parts (log scale: SIGReg starts orders above the prediction
    loss); right: the learning rate. One point per step, as metrics.csv holds them."""
    if not rows:
        raise ValueError(f"no metrics rows to plot into {path}")
    fig, (losses, lr) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 1.4]})
    for column, label in LOSSES:
        steps, values = _series(rows, column)
        losses.plot(steps, [v if v > 0 else math.nan for v in values], lw=1.0, label=label)  # log scale: > 0
    losses.set_yscale("log")
    losses.set_xlabel("step")
    losses.set_ylabel("loss")
    losses.set_title(f"MyJEPA pretraining: {len(rows)} steps, final loss {float(rows[-1]['loss']):.4g}", fontsize=9)
    losses.legend(fontsize=7)
    steps, values = _series(rows, "lr")
    lr.plot(steps, values, color="grey", lw=1.0)
    lr.set_xlabel("step")
    lr.set_title("learning rate (warm-up, cosine)", fontsize=9)
    lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    save_figure(fig, path)


def pretraining_section(rows: list[dict[str, str]], curves: Path) -> str:
    """The run's last step and its throughput as a table, then the curves."""
    last = rows[-1]
    rates = [float(r["samples_per_s"]) for r in rows[1:] if r.get("samples_per_s")]  # step 1 starts the workers
    table = html_table(["measure", "value"], [
        ["steps", last["step"]],
        ["final loss (prediction, SIGReg)", f"{float(last['loss']):.4g} ({float(last['pred_loss']):.4g}, "
                                            f"{float(last['sigreg_loss']):.4g})"],
        ["samples/s (median after step 1)", f"{sorted(rates)[len(rates) // 2]:.1f}" if rates else "n/a"],
        ["records skipped (all steps)", sum(int(r["skipped"] or 0) for r in rows)],
        ["GPU memory peak (MB)", last.get("gpu_peak_mb") or "n/a (CPU)"],
    ])
    return f"<h2>Pretraining (MyJEPA)</h2>{table}{html_figure(curves, 'pretraining loss and learning rate')}"
