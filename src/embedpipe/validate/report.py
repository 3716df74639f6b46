"""The validation report: four PNG plots and one self-contained HTML page that shows them with the numbers."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: compute nodes have no display
# A user's matplotlibrc asking for LaTeX would send every name through it (and nodes have no LaTeX).
matplotlib.rcParams["text.usetex"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from embedpipe.store.atomic import remove_leftovers_of, write_text_atomic  # noqa: E402
from embedpipe.store.html_page import PAGE_STYLE, html_figure, html_table, plain, save_figure  # noqa: E402, F401
from embedpipe.validate.checks import ValidationResult  # noqa: E402
from embedpipe.validate.settings import ValidationConfig  # noqa: E402

PLOTS = ("norms", "pca_spectrum", "pca_scatter", "cosine")
MAX_SHARD_PANELS = 24
def plot_norms(result: ValidationResult, path: Path) -> None:
    stats = result.stats
    shards = result.shards[:MAX_SHARD_PANELS]
    cols = min(5, max(1, len(shards)))
    rows = -(-len(shards) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows), squeeze=False, sharex=True)
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, shard in zip(axes.flat, shards, strict=False):
        ax.set_visible(True)
        norms = stats.shard_norms(shard) if stats is not None else np.zeros(0)
        if len(norms):
            ax.hist(norms, bins=30, color="#3b6ea8")
        ax.set_title(f"{plain(shard)} (n={len(norms)})", fontsize=8)
        ax.tick_params(labelsize=7)
    more = f" (first {len(shards)} of {len(result.shards)} shards)" if len(result.shards) > len(shards) else ""
    fig.suptitle(f"L2 norm per shard{more}", fontsize=10, y=1.03)
    save_figure(fig, path)


def plot_pca_spectrum(result: ValidationResult, path: Path) -> None:
    pca = result.metrics.get("embedding", {}).get("pca", {})
    ratio = np.asarray(pca.get("explained_variance_ratio", []))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if len(ratio):
        ax.bar(np.arange(1, len(ratio) + 1), ratio, color="#3b6ea8", label="per component")
        ax2 = ax.twinx()
        ax2.plot(np.arange(1, len(ratio) + 1), np.cumsum(ratio), color="#c0392b", marker=".", label="cumulative")
        ax2.set_ylim(0, 1.02)
        ax2.set_ylabel("cumulative", fontsize=8)
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance ratio")
    ax.set_title(f"PCA spectrum (effective rank {pca.get('effective_rank', 'n/a')})", fontsize=10)
    save_figure(fig, path)


def plot_pca_scatter(result: ValidationResult, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    stats = result.stats
    if stats is not None and stats.count >= 2:
        sample, shard_of = stats.sample
        _, vectors = stats.pca()
        xy = (sample - stats.mean().astype(np.float32)) @ vectors[:, :2].astype(np.float32)
        labels = np.asarray(shard_of)
        cmap = plt.get_cmap("tab20")
        for i, shard in enumerate(result.shards[:20]):
            mask = labels == shard
            ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.6, color=cmap(i % 20), label=plain(shard))
        if len(result.shards) <= 20:
            ax.legend(fontsize=6, markerscale=2, loc="best")
        ax.set_title(f"2-D PCA of a sample of {len(sample)} rows, coloured by shard", fontsize=10)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    save_figure(fig, path)


def plot_cosine(result: ValidationResult, path: Path, max_mean_cosine: float) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    stats = result.stats
    cos = result.metrics.get("embedding", {}).get("cosine", {})
    if stats is not None and stats.count >= 2:
        values = stats.random_pair_cosines(cos.get("pairs", ValidationConfig.cosine_pairs))
        ax.hist(values, bins=60, range=(-1, 1), color="#3b6ea8")
        ax.axvline(float(values.mean()), color="black", linestyle="--", label=f"mean {values.mean():.3f}")
    ax.axvline(max_mean_cosine, color="#c0392b", label=f"collapse threshold {max_mean_cosine}")
    ax.set_xlabel("cosine similarity of random pairs")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_paths(out_dir: Path) -> dict[str, Path]:
    return {name: out_dir / f"{name}.png" for name in PLOTS}


def write_plots(result: ValidationResult, out_dir: Path, max_mean_cosine: float) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = plot_paths(out_dir)
    plot_norms(result, paths["norms"])
    plot_pca_spectrum(result, paths["pca_spectrum"])
    plot_pca_scatter(result, paths["pca_scatter"])
    plot_cosine(result, paths["cosine"], max_mean_cosine)
    return paths


def _error_tables(groups: list[dict[str, Any]]) -> str:
    """One table per error type, most frequent first: its count, then key, shard, stage and message."""
    if not groups:
        return "<p>none: every file is a row</p>"
    parts = []
    for g in groups:
        shown = f" (the first {len(g['rows'])})" if len(g["rows"]) < g["count"] else ""
        rows = [[r["key"], r["shard"], r["stage"], r["message"]] for r in g["rows"]]
        parts.append(f"<h3>{html.escape(g['error_type'])}: {g['count']} file(s){shown}</h3>"
                     + html_table(["key", "shard", "stage", "message"], rows))
    return "".join(parts)


def render_html(result: ValidationResult, plots: dict[str, Path], provenance: dict[str, Any], title: str,
                sections: str = "") -> str:
    """The page; `sections`: HTML fragments of the run's other steps (pretraining, evaluation), after the plots."""
    m = result.metrics
    status = "PASSED" if m["passed"] else "FAILED"
    emb = m.get("embedding", {})
    checks = html_table(["check", "result", "detail"],
                    [[c["name"], "pass" if c["passed"] else "FAIL", c["detail"]] for c in m["checks"]])
    shards = html_table(
        ["shard", "files", "rows", "errors", "reconciled", "NaN/Inf rows", "zero rows", "norm mean", "norm p01–p99"],
        [[s["shard"], s["files"], s["rows"], s["errors"], s["reconciled"], s["nonfinite_rows"], s["zero_rows"],
          f"{s['norm'].get('mean', float('nan')):.4g}",
          f"{s['norm'].get('p01', float('nan')):.4g} – {s['norm'].get('p99', float('nan')):.4g}"]
         for s in m["shards"]],
    )
    pca = emb.get("pca", {})
    cos = emb.get("cosine", {})
    summary = html_table(["measure", "value"], [
        ["files / rows / errors", f"{m['totals']['files']} / {m['totals']['rows']} / {m['totals']['errors']}"],
        ["embedding width", emb.get("dim", "n/a")],
        ["norm mean ± std", f"{emb.get('norm', {}).get('mean', float('nan')):.4g} ± "
                            f"{emb.get('norm', {}).get('std', float('nan')):.4g}"],
        ["effective rank (exact)", pca.get("effective_rank", "n/a")],
        ["top-10 PCA cumulative variance", (pca.get("cumulative") or [None] * 10)[:10][-1]],
        ["mean cosine, random pairs (sampled)", f"{cos.get('mean', float('nan')):.4f} over {cos.get('pairs', 0)} "
                                                f"pairs of {cos.get('sample_rows', 0)} rows"],
        ["identical embeddings under different keys", emb.get("duplicate_embeddings", "n/a")],
    ])
    figures = "".join(html_figure(plots[name], name.replace("_", " ")) for name in PLOTS)
    failures = _error_tables(m.get("errors_by_type", []))
    prov = html.escape(json.dumps(provenance, indent=2, sort_keys=True, default=str))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} — validation</title>
