"""Logging set-up and the provenance every output carries."""

from __future__ import annotations

import importlib.metadata
import logging
import sys

import embedpipe

PACKAGES = ("torch", "transformers", "decord", "soundfile", "soxr", "pyarrow", "numpy")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def package_versions() -> dict[str, str]:
    versions = {"embedpipe": embedpipe.__version__, "python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
