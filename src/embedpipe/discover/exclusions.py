"""What discover saw and left out of the manifests, by the documented reason: the run's
`manifests/exclusions.json`, the console's summary lines and the dataset card's note."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Exclusions:
    """Every file the scan saw and did not put in a manifest, by the documented reason.

    Files with another extension are only counted (an input tree holds many: notes, CSVs); files
    that match an extension but are left out are listed by name, so none falls out of the count."""

    by_extension: Counter[str] = field(default_factory=Counter)
    companions: Counter[str] = field(default_factory=Counter)  # of by_extension: WFDB signal files beside their .hea
    hidden: list[str] = field(default_factory=list)  # dot-files: .DS_Store-like junk, AppleDouble `._x.mp4`
    hidden_folders: list[str] = field(default_factory=list)  # not entered (.git, .snapshot)
    line_breaks: list[str] = field(default_factory=list)  # a manifest holds one key per line
    not_utf8: list[str] = field(default_factory=list)  # keys are UTF-8 text; shown with \x escapes
    # listed by a dataset with '..', '.' or empty parts: such a key names a path outside what it is under
    unsafe_paths: list[str] = field(default_factory=list)
    outside_shards: list[str] = field(default_factory=list)  # in folders not listed in shards.folders
    linked_folders: list[str] = field(default_factory=list)  # links to folders below the top level: not entered
    limit: int | None = None  # a trial run's files per shard
    beyond_limit: dict[str, int] = field(default_factory=dict)  # per shard: files after the first `limit`

    def listed(self) -> int:
        return (len(self.hidden) + len(self.line_breaks) + len(self.not_utf8) + len(self.unsafe_paths)
                + len(self.outside_shards))

    def as_dict(self) -> dict[str, Any]:
        return {
            "skipped_by_extension": dict(sorted(self.by_extension.items())),
            "wfdb_companions": dict(sorted(self.companions.items())),
            "excluded": {"hidden": self.hidden, "line_breaks": self.line_breaks, "not_utf8": self.not_utf8,
                         "unsafe_paths": self.unsafe_paths, "outside_shards": self.outside_shards},
            "hidden_folders": self.hidden_folders,
            "linked_folders": self.linked_folders,
            "num_excluded": self.listed(),
            "trial": {"limit": self.limit, "beyond_limit": self.beyond_limit} if self.limit else None,
        }

    def summary(self) -> list[str]:
        """One console line per reason."""
        lines = []
        if n := sum(self.companions.values()):
            lines.append(f"skipped {n} signal and annotation files of WFDB records ({_tally(self.companions)}): "
                         "read through their .hea, not embedded on their own")
        others = self.by_extension - self.companions
        if n := sum(others.values()):
            lines.append(f"skipped {n} files: {_tally(others)} — add them to `extensions` to embed them")
        reasons = [(self.hidden, "dot-files (hidden)"), (self.line_breaks, "names with a line break"),
                   (self.not_utf8, "names that are not UTF-8"),
                   (self.unsafe_paths, "listed paths with '..', '.' or empty parts (list them without)"),
                   (self.outside_shards, "files outside the listed shards.folders")]
        for names, why in reasons:
            if names:
                lines.append(f"excluded {len(names)} {why}, e.g. {names[:3]}")
        if self.hidden_folders:
            lines.append(f"not scanned: {len(self.hidden_folders)} hidden folders, e.g. {self.hidden_folders[:5]}")
        if self.limit:
            lines.append(f"trial run: the first {self.limit} files of each shard; {sum(self.beyond_limit.values())} "
                         "more left for the full run (extract.limit)")
        if self.linked_folders:
            lines.append(f"not scanned: {len(self.linked_folders)} links to folders below the top level, e.g. "
                         f"{self.linked_folders[:5]} (link the files, or the top-level folder, instead)")
        return lines


def _tally(counts: Counter[str]) -> str:
    return ", ".join(f"{ext or '(no extension)'} {k}" for ext, k in counts.most_common())
