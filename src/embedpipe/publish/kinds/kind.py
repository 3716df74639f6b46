"""A metadata kind: the files its join reads, the columns that identify people, and the join itself.

Standard library only: rules/common.smk reads kinds when it builds the DAG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedpipe.publish.metadata import Joiner


class KindError(ValueError):
    """metadata.kind names no registered kind, or a list its join reads is not given."""


@dataclass(frozen=True)
class Kind:
    name: str
    files: tuple[str, ...]  # the metadata.<key>s naming the lists the join reads (each required)
    # Columns that identify people, known from the kind alone: a public upload must name each
    # (upload.public_identifying_columns) before any job runs.
    identifying: tuple[str, ...]
    joiner: Callable[[dict[str, str]], Joiner]  # {key: file} → the join; imports its code when called
