"""What a run's configuration says its rows are made with, and whether a shard on disk was made with it.

The extract job records `made_with` in each shard's footer: the encoder options that decide what a row
holds, and the content of the model files those options name (so also part of the encoder's
fingerprint, which the footer records too). When the DAG is built (rules/common.smk) and again in
validate, the configuration's own `made_with` is compared with each shard's: a shard that another
configuration wrote into the same run folder (8 frames instead of 16, other weights under the same
model name) is embedded again, never taken for this one's, whatever Snakemake's rerun triggers say.

All three compute it from the encoder block with the family's defaults filled in (`Family.options`).
"""

from __future__ import annotations

import hashlib
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
SAMPLE = 1 << 20  # bytes read from each end of a model file


def made_with(options: dict[str, Any], skip_files: Iterable[str] = ()) -> dict[str, Any]:
    """`encoder.<key>` → value for what decides a row, and `encoder.<key> content` → a digest of each model
    file or folder an option names. Model files in `skip_files` (made by a rule of the run: whether they
    are there yet must not change the result), or not there, are left out."""
    skip = {os.path.abspath(p) for p in skip_files}
    settings: dict[str, Any] = {}
    for key, value in sorted(options.items()):
        if value is None or key in SPEED_ONLY:
            continue
        if key not in MODEL_FILES:
            settings[f"encoder.{key}"] = value
        elif os.path.abspath(value) not in skip and os.path.exists(value):
            settings[f"encoder.{key} content"] = content_digest(Path(value))
        # else a rule of this run makes it (pretrain, a demo): as extract's input, Snakemake's to compare
    return settings


def content_digest(path: Path) -> str:
    """A digest of a model file, or of every file in a model folder (relative name, size, and the first
    and last MiB of each): cheap on multi-GB weights, and changed by any replacement of them."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        name = file.relative_to(path).as_posix() if path.is_dir() else ""
        size = file.stat().st_size
        digest.update(f"{name}\0{size}\0".encode())
        with open(file, "rb") as fh:
            digest.update(fh.read(SAMPLE))
            if size > 2 * SAMPLE:
                fh.seek(-SAMPLE, os.SEEK_END)
                digest.update(fh.read(SAMPLE))
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
    return "unset" if value is None else repr(value)


def shard_differences(path: str, wanted: dict[str, Any]) -> list[str]:
    """How the shard file at `path` differs from `wanted`: [] when it was made with exactly that."""
    from embedpipe.footer import read_provenance  # pyarrow: only when there is a shard to read

    try:
        recorded = read_provenance(path).get("made_with")
    except Exception as exc:  # a damaged footer: nothing says what made the rows
        return [f"its footer cannot be read ({type(exc).__name__}: {exc})"]
    return differences(recorded, wanted)


def change_stamp(shard_file: str, wanted: dict[str, Any], stamp_dir: str) -> tuple[str, list[str]] | None:
    """None while the shard file was made with `wanted`; else a stamp file in `stamp_dir` saying how it
    differs, written now (so newer than the shard: extract, given it as an input, embeds the shard again
    whatever the rerun triggers), and the differences. The stamp's name holds the shard file's mtime and
    the differences, so it is never one an earlier change left behind."""
    why = shard_differences(shard_file, wanted)
    if not why:
        return None
    stat = os.stat(shard_file)
    token = hashlib.sha256(f"{stat.st_mtime_ns}\0{stat.st_size}\0{why}".encode()).hexdigest()[:12]
    stamp = Path(stamp_dir) / f"{Path(shard_file).stem}.{token}.txt"
    if not stamp.exists():
        from embedpipe.atomic import write_text_atomic

        stamp.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(stamp, f"{shard_file} was made with other settings than this config's:\n"
                          + "".join(f"  {line}\n" for line in why))
    return str(stamp), why


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
