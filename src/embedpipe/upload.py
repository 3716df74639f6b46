"""Publishing the dataset folder and its card to the Hugging Face Hub, private unless asked otherwise.

What is pushed is exactly the file list the dataset step wrote beside the folder
(`<results_dir>/<run>/dataset.files.json`): every listed file must be a regular file inside the
folder, not a link, with the listed size, and the folder must hold nothing else. A public upload
of columns that identify people needs the config to name each of them.

The token is huggingface_hub's own: HF_TOKEN or the login cache (`hf auth login`). It is never read
from the config, never passed on a command line and never logged.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from embedpipe.atomic import write_text_atomic
from embedpipe.hub_configs import FOLDER, ConfigClash, config_name_of, folder_configs, merged_root_card
from embedpipe.identifying import recorded_identifying, refusal, unacknowledged

log = logging.getLogger(__name__)
CARD = "README.md"
# fnmatch reads these as patterns, and allow_patterns must match exactly the listed paths.
PATTERN_CHARS = set("*?[]\\")


KEEP_REMOTE = {".gitattributes"}  # the Hub's own file, made with the repo


class UploadRefused(RuntimeError):
    """The upload would break a rule (visibility, credentials, files, identifying columns); nothing was sent."""


class UnsafeFile(ValueError):
    """A file list entry that is not a plain file of the folder, or a folder holding more than its list."""


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


def _check_name(rel: Any) -> str:
    if not isinstance(rel, str) or not rel:
        raise UnsafeFile(f"{rel!r}: not a file path")
    parts = PurePosixPath(rel).parts
    if rel.startswith("/") or PurePosixPath(rel).is_absolute():
        raise UnsafeFile(f"{rel}: an absolute path; the list names files relative to the folder")
    if ".." in parts:
        raise UnsafeFile(f"{rel}: goes up with '..'")
    if PATTERN_CHARS & set(rel) or PurePosixPath(rel).as_posix() != rel:
        raise UnsafeFile(f"{rel}: not a plain relative path (pattern characters, '.', '//' or a backslash)")
    return rel


def regular_file_size(root: Path, rel: str) -> int:
    """Size of `root/rel`, a regular file inside root reached through no link; raises UnsafeFile."""
    path = root
    for part in PurePosixPath(_check_name(rel)).parts:
        path = path / part
        if path.is_symlink():
            what = "is a symlink" if path == root / rel else f"has a symlinked parent ({path.relative_to(root)})"
            raise UnsafeFile(f"{rel}: {what}; only files the workflow wrote are uploaded")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UnsafeFile(f"{rel}: listed but not in {root}") from None
    if not path.resolve().is_relative_to(root):
        raise UnsafeFile(f"{rel}: resolves outside {root}")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{rel}: not a regular file")
    return st.st_size


def folder_contents(root: Path) -> set[str]:
    """Every file and link under root, relative to it; links are listed, never followed."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        links = [d for d in dirnames if (base / d).is_symlink()]
        found |= {(base / n).relative_to(root).as_posix() for n in [*filenames, *links]}
    return found


def write_file_list(folder: Path, files: list[str], out: Path) -> None:
    """Record the files the dataset step wrote into `folder` (paths relative to it) and their sizes,
    atomically. Refuses (UnsafeFile) an entry that upload would refuse."""
    root = folder.resolve(strict=True)
    entries = [{"path": rel, "bytes": regular_file_size(root, rel)} for rel in sorted(set(files))]
    # `folder` as given, relative or not: upload runs from the same working directory, and a run folder
    # copied or moved whole keeps pointing at its own dataset folder.
    write_text_atomic(out, json.dumps({"folder": str(folder), "files": entries}, indent=2) + "\n")


def read_file_list(path: str | os.PathLike) -> tuple[Path, dict[str, int]]:
    """(folder, {relative path: bytes}) from a file list; raises UnsafeFile on a malformed one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        folder, entries = Path(data["folder"]), data["files"]
        listed = [(e["path"], e["bytes"]) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnsafeFile(f"{path}: not a dataset file list ({exc})") from None
    sizes: dict[str, int] = {}
    for rel, size in listed:
        if _check_name(rel) in sizes:
            raise UnsafeFile(f"{rel}: listed twice in {path}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UnsafeFile(f"{rel}: size {size!r} is not a byte count")
        sizes[rel] = size
    return folder, sizes


def verify_folder(folder: Path, sizes: dict[str, int]) -> Path:
    """The folder holds exactly the listed files, each a regular file of the listed size. Returns it resolved
    (the folder itself may sit behind a link, e.g. results/ on a scratch filesystem)."""
    try:
        root = folder.resolve(strict=True)
    except OSError:
        raise UnsafeFile(f"{folder}: the dataset folder the file list names does not exist") from None
    for rel, size in sizes.items():
        if (actual := regular_file_size(root, rel)) != size:
            raise UnsafeFile(f"{rel}: {actual} bytes, but the file list says {size}; rebuild the dataset folder")
    if extra := sorted(folder_contents(root) - set(sizes)):
        raise UnsafeFile(f"{extra[0]}: in {folder} but not in the file list ({len(extra)} such); the folder must "
                         "hold exactly this run's files")
    return root


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
    # allow_patterns is the checked list itself (no pattern characters in it), so nothing else matches.
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
    commit = api.upload_folder(
        repo_id=plan.repo_id, repo_type="dataset", folder_path=plan.folder, path_in_repo=plan.path_in_repo,
        allow_patterns=list(plan.files), delete_patterns=stale or None,
        commit_message=f"embedpipe: {len(plan.files)} files" + (f" into {prefix}" if prefix else ""),
    )
    if root_card is not None:
        commit = api.upload_file(path_or_fileobj=root_card.encode(), path_in_repo=CARD, repo_id=plan.repo_id,
                                 repo_type="dataset", commit_message=f"embedpipe: config {plan.config_name}")
    return {**plan.as_dict(), "private": bool(info.private), "url": str(url), "commit": commit.oid,
            "removed": stale}
