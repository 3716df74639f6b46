"""Pretraining data: ECG files through extract's reader, or a `.npy` dump, as random crops with masks.

Files go through the `ecg_jepa` family's own reader (`EcgJepaReader`: `read_ecg` → 12 leads at
500 Hz, NaNs interpolated, FFT resampling, MIMIC-IV-ECG per-lead statistics, clip ±5), built from
the family's options schema, so that pretraining sees what extract will feed the trained encoder.
A dump `[N, 12, n]` (mV at 500 Hz, embedpipe's lead order) is memory-mapped and normalised the same
way (or taken as it is with `normalise: none`).

Everything random is a function of (seed, epoch, record) or (seed, batch, rank): the crop offset,
the order, the masks. A run resumed at batch b therefore reads exactly the batches an uninterrupted
run would have read, whichever worker decodes them. A record that cannot be read, or is shorter
than a crop, is dropped from its batch (ECG-JEPA drops records shorter than a crop too) and its
error is reported with the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from embedpipe.discover.scan import read_manifest, scan_files
from embedpipe.encoders import family
from embedpipe.encoders.ecg import ecg_reader_options
from embedpipe.encoders.ecg_jepa.model import EcgJepaReader
from embedpipe.pretrain.masks import BlockMasks
from embedpipe.readers.ecg import LEADS
from embedpipe.runtime.decode_guard import read_within, settle_worker

ECG_EXTENSIONS = [".hea", ".xml", ".dcm"]  # what a folder given as data is scanned for
DECODE_TIMEOUT_S = 120.0


class Key(NamedTuple):
    batch: int  # the batch's position in the run (its masks' seed)
    epoch: int
    index: int  # the record, over all sources


class Item(NamedTuple):
    key: Key
    signal: torch.Tensor | None  # [12, crop]
    error: str | None


def ecg_reader(patch: int, normalise: str = "mimic_iv_ecg", resample: str | None = None,
               nan: str | None = None) -> EcgJepaReader:
    """The reader extract builds for `ecg_jepa` with these options (the family's defaults otherwise)."""
    given = {"normalise": normalise, "resample": resample, "nan": nan}
    options = family("ecg_jepa").options({k: v for k, v in given.items() if v is not None})
    fields = ecg_reader_options(options)
    return EcgJepaReader(**fields, normalisation=options["normalise"], patch=patch)


class EcgFiles:
    def __init__(self, paths: list[str], reader: EcgJepaReader, timeout_s: float | None = DECODE_TIMEOUT_S) -> None:
        self.paths, self.reader, self.timeout_s = paths, reader, timeout_s

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, i: int) -> str:
        return self.paths[i]

    def load(self, i: int) -> torch.Tensor:
        return self.reader.prepare(self.paths[i]).sample


class NpyDump:
    def __init__(self, path: str, reader: EcgJepaReader | None) -> None:
        self.path, self.reader = path, reader  # reader None: the dump is normalised already
        self.timeout_s = None  # memory-mapped: nothing to hang on
        self.array = np.load(path, mmap_mode="r")
        if self.array.ndim != 3 or self.array.shape[1] != len(LEADS):
            raise ValueError(f"{path}: a dump is [N, {len(LEADS)}, samples], not {list(self.array.shape)}")

    def __len__(self) -> int:
        return self.array.shape[0]

    def name(self, i: int) -> str:
        return f"{self.path}[{i}]"

    def load(self, i: int) -> torch.Tensor:
        signal = np.array(self.array[i], dtype=np.float32)  # a copy: the mmap is read-only
        if self.reader is not None:
            signal = self.reader.normalise(signal)
        return torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32))


Source = EcgFiles | NpyDump


