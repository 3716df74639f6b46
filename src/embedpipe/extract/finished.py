"""The finished shard, kept beside its parts folder, so that losing the outputs never means embedding again.

Snakemake deletes the outputs of a job that did not end well: one killed after it wrote its shard
and removed its parts, or one whose success Snakemake never saw (it was stopped, or the node went
down, before it noticed). Before the parts are removed, the outputs are hard-linked into
`<parts_dir>.finished/` with what they were made from: the encoder's fingerprint, the manifest's
digest, the input folder (its real path) and every input file's size and modification time. A rerun
for which all of them match puts the outputs back from there without loading the model. The links
cost no space while the outputs exist; a copy that no longer matches, or that lost a file, is
removed by the rerun that finds it, and the shard is embedded as usual.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from embedpipe.store.atomic import remove_staged_leftovers, remove_stale_tmp_of, staged_dir
from embedpipe.store.sidecar import publish, referenced_files

log = logging.getLogger(__name__)
RECORD = "finished.json"


def finished_dir(parts_dir: Path) -> Path:
    return parts_dir.with_name(f"{parts_dir.name}.finished")


def manifest_digest(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def input_stamp(input_root: Path, keys: list[str]) -> dict[str, str]:
    """What the input files were: the real path of the input folder, and a digest of each file's key,
    size and modification time. Key names alone match another input_dir with the same layout, or a
    file replaced under its name; a stat per file costs far less than the decode it guards."""
    digest = hashlib.sha256()
    for key in keys:
        try:
            st = os.stat(input_root / key)
            fact = f"{st.st_size}\0{st.st_mtime_ns}"
        except OSError as exc:  # unreadable or gone: an error row, its cause part of the stamp
            fact = f"missing {exc.errno}"
        digest.update(f"{key}\0{fact}\n".encode())
    return {"input_dir": os.path.realpath(input_root), "inputs_sha256": digest.hexdigest()}


def keep_finished(parts_dir: Path, fingerprint: str, keys: list[str], shard: Path, errors: Path,
                  inputs: dict[str, str]) -> Path | None:
    """Hard-link the finished outputs into the finished copy; `inputs` is input_stamp() taken before
    the files were read. None where links are impossible (another filesystem): a copy would double
    the shard's size on disk, so there is none."""
    dest = finished_dir(parts_dir)
    remove_staged_leftovers(dest)
    files = referenced_files(shard)
    try:
        with staged_dir(dest) as staging:
            for rel in files:
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(shard.parent / rel, staging / rel)
            os.link(errors, staging / errors.name)
            os.link(shard, staging / shard.name)
            record = {"fingerprint": fingerprint, "manifest_sha256": manifest_digest(keys), "num_files": len(keys),
                      "shard": shard.name, "errors": errors.name, "sidecar_files": files, **inputs}
            (staging / RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
    except OSError as exc:
        log.warning("could not hard-link the finished shard into %s (%s); a rerun after its outputs are "
                    "deleted embeds it again", dest, exc.strerror or exc)
        return None
    return dest


def restore_finished(parts_dir: Path, fingerprint: str, keys: list[str], shard: Path, errors: Path,
                     inputs: dict[str, str]) -> Path | None:
    """Put the finished copy's outputs at `shard` and `errors` if it was made from this encoder,
    manifest and input files (`inputs`: input_stamp()) and holds all of them; a copy that was not, or
    does not, is removed. Returns the copy's folder when it restored."""
    source = finished_dir(parts_dir)
    remove_staged_leftovers(source)
    try:
        record = json.loads((source / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        record = {}  # not a record this module wrote: removed below as not matching
    if why := _mismatch(source, record, fingerprint, keys, shard, errors, inputs):
        log.info("removing %s: %s; the shard is embedded again", source, why)
        shutil.rmtree(source)
        return None
    for rel in record.get("sidecar_files", []):
        publish(source / rel, shard.parent / rel)
    for name, dest in ((errors.name, errors), (shard.name, shard)):  # the shard file last: it marks a whole shard
        remove_stale_tmp_of(dest)
        publish(source / name, dest)
        os.utime(dest)  # as new as this job: Snakemake would take an output older than its inputs as out of date
    return source


def _mismatch(source: Path, record: dict[str, Any], fingerprint: str, keys: list[str], shard: Path, errors: Path,
              inputs: dict[str, str]) -> str:
    """Why the copy in `source` cannot stand for this run's shard; empty when it can."""
    wanted = {"fingerprint": fingerprint, "manifest_sha256": manifest_digest(keys), "shard": shard.name,
              "errors": errors.name}
    if any(record.get(k) != v for k, v in wanted.items()):
        return "made with another model, preprocessing or file list"
    if record.get("input_dir") != inputs["input_dir"]:
        return f"made from another input_dir ({record.get('input_dir')}, not {inputs['input_dir']})"
    if record.get("inputs_sha256") != inputs["inputs_sha256"]:
        return "made from other input files (a size or modification time changed since)"
    # Checked before anything is published: a missing file would fail the restore on every rerun.
    missing = [name for name in (shard.name, errors.name, *record.get("sidecar_files", []))
               if not (source / name).is_file()]
    if missing:
        return f"incomplete ({len(missing)} of its files missing, {missing[0]} first)"
    return ""
