"""What every HTML page embedpipe writes shares (the validation report, the evaluation's page, the
pretraining curves): the style, tables, inline PNG figures and a safe way to put a name on a plot."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: compute nodes have no display
# A user's matplotlibrc asking for LaTeX would send every name through it (and nodes have no LaTeX).
matplotlib.rcParams["text.usetex"] = False
import matplotlib.pyplot as plt  # noqa: E402

from embedpipe.store.atomic import atomic_path  # noqa: E402

PAGE_STYLE = """body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
figure { display: inline-block; margin: 0.5em; } img { max-width: 520px; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }"""


def plain(name: object) -> str:
    """A name (shard, key, class, model) as a plot shows it: matplotlib reads text between two `$` as
    mathtext and fails on what it cannot parse (`m$\\undefinedcmd$`); `\\$` is a literal dollar."""
    return str(name).replace("$", r"\$")


def save_figure(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def html_table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_figure(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'
