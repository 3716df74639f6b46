"""The published dataset folder: exactly this run's shard files that hold rows, numbered, with the card.

Built beside the old folder and swapped in, so the folder is never half-built and never keeps files
of an earlier run (a rerun on fewer shards left the old shards in it, and `load_dataset` then failed
on split sizes). A shard whose files all failed has no file here: a 0-row Parquet file makes
`load_dataset` fail ("BatchSize must be greater than 0"); the card counts its errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from embedpipe.publish.dataset_names import dataset_file_name
from embedpipe.store.atomic import remove_staged_leftovers, staged_dir, writing
from embedpipe.store.sidecar import publish, referenced_files

log = logging.getLogger(__name__)
CARD_NAME = "README.md"


class EmptyDatasetError(ValueError):
    """No shard holds a row: there is nothing a dataset folder could hold."""


def build_dataset_folder(staged: list[Path], folder: Path, write_card: Callable[[list[Path]], str],
                         extra: dict[str, Path] | None = None) -> list[str]:
    """Publish the staged shard files that hold rows into `folder` as train-0000i-of-0000N.parquet
    (hard links where possible), their sidecars, `extra` ({name: file}: the run's pca.npz), and
    README.md from `write_card(published files)`, written last. Returns the folder's files, relative to it."""
    kept = [p for p in staged if pq.ParquetFile(p).metadata.num_rows > 0]
    for p in staged:
        if p not in kept:
            log.warning("%s holds no rows (all its files failed): it gets no dataset file", p.name)
    if not kept:
        raise EmptyDatasetError(f"none of the {len(staged)} shards holds a row: nothing to publish")
    remove_staged_leftovers(folder)
    written: list[str] = []
    with writing(folder), staged_dir(folder) as tmp:  # an error names the folder, not its staging copy
        for i, source in enumerate(kept):
            name = dataset_file_name(i, len(kept))
            publish(source, tmp / name)
            for rel in referenced_files(source):
                publish(source.parent / rel, tmp / rel)
                written.append(rel)
            written.append(name)
        for name, source in (extra or {}).items():
            publish(source, tmp / name)
            written.append(name)
        published = [tmp / dataset_file_name(i, len(kept)) for i in range(len(kept))]
        (tmp / CARD_NAME).write_text(write_card(published), encoding="utf-8")
        written.append(CARD_NAME)
    log.info("%s: %d dataset files (%d shards had no rows), %d files in all", folder, len(kept),
             len(staged) - len(kept), len(written))
    return sorted(written)
