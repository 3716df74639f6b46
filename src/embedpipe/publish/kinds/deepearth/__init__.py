"""`deepearth`: GBIF occurrence, taxon, species and image number from DeepEarth's photo names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedpipe.publish.kinds.kind import Kind

if TYPE_CHECKING:
    from embedpipe.publish.metadata import Joiner

# GBIF occurrences and taxa name no person: the names decide (judge_keys), upload checks what the files record.
IDENTIFYING: tuple[str, ...] = ()


def joiner(files: dict[str, str]) -> Joiner:
    """The join reads its lists (pandas) only when a job joins rows."""
    from embedpipe.publish.kinds.deepearth.join import DeepEarthNames

    return DeepEarthNames()


KIND = Kind(name="deepearth", files=(), identifying=IDENTIFYING, joiner=joiner)
