"""What a run's configuration says its rows are made with, and whether a shard on disk was made with it.

The extract job records `made_with` in each shard's footer: the encoder options that decide what a row
holds, and the content of the model files those options name (so also part of the encoder's
fingerprint, which the footer records too). When the DAG is built (rules/common.smk) and again in
validate, the configuration's own `made_with` is compared with each shard's: a shard that another
configuration wrote into the same run folder (8 frames instead of 16, other weights under the same
model name) is embedded again, never taken for this one's, whatever Snakemake's rerun triggers say.

The job and the DAG compute it from the encoder block with the family's defaults filled in
(`Family.options`); validate is given the DAG's.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Options that decide how fast rows are made or where, not what they hold. What they resolve to where
# it does change the numbers (the precision `auto` picks on a GPU) is in the provenance, whose shared
# fingerprint validate checks across shards.
SPEED_ONLY = frozenset({"name", "batch_size", "compile", "device"})
# Options that name model files: their content identifies the model, not where it lies (a copied or
# moved model is the same model; weights replaced under the same name are not).
MODEL_FILES = ("path", "codec_path", "stats_path")
CHUNK = 1 << 24


def made_with(options: dict[str, Any], defaults: dict[str, Any], skip_files: Iterable[str] = (),
              cache: DigestCache | None = None) -> dict[str, Any]:
    """`encoder.<key>` → value for each option that decides a row and differs from the family's default
    (so an option a new embedpipe adds, at its default, changes nothing recorded), and
    `encoder.<key> content` → a digest of each model file or folder an option names. Model files in
    `skip_files` (made by a rule of the run: whether they are there yet must not change the result), or
    not there, are left out."""
    skip = {os.path.abspath(p) for p in skip_files}
    settings: dict[str, Any] = {}
    for key, value in sorted(options.items()):
        if value is None or key in SPEED_ONLY:
            continue
        if key not in MODEL_FILES:
            if value != defaults.get(key):
                settings[f"encoder.{key}"] = value
        elif os.path.abspath(value) not in skip and os.path.exists(value):
            settings[f"encoder.{key} content"] = content_digest(Path(value), cache)
        # else a rule of this run makes it (pretrain, a demo): as extract's input, Snakemake's to compare
    return settings


class DigestCache:
    """File digests by (path, device, inode, size, mtime): a multi-GB model is read once, not at every
    DAG build. A replaced or rewritten file has another inode, size or mtime, and is read again."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        try:
            self.known: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def digest(self, file: Path) -> str:
        st = file.stat()
        key = f"{file.resolve()}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
        if key not in self.known:
            self.known[key], self.changed = file_digest(file), True
        return self.known[key]

    def save(self) -> None:
        if self.changed:
            from embedpipe.store.atomic import write_text_atomic

            write_text_atomic(self.path, json.dumps(self.known))


def file_digest(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(path: Path) -> list[Path]:
    """The files of a model folder (or the file): hidden files and folders (.git, .cache/huggingface's
    download records, locks) and __pycache__ change without the model changing."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not any(
        part.startswith(".") or part == "__pycache__" for part in p.relative_to(path).parts))


def content_digest(path: Path, cache: DigestCache | None = None) -> str:
    """A digest of a model file, or of every file of a model folder (relative name, size, content)."""
    digest = hashlib.sha256()
    for file in model_files(path):
        name = file.relative_to(path).as_posix() if path.is_dir() else ""
        content = cache.digest(file) if cache is not None else file_digest(file)
        digest.update(f"{name}\0{file.stat().st_size}\0{content}\0".encode())
    return digest.hexdigest()[:16]


def differences(recorded: dict[str, Any] | None, wanted: dict[str, Any]) -> list[str]:
    """Each setting in which a shard (`recorded`, from its footer) differs from the configuration. A model
    file's content that only the shard records (one a rule of this run makes, not there yet when the DAG
    is built) is Snakemake's to compare: that rule's output is extract's input."""
    if recorded is None:
        return ["no settings recorded (written by an earlier embedpipe)"]
    keys = sorted(wanted.keys() | {k for k in recorded if not k.endswith(" content")})
    return [f"{key}: {_shown(recorded.get(key))} in the shard, {_shown(wanted.get(key))} in this config"
            for key in keys if recorded.get(key) != wanted.get(key)]


def _shown(value: Any) -> str:
    return "the default" if value is None else repr(value)  # made_with leaves out what is at its default