<style>
{PAGE_STYLE}
.status {{ font-size: 1.4em; font-weight: bold; color: {"#1e7d32" if m["passed"] else "#c0392b"}; }}
</style></head><body>
<h1>{html.escape(title)}: validation report</h1>
<p class="status">{status}</p>
<h2>Checks</h2>{checks}
<h2>Summary</h2>{summary}
<p><em>{html.escape(emb.get("sampling", ""))}</em></p>
<h2>Plots</h2>{figures}
{sections}
<h2>Shards</h2>{shards}
<h2>Error rows by type</h2>{failures}
<h2>Provenance</h2><pre>{prov}</pre>
</body></html>
"""


def write_report(result: ValidationResult, out_dir: Path, provenance: dict[str, Any], title: str,
                 max_mean_cosine: float, sections: str = "") -> dict[str, Path]:
    """metrics.json, the four plots and report.html into out_dir; returns their paths."""
    metrics = out_dir / "metrics.json"
    report = out_dir / "report.html"
    remove_leftovers_of(metrics, report, *plot_paths(out_dir).values())
    plots = write_plots(result, out_dir, max_mean_cosine)
    write_text_atomic(report, render_html(result, plots, provenance, title, sections))
    write_text_atomic(metrics, json.dumps(result.metrics, indent=2))
    return {"metrics": metrics, "report": report, **plots}
