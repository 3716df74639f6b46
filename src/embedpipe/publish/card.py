"""The dataset card: README.md beside the Parquet files, as the Hugging Face Hub reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from embedpipe.publish.identifying import ACK_KEY, PATTERNS_KEY, SHAPES, recorded
from embedpipe.publish.pca import NAME as PCA_NAME
from embedpipe.publish.pca import Pca
from embedpipe.publish.settings import CardOptions
from embedpipe.store.footer import read_provenance
from embedpipe.store.sidecar import FILE_SUFFIX

SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
DATA_GLOB = "train-*.parquet"


def size_category(n: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if n < limit), "n>1B")


def card_header(files: list[Path], rows: int, dataset: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    from datasets import Features

    features = Features.from_arrow_schema(pq.read_schema(files[0]))
    num_bytes = sum(f.stat().st_size for f in files)
    header: dict[str, Any] = {
        "pretty_name": dataset["pretty_name"],
        "license": dataset.get("license") or CardOptions.license,
    }
    if header["license"] == "other":
        for key in ("license_name", "license_link"):
            if dataset.get(key):
                header[key] = dataset[key]
    header |= {
        "task_categories": ["feature-extraction"],
        "size_categories": [size_category(rows)],
        "tags": ["embeddings", "embedpipe", str(provenance.get("encoder", "")), str(provenance.get("model", ""))],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": DATA_GLOB}]}],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": "train", "num_bytes": num_bytes, "num_examples": rows}],
            "download_size": num_bytes,
            "dataset_size": num_bytes,
        },
    }
    if dataset.get("credentialed"):
        header["tags"].append("credentialed")
        header["extra_gated_prompt"] = (
            "This dataset is derived from credentialed data. Request access only if you hold the source "
            "dataset's data use agreement; do not redistribute."
        )
    return header


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def counted(n: int, noun: str) -> str:
    """"1 row", "2 rows"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def truncation_note(files: list[Path]) -> str:
    """How many rows come from files that decoded shorter than their header declares."""
    names = pq.read_schema(files[0]).names
    if "truncated" not in names:
        return ""
    flagged = sum(pc.sum(pq.read_table(f, columns=["truncated"]).column("truncated")).as_py() or 0 for f in files)
    if "frames_decoded" in names:
        what = "the video decoded fewer frames than its container or DICOM header declares"
        unknown = "Null where the container states neither a frame count nor a duration."
    else:
        what = "the file decoded shorter than its header declares"
        unknown = ("Null where the format states no length (Ogg, raw AAC, MP3 without a Xing/VBRI header): "
                   "a length estimated from the bit rate is not a declaration.")
    return f"\n\n`truncated`: {what} ({counted(flagged, 'row')}); the row embeds what decoded. {unknown}"


DECODER_ORDER = {"frames_decoded": "decord first (the official V-JEPA 2 numbers come from it); PyAV for a codec "
                                   "decord's FFmpeg lacks (AV1), MPEG-TS, and files whose frames decord counts "
                                   "or fills wrongly (edit lists, frames that do not decode); pydicom for DICOM cines",
                 "duration_s": "soundfile (libsndfile) first; PyAV for what libsndfile cannot open or decode"}


def decoder_note(files: list[Path]) -> str:
    """Which decoder read how many rows (video and audio rows record it)."""
    names = pq.read_schema(files[0]).names
    if "decoder" not in names:
        return ""
    counts: dict[str, int] = {}
    for f in files:
        for item in pc.value_counts(pq.read_table(f, columns=["decoder"]).column("decoder")).to_pylist():
            name = item["values"] or "not recorded"
            counts[name] = counts.get(name, 0) + item["counts"]
    order = next((text for column, text in DECODER_ORDER.items() if column in names), "")
    by_count = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    tally = ", ".join(f"{name} {counted(n, 'row')}" for name, n in by_count)
    return f"\n\n`decoder`: what decoded the file ({tally}). Tried in order: {order}."


def sidecar_note(first: Path, provenance: dict[str, Any]) -> str:
    """How to read columns stored beside the Parquet (image patch tokens), when the dataset has them."""
    names = [f.name for f in pq.read_schema(first) if f.name.endswith(FILE_SUFFIX)]
    if not names:
        return ""
    key = "file_path" if "file_path" in pq.read_schema(first).names else "key"
    grid = provenance.get("token_grid")
    column = names[0].removesuffix(FILE_SUFFIX)
    return (f"\n\n`{column}` is not in the rows: each row's `{names[0]}` names a safetensors file beside the "
            f"Parquet (relative to it) holding one float16 tensor per row, named by `{key}`"
            + (f", shaped `[{', '.join(map(str, grid))}, {provenance.get('embedding_dim')}]` (t, i, j, feature)"
               if grid else "")
            + f". Read one with `safe_open(<folder>/{names[0]}, \"np\").get_tensor({key})` "
              "(`from safetensors import safe_open`).")


