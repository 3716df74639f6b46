"""Publishing the dataset folder and its card to the Hugging Face Hub, private unless asked otherwise.

What is pushed is exactly the file list the parquet rule wrote beside the folder
(`<results_dir>/<run>/dataset.files.json`): every listed file must be a regular file inside the
folder, not a link, with the listed size, and the folder must hold nothing else. A public upload
of columns that identify people needs the config to name each of them.

The token is huggingface_hub's own: HF_TOKEN or the login cache (`hf auth login`). It is never read
from the config, never passed on a command line and never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedpipe.publish.file_list import UnsafeFile, read_file_list, verify_folder
from embedpipe.publish.hub_configs import FOLDER, ConfigClash, config_name_of, folder_configs, merged_root_card
from embedpipe.publish.identifying import recorded_identifying, refusal, unacknowledged

log = logging.getLogger(__name__)
CARD = "README.md"


KEEP_REMOTE = {".gitattributes"}  # the Hub's own file, made with the repo


class UploadRefused(RuntimeError):
    """The upload would break a rule (visibility, credentials, files, identifying columns); nothing was sent."""


@dataclass
class UploadPlan:
    repo_id: str
    folder: Path
    public: bool
    credentialed: bool
    sizes: dict[str, int]  # the file list: path relative to the folder → bytes
    identifying: list[str] = field(default_factory=list)
    path_in_repo: str | None = None  # a model's folder in a repo of several (hub_configs.py); None: the root
    config_name: str | None = None  # its config in the root card

    @property
    def files(self) -> list[str]:
        return sorted(self.sizes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id, "repo_type": "dataset", "private": not self.public,
            "identifying_columns": self.identifying, "path_in_repo": self.path_in_repo,
            "config_name": self.config_name,
            "files": [{"path": f, "bytes": self.sizes[f]} for f in self.files],
        }


def plan_upload(file_list: Path, repo_id: str | None, public: bool, credentialed: bool,
                acknowledged: Iterable[str] = (), path_in_repo: str | None = None,
                config_name: str | None = None) -> UploadPlan:
    """What would be pushed; raises UploadRefused before anything is sent."""
    if not repo_id or "/" not in repo_id:
        raise UploadRefused(f"upload.repo_id: {repo_id!r} is not a '<user or org>/<name>' dataset id")
    if path_in_repo is not None and not FOLDER.fullmatch(path_in_repo):
        raise UploadRefused(f"upload.path_in_repo: {path_in_repo!r} is not a relative folder name (letters, digits, "
                            "'.', '_', '-', and '/' between parts)")
    if public and credentialed:
        raise UploadRefused(
            "upload.public is true but dataset.credentialed is true: embeddings of credentialed data "
            "(e.g. MIMIC under the PhysioNet data use agreement) are only uploaded to a private repository"
        )
    try:
        folder, sizes = read_file_list(file_list)
        root = verify_folder(folder, sizes)
    except UnsafeFile as exc:
        raise UploadRefused(str(exc)) from None
    files = sorted(sizes)
    if CARD not in files or not any(f.endswith(".parquet") for f in files):
        raise UploadRefused(f"{file_list} must list README.md and train-*.parquet; it lists {files}")
    present, unrecorded = recorded_identifying(root / f for f in files if f.endswith(".parquet"))
    if public and unrecorded:
        raise UploadRefused(f"{unrecorded[0]} records no identifying columns (written by an older embedpipe): "
                            "rebuild the dataset before a public upload")
    if public and (missing := unacknowledged(present, acknowledged)):
        raise UploadRefused(refusal(missing))
    return UploadPlan(repo_id, root, public, credentialed, sizes, present, path_in_repo,
                      config_name_of(path_in_repo, config_name) if path_in_repo else None)


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
    # The repo must end up holding this run's files only, as the local folder does: an earlier upload's
    # shard files (another shard count, another numbering) would be read by the card's train-*.parquet.
    # Into a model's folder: only that folder is this run's, and the root card gets its config.
    remote = set(api.list_repo_files(plan.repo_id, repo_type="dataset"))
    prefix = f"{plan.path_in_repo}/" if plan.path_in_repo else ""
    ours = {f[len(prefix):] for f in remote if f.startswith(prefix)} if prefix else remote - KEEP_REMOTE
    stale = sorted(ours - set(plan.files))
    root_card = None
    existing = (Path(api.hf_hub_download(plan.repo_id, CARD, repo_type="dataset")).read_text(encoding="utf-8")
                if CARD in remote else None)
    if not plan.path_in_repo and (models := folder_configs(existing)):
        raise UploadRefused(f"{plan.repo_id} holds several models in folders (configs {', '.join(models)}): an upload "
                            "to its root would delete them; set upload.path_in_repo (and upload.config_name). "
                            "Nothing pushed")
    if plan.path_in_repo:
        try:
            root_card = merged_root_card(existing, (plan.folder / CARD).read_text(encoding="utf-8"),
                                         plan.path_in_repo, plan.config_name, plan.repo_id)
        except ConfigClash as exc:
            raise UploadRefused(f"upload.config_name: {exc}; nothing pushed") from None
    if stale:
        log.info("removing %d files of an earlier upload from %s/%s: %s", len(stale), plan.repo_id, prefix, stale[:5])
    # Linear in files: the folder is checked again, now, to hold exactly the listed files, so the whole
    # folder goes, and "*" removes every other file under the prefix (huggingface_hub keeps the files
    # being added, and .gitattributes). The list itself as allow_patterns (and the stale files as
    # delete_patterns) made huggingface_hub match each file against each pattern: 79 s at 16,000 files.
    try:
        verify_folder(plan.folder, plan.sizes)
    except UnsafeFile as exc:
        raise UploadRefused(f"{exc}; nothing pushed") from None
    commit = api.upload_folder(
        repo_id=plan.repo_id, repo_type="dataset", folder_path=plan.folder, path_in_repo=plan.path_in_repo,
        delete_patterns="*" if stale else None,
        commit_message=f"embedpipe: {len(plan.files)} files" + (f" into {prefix}" if prefix else ""),
    )
    if root_card is not None:
        commit = api.upload_file(path_or_fileobj=root_card.encode(), path_in_repo=CARD, repo_id=plan.repo_id,
                                 repo_type="dataset", commit_message=f"embedpipe: config {plan.config_name}")
    return {**plan.as_dict(), "private": bool(info.private), "url": str(url), "commit": commit.oid,
            "removed": stale}