def open_sources(specs: list[str], reader: EcgJepaReader, input_dir: str | Path | None = None,
                 normalise_dumps: bool = True) -> list[Source]:
    """`[name=]path` each (the reference script's `--data` form; the name is only a label): a `.npy`
    dump, a manifest `.txt` (keys relative to `input_dir`, as discover writes them) or a folder of
    ECG files."""
    sources: list[Source] = []
    for spec in specs:
        path = Path(spec.split("=", 1)[1] if "=" in spec and not Path(spec).exists() else spec)
        if path.suffix == ".npy":
            sources.append(NpyDump(str(path), reader if normalise_dumps else None))
        elif path.suffix == ".txt":
            root = Path(input_dir) if input_dir else path.parent
            sources.append(EcgFiles([str(root / key) for key in read_manifest(path)], reader))
        elif path.is_dir():
            sources.append(EcgFiles([str(path / key) for key in scan_files(path, ECG_EXTENSIONS)], reader))
        else:
            raise ValueError(f"data {spec!r}: not a .npy dump, a .txt list of files or a folder")
    if not sum(map(len, sources)):
        raise ValueError(f"data {specs}: no records")
    return sources


class PretrainData(Dataset):
    """Key → Item: a random `crop`-sample window of the record, or its error. Never raises."""

    def __init__(self, sources: list[Source], crop: int, seed: int) -> None:
        self.sources, self.crop, self.seed = sources, crop, seed
        self.starts = np.cumsum([0, *map(len, sources)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: Key) -> Item:
        which = int(np.searchsorted(self.starts, key.index, side="right")) - 1
        source, i = self.sources[which], key.index - int(self.starts[which])
        # a FIFO or a hung mount must not stall the run; a bad file is dropped and reported
        signal, error = read_within(lambda: source.load(i), source.timeout_s)
        if signal is None:
            return Item(key, None, f"{source.name(i)}: {error[0]}: {error[1]}")
        n = signal.shape[-1]
        if n < self.crop:
            return Item(key, None, f"{source.name(i)}: {n} samples, shorter than a {self.crop}-sample crop")
        start = int(np.random.default_rng([self.seed, key.epoch, key.index]).integers(0, n - self.crop + 1))
        return Item(key, signal[:, start:start + self.crop].contiguous(), None)


class BatchPlan(Sampler[list[Key]]):
    """This rank's batches from batch `start` on, without end: each epoch a permutation of all
    records (DistributedSampler's, seeded by seed and epoch), split over the ranks, in whole batches."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, start: int = 0) -> None:
        self.sampler = DistributedSampler(range(size), num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.batch_size, self.start = batch_size, start
        self.per_epoch = len(self.sampler) // batch_size
        if self.per_epoch == 0:
            raise ValueError(f"{size} records are fewer than one batch of {batch_size} per rank ({world} ranks)")

    def __iter__(self) -> Iterator[list[Key]]:
        batch = self.start
        while True:
            epoch, first = divmod(batch, self.per_epoch)
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for b in range(first, self.per_epoch):
                chunk = order[b * self.batch_size:(b + 1) * self.batch_size]
                yield [Key(batch, epoch, i) for i in chunk]
                batch += 1


MIN_RECORDS = 2  # the projector's BatchNorm cannot train on one record


class EmptyBatch(RuntimeError):
    """Fewer than MIN_RECORDS of a batch could be read: the data, not one file, is broken."""


class MaskCollate:
    """Items → {x [B, 12, crop], context [B, K], target [B, T], batch, errors}; masks from (seed, batch, rank)."""

    def __init__(self, masks: BlockMasks, seed: int, rank: int = 0) -> None:
        self.masks, self.seed, self.rank = masks, seed, rank

    def __call__(self, items: list[Item]) -> dict[str, object]:
        batch = items[0].key.batch
        kept = [item.signal for item in items if item.signal is not None]
        errors = [item.error for item in items if item.error is not None]
        if len(kept) < MIN_RECORDS:
            raise EmptyBatch(f"batch {batch}: {len(kept)} of its {len(items)} records could be read, fewer than the "
                             f"{MIN_RECORDS} a step needs; e.g. {errors[0]}")
        context, target = self.masks(len(kept), np.random.default_rng([self.seed, batch, self.rank]))
        return {"x": torch.stack(kept), "context": context, "target": target, "batch": batch, "errors": errors}


def worker_init(worker_id: int) -> None:
    settle_worker()
