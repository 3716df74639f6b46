"""`none`: no dataset metadata; the row is the key and the embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedpipe.publish.kinds.kind import Kind

if TYPE_CHECKING:
    from embedpipe.publish.metadata import Joiner

# The keys are file paths of unknown origin: identifying, or not judgeable; a public upload names them.
IDENTIFYING = ("key",)


def joiner(files: dict[str, str]) -> Joiner:
    """The join reads its lists (pandas) only when a job joins rows."""
    from embedpipe.publish.kinds.none.join import KeyOnly

    return KeyOnly()


KIND = Kind(name="none", files=(), identifying=IDENTIFYING, joiner=joiner)