def pca_note(first: Path) -> str:
    """`embedding_pca` and the pca.npz it came from (published beside the shards before the card)."""
    path = first.parent / PCA_NAME
    if not path.is_file():
        return ""
    pca = Pca.load(path)
    k, d = pca.components.shape
    return (f"\n\n`embedding_pca` (width {k}): `embedding` on the run's own PCA, fitted on its "
            f"{counted(pca.n_rows, 'row')}; "
            f"the {k} components keep {100 * pca.explained_variance_ratio.sum():.1f} % of the variance. "
            f"`{PCA_NAME}` holds `mean` [{d}], `components` [{k}, {d}] and `explained_variance_ratio`: "
            "`embedding_pca = (embedding - mean) @ components.T` for any new vector.")


def reuse_note(files: list[Path]) -> str:
    """How many rows the extract jobs took from their shard's previous version instead of embedding them."""
    reused = sum(int(read_provenance(f).get("reused_rows") or 0) for f in files)
    if not reused:
        return ""
    return (f" {counted(reused, 'row')} were reused when their shard was last made: taken from that shard's previous "
            "version (same model, weights and preprocessing; file size and modification time unchanged), not "
            "embedded again.")


def exclusion_note(exclusions: dict[str, Any] | None) -> str:
    """What the scan of the input left out, as discover counted it."""
    if not exclusions:
        return ""
    labels = {"hidden": "dot-files", "line_breaks": "with a line break in the name",
              "not_utf8": "with a name that is not UTF-8", "unsafe_paths": "listed with '..', '.' or empty parts",
              "outside_shards": "outside the listed shard folders"}
    parts = [f"{len(names)} {labels[why]}" for why, names in exclusions["excluded"].items() if names]
    skipped = exclusions["skipped_by_extension"]
    if skipped:
        companions = sum(exclusions.get("wfdb_companions", {}).values())
        parts.append(f"{sum(skipped.values())} with other extensions ("
                     + ", ".join(f"{ext or 'none'} {n}" for ext, n in skipped.items())
                     + (f"; {companions} of them WFDB signal and annotation files, read through their .hea"
                        if companions else "") + ")")
    for key, what in (("hidden_folders", "hidden folders"), ("linked_folders", "links to folders below the top level")):
        if exclusions.get(key):
            parts.append(f"{len(exclusions[key])} {what}, not entered")
    if trial := exclusions.get("trial"):
        parts.append(f"{sum(trial['beyond_limit'].values())} past the first {trial['limit']} of each shard "
                     "(a trial run, `extract.limit`)")
    if not parts:
        return ""
    return ("\n\nNot counted above, as the input scan left them out (listed in the run's "
            "`manifests/exclusions.json`): " + "; ".join(parts) + ".")


def identifying_section(files: list[Path]) -> str:
    """Which columns identify people, and which nobody could judge, as the dataset files record it (the
    upload checks the same record). It never says that nothing identifies a person unless every column
    was judged."""
    found = recorded(files)
    if found.unrecorded:
        return ("## Identifying columns\n\n"
                f"Not recorded: {', '.join(found.unrecorded)} were written before embedpipe recorded them. Treat "
                "every id, path, datetime and note column as identifying.")
    parts = []
    if found.identifying:
        parts.append(f"{', '.join(f'`{c}`' for c in sorted(found.identifying))}: these identify people (ids, paths "
                     "that hold ids, datetimes, note ids). Share the dataset only as the source data's terms allow.")
    for column, shapes in sorted(found.shapes.items()):
        parts.append(f"`{column}` holds {', '.join(sorted(shapes))} in some of its values.")
    if found.unjudged:
        known = ", ".join(SHAPES)
        parts.append(f"{', '.join(f'`{c}`' for c in sorted(found.unjudged))}: file paths of unknown origin. embedpipe "
                     f"found none of the identifier shapes it looks for ({known}, and {PATTERNS_KEY}) in them, but "
                     "cannot tell whether a folder or file name names a person: check before sharing. A public "
                     f"upload needs them named in {ACK_KEY}.")
    if not parts:
        parts.append("None: no column identifies a person (every file name follows the dataset's naming and holds "
                     "no identifier shape).")
    return "## Identifying columns\n\n" + "\n\n".join(parts)


