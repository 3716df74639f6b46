"""A run's config over the test video tree, and its videos linked into a new input folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from embedpipe.discover.scan import scan_files
from support.workflow import REPO


def run_config(tmp_path: Path, data: Path, model: Path, **overrides) -> tuple[str, ...]:
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config.update(run="r", input_dir=str(data), extensions=[".mp4"], metadata={"kind": "none"},
                  shards={"by": "folder", "folders": []})
    config["encoder"].update(path=str(model), batch_size=2)
    config["extract"].update(num_workers=0)
    config["validate"].update(max_error_fraction=0.5, min_effective_rank=1)
    config["demo"]["enabled"] = False
    config["upload"] = {"repo_id": "me/ds", "dry_run": True}
    config.update(overrides)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return ("--cores", "2", "--configfile", str(tmp_path / "config.yaml"))


def videos(video_tree: Path) -> list[Path]:
    return [video_tree / k for k in scan_files(video_tree, [".mp4"]) if "broken" not in k]


def link_videos(folder: Path, sources: list[Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(sources):
        (folder / f"v{i}.mp4").symlink_to(src)
