"""DeepEarth's join: the ids its photo names hold."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa

from embedpipe.publish.metadata import ListedIdentifying

DEEPEARTH_FIELDS = [
    pa.field("file_path", pa.string()),
    pa.field("gbif_id", pa.int64()),
    pa.field("taxon_id", pa.int64()),
    pa.field("species", pa.string()),
    pa.field("image_number", pa.int32()),
    pa.field("image_id", pa.string()),
]
# gbif_{gbif_id}_taxon_{taxon_id}_{species}_img_{n}, optionally with DeepEarth's _features suffix
_DEEPEARTH = re.compile(r"^gbif_(\d+)_taxon_(\d+)_(.+)_img_(\d+)(?:_features)?$")
_TAXON_DIR = re.compile(r"^taxon_(\d+)$")
# The same names with a species of letters only: nothing else in the path to judge
_DEEPEARTH_JUDGED = re.compile(r"^gbif_\d+_taxon_\d+_[A-Za-z][A-Za-z_-]*_img_\d+(?:_features)?$")


def parse_deepearth_name(key: str) -> dict[str, Any]:
    """Ids from a DeepEarth file name; a name outside the convention keeps only its taxon folder's id."""
    path = PurePosixPath(key)
    stem = path.name.split(".")[0]
    row: dict[str, Any] = {"file_path": key, "gbif_id": None, "taxon_id": None, "species": None,
                           "image_number": None, "image_id": stem}
    if m := _DEEPEARTH.match(stem):
        row |= {"gbif_id": int(m.group(1)), "taxon_id": int(m.group(2)), "species": m.group(3),
                "image_number": int(m.group(4))}
    elif folder := next((m for p in path.parts[:-1] if (m := _TAXON_DIR.match(p))), None):
        row["taxon_id"] = int(folder.group(1))
    return row


class DeepEarthNames(ListedIdentifying):
    """DeepEarth photos: GBIF occurrence, taxon, species and image number from each file's name."""

    fields = DEEPEARTH_FIELDS
    identifying: tuple[str, ...] = ()  # GBIF occurrences and taxa name no person
    kind, naming = "deepearth", "gbif_<id>_taxon_<id>_<species>_img_<n>.<ext>"

    @staticmethod
    def parses(key: str) -> bool:
        return parse_deepearth_name(key)["gbif_id"] is not None

    @staticmethod
    def judges(key: str) -> bool:
        """The whole path is DeepEarth's and names no one: taxon folders only, a species of letters."""
        path = PurePosixPath(key)
        return (all(_TAXON_DIR.match(part) for part in path.parts[:-1])
                and _DEEPEARTH_JUDGED.match(path.name.split(".")[0]) is not None)

    def __init__(self) -> None:
        self.matched_records = self.matched_studies = 0

    def rows(self, keys: list[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {f.name: [] for f in DEEPEARTH_FIELDS}
        for key in keys:
            row = parse_deepearth_name(key)
            self.matched_records += row["gbif_id"] is not None
            for name, value in row.items():
                out[name].append(value)
        return out