def card_body(files: list[Path], metrics: dict[str, Any], dataset: dict[str, Any], provenance: dict[str, Any],
              load_name: str, exclusions: dict[str, Any] | None = None, load_config: str | None = None,
              disk: str = "", planned: str = "") -> str:
    totals = metrics["totals"]
    emb = metrics.get("embedding", {})
    # A shard whose files all failed has no dataset file (a 0-row Parquet file breaks load_dataset).
    file_of = {read_provenance(f).get("shard"): f.name for f in files}
    shards = _md_table(
        ["shard", "file", "files", "rows", "errors"],
        [[s["shard"], file_of.get(s["shard"], "none (no rows)"), s["files"], s["rows"], s["errors"]]
         for s in metrics["shards"]],
    )
    checks = _md_table(["check", "result", "detail"],
                       [[c["name"], "pass" if c["passed"] else "FAIL", c["detail"]] for c in metrics["checks"]])
    packages = _md_table(["package", "version"], sorted(provenance.get("packages", {}).items()))
    first_shape = emb.get("dim", provenance.get("embedding_dim"))
    columns = _md_table(["column", "type"], [[f"`{f.name}`", f"`{f.type}`"] for f in pq.read_schema(files[0])])
    columns += f"\n\n`embedding` (width {first_shape}): {provenance.get('pooling', 'the pooled vector')}."
    columns += sidecar_note(files[0], provenance)
    columns += pca_note(files[0])
    columns += truncation_note(files)
    columns += decoder_note(files)
    planned_part = f"\n\n{planned}" if planned else ""  # a card without a trial's plan stays as it was
    credentialed = (
        "\n> **Credentialed data.** The source files are under a data use agreement. These embeddings are "
        "derived from them: share them only with people who hold the same agreement, and keep the "
        "repository private.\n"
        if dataset.get("credentialed") else ""
    )
    return f"""
# {dataset["pretty_name"]}

{dataset.get("description") or ""}
{credentialed}
One row per input file. Files that could not be read are not rows: they are counted below and
listed in the run's `*.errors.parquet`.

{columns}

{identifying_section(files)}

## Counts

{counted(totals["files"], "file")}: {counted(totals["rows"], "row")} and {counted(totals["errors"], "error")} (error
fraction {totals["error_fraction"]}), in {counted(len(files), "Parquet file")}.{reuse_note(files)}\
{exclusion_note(exclusions)}

{shards}

## Provenance

- Encoder: `{provenance.get("encoder")}`, model `{provenance.get("model")}` from `{provenance.get("model_id")}`,
  revision `{provenance.get("revision") or "latest at run time"}`
- Fingerprint: `{metrics.get("fingerprint") or "not recorded"}` (model, weights and preprocessing: every
  shard's, checked by validate)
- Compute dtype: {provenance.get("compute_dtype")}
- Run date (UTC): {provenance.get("created", "not recorded")}
- Preprocessing:

```json
{json.dumps(provenance.get("preprocessing", {}), indent=2, sort_keys=True)}
```

{packages}

## Validation

{"Passed" if metrics["passed"] else "FAILED"}. Effective rank {emb.get("pca", {}).get("effective_rank")}; mean
cosine similarity of random pairs {emb.get("cosine", {}).get("mean", float("nan")):.4f}. {emb.get("sampling", "")}.

{checks}

{disk}{planned_part}

## Loading

```python
from datasets import load_dataset

ds = load_dataset("{load_name}"{f', "{load_config}"' if load_config else ""}, split="train")
embeddings = ds.with_format("numpy")["embedding"]   # [{totals["rows"]}, {first_shape}] float32
```

Or without `datasets`: `pyarrow.parquet.read_table("{files[0].name}")`, one file per shard.
Generated by [embedpipe](https://github.com/embedpipe/embedpipe).
"""


def build_card(files: list[Path], metrics: dict[str, Any], dataset: dict[str, Any], load_name: str,
               exclusions: dict[str, Any] | None = None, load_config: str | None = None, disk: str = "",
               planned: str = "") -> str:
    """README.md text; it is parsed back through huggingface_hub before it is returned. `disk`: the
    Disk section (publish.disk_usage), where the run's folders are known; `planned`: the Plan against
    actual section (plan.against_actual), where a trial planned the run."""
    from huggingface_hub import DatasetCard

    provenance = read_provenance(files[0])
    header = card_header(files, metrics["totals"]["rows"], dataset, provenance)
    text = "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n" + card_body(
        files, metrics, dataset, provenance, load_name, exclusions, load_config, disk, planned)
    card = DatasetCard(text)  # raises on a header the Hub would reject as YAML
    if card.data.get("pretty_name") != dataset["pretty_name"]:
        raise ValueError("dataset card header did not round-trip")
    return text
