"""DeepEarth's one `.pt` per image, streamed from a shard's token sidecars."""

from __future__ import annotations

from pathlib import Path

from embedpipe.store.atomic import staged_dir
from embedpipe.store.export_names import inside, unique_names
from embedpipe.store.parquet_io import streamed

SUFFIX = "_features.pt"


def export_deepearth_pt(shard: Path, out_dir: Path, column: str = "tokens") -> int:
    """One `.pt` per image as the DeepEarth extractor saved it, for one shard (a taxon folder):
    `<out_dir>/<stem>_features.pt` = `{"features": [T'·H'·W', D] float16, "shape", "dtype", "source_chunk",
    "image_id"}`, `features` flattened t-major as DeepEarth's `[4608, 1408]`.

    Streams: one image's tokens in memory at a time, read from the shard's safetensors beside it. Photos
    that would share a name (`a/x.jpg` and `b/x.jpg`, `x.jpg` and `x.png`) are named by their whole key
    instead, less the shard's folder (`export_names.unique_names`: `a/x.jpg_features.pt`, `image_id`
    `a/x.jpg`), so none overwrites another. The folder appears complete or not at all (written beside,
    renamed into place). Returns the files written.
    """
    import torch
    from safetensors import safe_open

    source = streamed(shard)
    file_col = f"{column}_file"
    if file_col not in source.schema_arrow.names:
        raise ValueError(f"{shard} has no {column!r}: run with encoder.outputs including {column!r}")
    keys = source.read(columns=["key"]).column("key").to_pylist()
    names = unique_names(keys, lambda key: Path(key).name.split(".")[0], SUFFIX, folder=shard.stem)
    written: set[Path] = set()
    opened = {}
    with staged_dir(out_dir) as staging:
        for batch in source.iter_batches(batch_size=256, columns=["key", file_col]):
            for key, rel in zip(batch.column("key").to_pylist(), batch.column(file_col).to_pylist(), strict=True):
                if rel not in opened:
                    opened.clear()  # rows come in part order: one file open at a time
                    opened[rel] = safe_open(str(shard.parent / rel), "pt")
                grid = opened[rel].get_tensor(key)
                features = grid.reshape(-1, grid.shape[-1]).contiguous()
                dest = inside(staging, names[key], key)
                dest.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"features": features, "shape": features.shape, "dtype": "float16",
                            "source_chunk": Path(rel).name, "image_id": names[key].removesuffix(SUFFIX)}, dest)
                written.add(dest)
    return len(written)
