"""The extract step: one shard, from its manifest to `<shard>.parquet` + `<shard>.errors.parquet`.

`ExtractStep(settings).run()` does it in this order, each once: lock the shard's parts, claim a GPU
slot (before anything asks torch.cuda: CUDA reads CUDA_VISIBLE_DEVICES once, on first use), build
the encoder for the resolved device, restore a finished copy or embed what no part holds yet, then
assemble the shard. The executor loop is extract.run_extract; the script only parses arguments.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedpipe.discover.scan import read_manifest, shard_keys, trial_keys
from embedpipe.encoders import OptionError, build_encoder, family
from embedpipe.encoders.device import resolve_device
from embedpipe.encoders.errors import ModelFileError, ModelLoadError
from embedpipe.encoders.roles import Encoder
from embedpipe.extract import gpu_slots
from embedpipe.extract.finished import input_stamp, keep_finished, restore_finished
from embedpipe.extract.gpu_report import NoGpu, require_gpu
from embedpipe.extract.loop import ModelFailure, auto_workers, run_extract
from embedpipe.extract.progress_report import ProgressReport, errors_in_parts
from embedpipe.extract.reuse import Previous, keep_previous, reuse_previous
from embedpipe.extract.settings import ExtractOptions
from embedpipe.extract.writer import ShardWriter
from embedpipe.readers.limits import set_max_decoded_gb
from embedpipe.runtime.decode_guard import kill_leftover_children
from embedpipe.runtime.error_text import error_fields
from embedpipe.runtime.runinfo import HUB_TOKEN_VARS, package_versions
from embedpipe.runtime.shard_lock import ShardBusy, shard_lock
from embedpipe.runtime.stop import StopRequest
from embedpipe.store.atomic import OutputWriteError
from embedpipe.store.file_identity import identity_fields
from embedpipe.store.made_with import keys_digest, made_with
from embedpipe.store.progress import FAILED, FINISHED, STOPPED, progress_path_of_parts

log = logging.getLogger("extract")
SLOT_WAIT_S = 6 * 3600  # a job started beyond the GPU count waits for a slot rather than sharing one


@dataclass(frozen=True, kw_only=True)
class ExtractSettings(ExtractOptions):
    """The `extract` block (ExtractOptions) and what the job itself is given: the shard, the files, the model."""

    encoder: str  # the family
    options: dict[str, Any]  # the config's encoder block (the family checks it)
    input_dir: Path
    shard: str
    output: Path
    errors: Path
    parts_dir: Path
    manifest: Path | None = None  # None: scan <input_dir>/<shard> for `extensions` (by hand)
    extensions: list[str] = field(default_factory=lambda: [".mp4"])
    threads: int | None = None  # the CPUs the job was given: auto workers are these - 1
    keep_parts: bool = False


class ExtractStep:
    def __init__(self, settings: ExtractSettings) -> None:
        self.s = settings
        self.stop = StopRequest()
        # results/<run>/progress/<shard>.json, written once this job holds the shard (`status` reads it)
        self.progress = ProgressReport(progress_path_of_parts(settings.parts_dir, settings.shard), settings.shard)

    def keys(self) -> list[str]:
        s = self.s
        if s.manifest:  # discover's list, a trial's already; a limit given by hand cuts it too
            return trial_keys(read_manifest(s.manifest), s.limit)
        return shard_keys(s.input_dir, s.shard, s.extensions, s.limit)

    def run(self) -> int:
        """The exit status: 0 done, 1 a one-line error (logged), 128 + signal when stopped."""
        try:
            # The options first (no torch, no files: the model files are checked when it is built, by
            # check_model_path, which says what the path holds): a bad one fails now, not after a GPU wait.
            fam = family(self.s.encoder)
            fam.check(fam.options(self.s.options), files=False)
            with shard_lock(self.s.parts_dir, self.s.shard):  # before anything reads or tidies the parts
                return self._run(self.keys())
        except (ShardBusy, OptionError, ModelFileError, ModelFailure, NoGpu) as exc:
            log.error("%s", exc)
            self.progress.end(FAILED, str(exc))  # not ShardBusy's: the job holding the shard owns its record
            return 1
        except OutputWriteError as exc:
            # A full disk or quota: say so in one line and how to go on, rather than in a traceback.
            log.error("%s. Parts already written are kept in %s; free space and rerun: it resumes from them.",
                      exc.strerror, self.s.parts_dir)
            self.progress.end(FAILED, f"{exc.strerror}: {exc.filename or self.s.parts_dir}")
            return 1
        except Exception as exc:  # the traceback is the log's; the record says it in one line
            self.progress.end(FAILED, ": ".join(error_fields(exc)))
            raise
        finally:
            # A decode worker still alive here would be joined forever by multiprocessing at exit.
            if left := kill_leftover_children():
                log.warning("killed %d decode worker(s) still alive at the end of the job", left)
            self.stop.restore()

    def _run(self, keys: list[str]) -> int:
        s, stop = self.s, self.stop.install()
        self.progress.begin(len(keys))
        device_name = s.options.get("device", "auto")
        if gpu_slots.wants_slot(s.gpu_slots, device_name):
            # Held until this process exits, however it exits.
            slot = gpu_slots.claim_gpu(gpu_slots.parse_slots(s.gpu_slots),
                                       Path(s.gpu_lock_dir) if s.gpu_lock_dir else None, timeout_s=SLOT_WAIT_S,
                                       stopped=lambda: bool(stop))
            if slot is None:
                log.warning("stopped by signal %d while waiting for a GPU slot", stop.signum)
                self.progress.end(STOPPED, f"stopped by signal {stop.signum} while waiting for a GPU slot")
                return 128 + stop.signum
            log.info("shard %s runs on GPU %s (slot %d)", s.shard, slot.device, slot.index)
        if "SLURM_JOB_ID" in os.environ:  # whether the submission kept the Hub token off this node
            if held := [v for v in HUB_TOKEN_VARS if v in os.environ]:
                log.warning("%s is in this SLURM job's environment: only the upload needs it (submit with "
                            "embedpipe's Snakefile, which keeps it out)", " and ".join(held))
            else:
                log.info("no Hugging Face token in this SLURM job's environment")
        if s.require_gpu:
            require_gpu(str(device_name))  # after the slot: it sets the one GPU this job may see
        encoder = self.build(resolve_device(device_name))
        inputs = input_stamp(s.input_dir, keys)  # before any file is read: what this run embeds
        if restored := restore_finished(s.parts_dir, encoder.fingerprint(), keys, s.output, s.errors, inputs):
            # A run that finished once: its outputs were deleted (a kill Snakemake saw as a failure).
            log.info("shard %s: restored its finished outputs from %s (same model, preprocessing and files); "
                     "0 files embedded", s.shard, restored)
            if s.parts_dir.is_dir():  # a kill while the parts were being removed
                ShardWriter(s.parts_dir, encoder.output_fields(), encoder.fingerprint()).remove_parts()
            self.progress.end(FINISHED, done=len(keys))
            return 0
        # Each row records its file's size and modification time: what a later run reuses it by (reuse.py).
        writer = ShardWriter(s.parts_dir, encoder.output_fields() + identity_fields(), encoder.fingerprint(),
                             s.save_every, part_bytes=s.part_mb << 20, sidecar=encoder.output.sidecar,
                             assemble_bytes=s.assemble_memory_mb << 20)
        self.reuse(keys, encoder, writer)
        device = encoder.model.device
        workers = auto_workers(s.threads) if s.num_workers == "auto" else int(s.num_workers)
        set_max_decoded_gb(s.max_decoded_gb)
        log.info("shard %s: %d files; %s %s on %s, batch %d, %d decode workers", s.shard, len(keys), s.encoder,
                 s.options.get("model"), device, encoder.batch_size, workers)
        try:
            run_extract(keys, s.input_dir, encoder, writer, shard=s.shard, device=device, num_workers=workers,
                        log_every=s.log_every, stop=stop, decode_timeout_s=s.decode_timeout_s,
                        progress=self.progress)
        except ModelLoadError as exc:
            raise family(s.encoder).model_error(s.options.get("path"), s.options.get("model"), exc) from exc
        if stop:
            log.warning("stopped by signal %d after flushing the current part; rerun to resume", stop.signum)
            self.progress.end(STOPPED, f"stopped by signal {stop.signum} after flushing the current part")
            return 128 + stop.signum
        return self.finalize(keys, encoder, writer, inputs)

    def reuse(self, keys: list[str], encoder: Encoder, writer: ShardWriter) -> None:
        """Rows of the shard's previous version for files unchanged since, as parts (reuse.py), and one line."""
        s = self.s
        wanted = Previous(encoder.fingerprint(), encoder.made_with, os.path.realpath(s.input_dir), writer.row_fields,
                          package_versions())
        reused, why = reuse_previous(writer, keys, s.input_dir, wanted)
        todo = len(set(keys) - writer.completed_keys())
        self.progress.resumed(len(keys) - todo, reused, errors_in_parts(writer.part_paths(), set(keys)))
        if why:
            log.info("shard %s: no row of a previous shard reused (%s); embedding %d", s.shard, why, todo)
        else:
            log.info("shard %s: reused %d rows of the previous shard (same model, unchanged files); embedding %d",
                     s.shard, reused, todo)

    def build(self, device: Any) -> Encoder:
        s = self.s
        family(s.encoder).check_model_path(s.options.get("path"))
        try:
            encoder = build_encoder(s.encoder, s.options, device)
        except OptionError:
            raise  # a config key, named
        except Exception as exc:  # what the model files hold, or an option that contradicts them
            raise family(s.encoder).model_error(s.options.get("path"), s.options.get("model"), exc) from exc
        chosen = family(s.encoder)
        return replace(encoder, made_with=made_with(chosen.options(s.options), chosen.defaults()))

    def finalize(self, keys: list[str], encoder: Encoder, writer: ShardWriter, inputs: dict[str, str]) -> int:
        s = self.s
        metadata = {
            **encoder.provenance(),
            "fingerprint": encoder.fingerprint(),  # every shard of one dataset shares it (validate checks)
            "compute_dtype": encoder.model.compute_dtype(),
            "shard": s.shard,
            "num_files": len(keys),
            "manifest_sha1": keys_digest(keys),  # what the DAG compares the manifest with (made_with.manifest_changed)
            "reused_rows": writer.reused_rows(keys),  # taken from the shard's previous version (reuse.py)
            "packages": package_versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        n_rows, n_errors = self.progress.timed("write", writer.finalize, keys, s.output, s.errors, metadata)
        keep_previous(writer.parts_dir, s.output, s.input_dir, n_rows)  # what the shard's next version reuses
        if not s.keep_parts:
            # Until Snakemake has seen this job succeed, its outputs may still be deleted: what the parts
            # held is kept as hard links to the outputs, so a rerun restores instead of embedding again.
            keep_finished(writer.parts_dir, writer.fingerprint, keys, s.output, s.errors, inputs)
            writer.remove_parts()
        log.info("shard %s done: %d rows -> %s, %d errors -> %s", s.shard, n_rows, s.output, n_errors, s.errors)
        self.progress.reused = metadata["reused_rows"]
        self.progress.end(FINISHED, done=n_rows + n_errors)
        return 0