def shard_differences(path: str, wanted: dict[str, Any]) -> list[str]:
    """How the shard file at `path` differs from `wanted`: [] when it was made with exactly that."""
    from embedpipe.store.footer import read_provenance  # pyarrow: the caller checks it can be imported

    try:
        recorded = read_provenance(path).get("made_with")
    except Exception as exc:  # a damaged footer: nothing says what made the rows
        return [f"its footer cannot be read ({type(exc).__name__}: {exc})"]
    return differences(recorded, wanted)


def stamp_path(stamp_dir: str, shard: str) -> str:
    """The shard's one stamp: a fixed name (a digest of any shard id), so extract's input list never
    changes and Snakemake's input trigger never fires on it."""
    return os.path.join(stamp_dir, hashlib.sha1(shard.encode()).hexdigest()[:16] + ".txt")


FILES_CHANGED = "its files changed since it was embedded (the manifest differs)"


def keys_digest(keys: Iterable[str]) -> str:
    """What a shard records of the manifest it was embedded from (`manifest_sha1`)."""
    digest = hashlib.sha1()
    for key in keys:
        digest.update(f"{key}\n".encode())
    return digest.hexdigest()


def manifest_changed(shard_file: str, manifest: str) -> bool:
    """The shard's files are no longer its manifest's. By content: the digest the shard recorded against
    the manifest's now. Snakemake cannot tell: discover's outputs get a new mtime even when unchanged,
    and a manifest past 1 MB (some 20,000 files) is not checksummed, so under mtime every shard would be
    embedded again after a rescan. A shard made before shards recorded it: its row and error keys
    against the manifest's (its key columns read, as validate reads them)."""
    from embedpipe.store.footer import read_provenance

    with open(manifest, encoding="utf-8") as fh:
        keys = [line.rstrip("\n") for line in fh if line.strip()]
    if (recorded := read_provenance(shard_file).get("manifest_sha1")) is not None:
        return recorded != keys_digest(keys)
    import pyarrow.parquet as pq

    errors = shard_file.removesuffix(".parquet") + ".errors.parquet"
    held = [key for f in (shard_file, errors) if os.path.exists(f)
            for key in pq.read_table(f, columns=["key"]).column("key").to_pylist()]
    return sorted(held) != sorted(keys)


def update_stamp(stamp: str, shard_file: str, wanted: dict[str, Any] | None, manifest: str | None = None) -> list[str]:
    """Keep `stamp` older than the shard file while that was made with `wanted` from `manifest`'s files
    (set to the epoch when missing or not older); else rewrite it now, saying how the shard differs, so
    that extract, given it as an input, embeds the shard again whatever the rerun triggers. Returns the
    differences (FILES_CHANGED among them when the manifest changed). `wanted` None: nothing to compare
    with (the footers cannot be read), the stamp only made to exist."""
    from embedpipe.store.atomic import write_text_atomic

    compared = wanted is not None and os.path.exists(shard_file)
    why = shard_differences(shard_file, wanted) if compared else []
    if compared and not why and manifest and os.path.exists(manifest) and manifest_changed(shard_file, manifest):
        why = [FILES_CHANGED]
    if why:
        write_text_atomic(stamp, f"{shard_file} is out of date:\n"
                          + "".join(f"  {line}\n" for line in why))
    elif not os.path.exists(stamp) or (compared and os.stat(stamp).st_mtime_ns >= os.stat(shard_file).st_mtime_ns):
        # missing, or left newer than the shard by a dry run of another config: never a reason to rerun
        write_text_atomic(stamp, f"{shard_file}: made with this config's settings when last looked at\n")
        os.utime(stamp, (0, 0))
    return why


def model_problems(recorded: dict[str, tuple[dict[str, Any] | None, str | None]],
                   wanted: dict[str, Any] | None) -> list[str]:
    """validate's check: shard → (its footer's made_with, fingerprint). Each shard made with `wanted` (the
    config's; None: not given) and all of them sharing one fingerprint (model, weights, preprocessing, and
    what the job resolved, such as the precision `auto` picked), else one line per problem."""
    problems = []
    if wanted is not None:
        for shard, (made, _) in recorded.items():
            if why := differences(made, wanted):
                problems.append(f"{shard}: {'; '.join(why)}")
    fingerprints: dict[str | None, list[str]] = {}
    for shard, (_, fingerprint) in recorded.items():
        fingerprints.setdefault(fingerprint, []).append(shard)
    if len(fingerprints) > 1:
        common = max(fingerprints, key=lambda f: len(fingerprints[f]))
        odd = [f"{shards[0]} ({fingerprint or 'none recorded'})" for fingerprint, shards in fingerprints.items()
               if fingerprint != common]
        problems.append(f"fingerprints differ: {len(fingerprints[common])} shard(s) have {common or 'none recorded'}, "
                        f"but {', '.join(odd)}")
    return problems
