"""Publishing the Parquet folder and its card to the Hugging Face Hub, private unless asked otherwise.

The token is huggingface_hub's own: HF_TOKEN or the login cache (`hf auth login`). It is never read
from the config, never passed on a command line and never logged.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
# Image tokens travel beside the rows: tokens/train-0000i-of-0000N/part-*.safetensors
UPLOAD_PATTERNS = ["train-*.parquet", "README.md", "*/train-*/part-*.safetensors"]


class UploadRefused(RuntimeError):
    """The upload would break a rule (visibility, credentials); nothing was sent."""


@dataclass
class UploadPlan:
    repo_id: str
    folder: Path
    public: bool
    credentialed: bool
    files: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id, "repo_type": "dataset", "private": not self.public,
            "files": [{"path": f, "bytes": (self.folder / f).stat().st_size} for f in self.files],
        }


def plan_upload(folder: Path, repo_id: str | None, public: bool, credentialed: bool) -> UploadPlan:
    """What would be pushed; raises UploadRefused before anything is sent."""
    if not repo_id or "/" not in repo_id:
        raise UploadRefused(f"upload.repo_id: {repo_id!r} is not a '<user or org>/<name>' dataset id")
    if public and credentialed:
        raise UploadRefused(
            "upload.public is true but dataset.credentialed is true: embeddings of credentialed data "
            "(e.g. MIMIC under the PhysioNet data use agreement) are only uploaded to a private repository"
        )
    files = sorted(rel for p in folder.rglob("*")
                   if p.is_file() and any(fnmatch.fnmatch(rel := p.relative_to(folder).as_posix(), pat)
                                          for pat in UPLOAD_PATTERNS))
    if "README.md" not in files or not any(f.endswith(".parquet") for f in files):
        raise UploadRefused(f"{folder} must hold README.md and train-*.parquet; found {files}")
    return UploadPlan(repo_id, folder, public, credentialed, files)


def require_token() -> None:
    from huggingface_hub import get_token

    if not get_token():
        raise UploadRefused("no Hugging Face token: set HF_TOKEN in the environment or run `hf auth login`")


def upload(plan: UploadPlan) -> dict[str, Any]:
    """Create the repo (private unless plan.public), check its visibility, push; returns a receipt."""
    from huggingface_hub import HfApi

    require_token()
    api = HfApi()
    url = api.create_repo(plan.repo_id, repo_type="dataset", private=not plan.public, exist_ok=True)
    info = api.dataset_info(plan.repo_id)
    # An existing repo keeps its visibility: never push private-by-config data into a public repo.
    if not plan.public and not info.private:
        raise UploadRefused(f"{plan.repo_id} exists and is public, but upload.public is false: nothing pushed. "
                            "Make the repository private on the Hub, or choose another upload.repo_id")
    if plan.credentialed and not info.private:
        raise UploadRefused(f"{plan.repo_id} is public and the dataset is credentialed: nothing pushed")
    log.info("uploading %d files to %s (%s)", len(plan.files), plan.repo_id,
             "private" if info.private else "public")
    # Resumable: in huggingface_hub 2, upload_folder took over upload_large_folder's job (hf_xet streams,
    # deduplicates and commits in batches); a rerun skips files already committed with the same content.
    commit = api.upload_folder(
        repo_id=plan.repo_id, repo_type="dataset", folder_path=plan.folder, allow_patterns=plan.files,
        commit_message=f"embedpipe: {len(plan.files)} files",
    )
    return {**plan.as_dict(), "private": bool(info.private), "url": str(url), "commit": commit.oid}
