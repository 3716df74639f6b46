"""The `merge` config block: what `snakemake merge_all` writes, whether a plain `snakemake` run writes it
too, and the keys of export_folder_pt's files. The only defaults of these settings in code.

Each merged file is one more full copy of the embeddings: a run keeps two without them (each shard's
file and its dataset file), so they are asked for, one format at a time. Standard library only: the
Snakefile reads it when it builds the DAG.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedpipe.runtime.step_settings import setting

# format → the merged files it writes (rules/common.smk's MERGED names them)
FORMAT_FILES = {"pt": ("pt",), "npy": ("npy", "index")}


@dataclass(frozen=True)
class MergeOptions:
    """The `merge` block."""

    formats: list[str] = setting(
        help="what `snakemake merge_all` writes, each a full copy of the embeddings: pt, "
             "<model>_embeddings_all.pt ({key: tensor[D]}, the EchoJEPA script's); npy, "
             "<model>_embeddings_all.npy + .keys.txt (the float32 [N, D] matrix, memory-mappable, and its row index)",
        factory=lambda: ["pt"])
    in_default_run: bool = setting(False, "a plain `snakemake` run writes them too; false: only `snakemake "
                                          "merge_all` does, and the run keeps two copies of each embedding (the "
                                          "shard file and the dataset file)")
    folder_pt_keys: str = setting("input_dir", "export_folder_pt's keys: relative to input_dir, or to the shard's "
                                               "folder (as the EchoJEPA script wrote them)")

    def files(self) -> list[str]:
        """The merged files merge_all writes, by their MERGED names, in a fixed order."""
        return [name for fmt in FORMAT_FILES if fmt in self.formats for name in FORMAT_FILES[fmt]]
