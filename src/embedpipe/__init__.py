"""embedpipe: media files in, foundation-model embedding datasets out.

`embedpipe.embed(paths, encoder=..., **options)` embeds files from Python (embedpipe/api.py); it is
imported on first use, so that the workflow's start-up (which imports small parts of the package)
never loads torch.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("embed", "Embedded"):
        from embedpipe import api

        return getattr(api, name)
    raise AttributeError(f"module 'embedpipe' has no attribute {name!r}")
