"""The planner's arithmetic, from a trial's per-shard timings and file sizes to the full run: pure
functions on plain numbers, so a test can hand them a trial with known timings.

A shard's job takes  T(N) = F + N × s : a fixed cost F (start-up, model load, the first batch's
warm-up, the shard file's assembly) and s seconds a file. The trial measured T at its n files, so
T(N) = T_trial + (N − n) × s. How well s is known is what the range says:
- the trial's loop time over its files includes the first batch's warm-up: an upper bound of s;
- where the trial logged more than one batch, the time between its first and last batch is s without
  the warm-up (`steady`): the central figure and the lower bound;
- where every shard of the trial ran one batch (extract.limit ≤ the batch), nothing bounds s from
  below but 0: the plan says so, and a longer trial narrows it.
The fixed cost's spread over the trial's shards (the machine's load, a slower model load) is carried
as its smallest and largest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from embedpipe.plan.sizes import ERRORS, FileBytes
from embedpipe.plan.timings import ShardTiming

# Relative tolerance when an actual is compared with a range: figures are rounded as they are shown.
ROUNDING = 1e-3
# A job's start-up (imports, model load) varies with its node's load and filesystem cache more than a
# trial's few jobs, run minutes apart, show: the demo's extract jobs on two shared cores took 15.9–16.2 s
# in a trial and 13.7–15.6 s in the full run right after it. The fixed cost's bounds are the trial's
# lowest and highest shard widened by this fraction. At a real run's scale it is a small share of a job.
FIXED_SPREAD = 0.25


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    basis: str

    def holds(self, actual: float) -> bool:
        return self.low * (1 - ROUNDING) <= actual <= self.high * (1 + ROUNDING)

    def scaled(self, factor: float, basis: str | None = None) -> Estimate:
        return Estimate(self.value * factor, self.low * factor, self.high * factor, basis or self.basis)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def per_file_seconds(timings: Sequence[ShardTiming]) -> Estimate:
    measured = [t for t in timings if t.files and t.loop_s is not None]
    if not measured:
        raise ValueError("no shard of the trial has timings (no benchmark, progress file or throughput line)")
    upper = max(t.s_per_file for t in measured)
    overall = sum(t.loop_s for t in measured) / sum(t.files for t in measured)
    steady = [t.steady_s_per_file for t in measured if t.steady_s_per_file is not None]
    if len(steady) == len(measured):
        central = sum(steady) / len(steady)
        return Estimate(central, min(steady), max(upper, central),
                        "seconds a file between each shard's first and last batch (central, lowest); the highest "
                        "shard's loop time over its files, the first batch's warm-up included (highest)")
    return Estimate(overall, 0.0, upper,
                    "the trial's loop time over its files, the first batch's warm-up included: an upper bound. Its "
                    "shards ran one batch each, so the warm-up cannot be told from the per-file cost and nothing "
                    "bounds it from below (a trial of 3 batches or more, extract.limit ≥ 3 × encoder.batch_size, "
                    "narrows it)")


def fixed_seconds(timings: Sequence[ShardTiming], per_file: float) -> tuple[float, float, float]:
    """(mean, lowest, highest) over the trial's shards of the job's wall minus its files × `per_file`."""
    fixed = [t.wall_s - t.files * per_file for t in timings if t.wall_s is not None and t.files]
    if not fixed:
        raise ValueError("no shard of the trial has its job's wall time")
    return sum(fixed) / len(fixed), min(fixed), max(fixed)


def fixed_range(timings: Sequence[ShardTiming], s: Estimate) -> tuple[float, float, float]:
    """A job's fixed cost as each bound of s leaves it: (mean at s, lowest shard at s.low, highest shard at
    s.high), the bounds widened by FIXED_SPREAD."""
    return (fixed_seconds(timings, s.value)[0], fixed_seconds(timings, s.low)[1] * (1 - FIXED_SPREAD),
            fixed_seconds(timings, s.high)[2] * (1 + FIXED_SPREAD))


def shard_seconds(fixed: tuple[float, float, float], full_files: dict[str, int], s: Estimate) -> dict[str, Estimate]:
    """Each shard's job at its full file count: fixed + files × s, at the central, low and high s."""
    central, low, high = fixed
    return {shard: Estimate(central + n * s.value, max(low, 0.0) + n * s.low, high + n * s.high,
                            "the trial's fixed cost a job (mean; lowest and highest shard, ±FIXED_SPREAD) "
                            "+ files × seconds a file")
            for shard, n in full_files.items()}


def schedule(seconds: Sequence[float], slots: int) -> float:
    """The wall of jobs run `slots` at a time, longest first, each starting when a slot frees."""
    ends = [0.0] * max(1, min(slots, len(seconds) or 1))
    for s in sorted(seconds, reverse=True):
        i = ends.index(min(ends))
        ends[i] += s
    return max(ends) if seconds else 0.0


def run_wall(shards: dict[str, Estimate], slots: int) -> Estimate:
    values = list(shards.values())
    return Estimate(schedule([e.value for e in values], slots), schedule([e.low for e in values], slots),
                    schedule([e.high for e in values], slots),
                    f"the shards' jobs {slots} at a time, longest first (queue waits not counted)")


def device_hours(shards: dict[str, Estimate]) -> Estimate:
    values = list(shards.values())
    return Estimate(sum(e.value for e in values) / 3600, sum(e.low for e in values) / 3600,
                    sum(e.high for e in values) / 3600, "the shards' jobs, one device each, summed")


@dataclass(frozen=True)
class Rows:
    """The full run's dataset rows and error rows, central and bounds."""

    rows: Estimate
    errors: Estimate


def full_rows(trial_files: int, trial_errors: int, full_files: int, max_error_fraction: float) -> Rows:
    """The trial's error fraction, carried to the full count; bounded by none and by validation's
    threshold (a run past it stops at validation: no card, no dataset)."""
    fraction = trial_errors / trial_files if trial_files else 0.0
    worst = max(fraction, max_error_fraction)
    basis = (f"the trial's error fraction ({fraction:.3g}); bounds 0 and validate.max_error_fraction "
             f"({max_error_fraction:g}) or the trial's, if higher")
    errors = Estimate(full_files * fraction, 0.0, full_files * worst, basis)
    return Rows(Estimate(full_files - errors.value, full_files - errors.high, float(full_files), basis), errors)


def folder_bytes(files: Sequence[FileBytes], rows: Rows, trial_rows: int, trial_errors: int) -> dict[str, Estimate]:
    """Each folder's bytes at the full run's rows: every file's fixed part + rows × bytes a row (the
    folder's files' lowest and highest bytes a row for the bounds). A folder's rows grow with the run's:
    its share of the trial's rows (a token sidecar file holds one tensor a row) stays."""
    out: dict[str, Estimate] = {}
    for label in dict.fromkeys(f.label for f in files):
        value = low = high = 0.0
        for errors, trial_total, full in ((False, trial_rows, rows.rows), (True, trial_errors, rows.errors)):
            group = [f for f in files if f.label == label and (f.counts == ERRORS) == errors]
            if not group:
                continue
            measured = [f for f in group if f.per_row is not None]
            # no row of this kind in the trial (no error row): bytes a row of the folder's other files
            per_row = [f.per_row for f in measured] or [f.per_row for f in files
                                                        if f.label == label and f.per_row is not None] or [0.0]
            mean = (sum(f.per_row * f.rows for f in measured) / sum(f.rows for f in measured)
                    if sum(f.rows for f in measured) else max(per_row))
            in_folder = sum(f.rows for f in group)
            share = in_folder / trial_total if trial_total else 1.0
            fixed = sum(f.fixed for f in group)
            value += fixed + share * full.value * mean
            low += fixed + share * full.low * min(per_row)
            high += fixed + share * full.high * max(per_row)
        out[label] = Estimate(value, low, high, "each file's fixed part + rows × the folder's bytes a row (the lowest "
                                                "and highest of its files for the bounds)")
    return out


@dataclass(frozen=True)
class Suggestion:
    key: str
    value: object
    why: str


def suggestions(shards: dict[str, Estimate], per_file: Estimate, fixed_high: float, job_minutes: float | None,
                by: str, num_shards: int, save_every: int, batch: int, total_files: int) -> list[Suggestion]:
    """num_shards (hash sharding) and save_every for a job time limit: a shard must finish, or write its
    parts often enough to resume, inside one job. 10 % of the limit is left for start-up variance, and a
    part is written at least every tenth of it (a time-out loses at most that)."""
    if not job_minutes:
        return [Suggestion("plan.job_minutes", None, "no job time limit is known (the profile's extract runtime, or "
                                                     "plan.job_minutes): nothing to fit the shards to")]
    usable = job_minutes * 60 * 0.9
    longest_shard, longest = max(((k, e.high) for k, e in shards.items()), key=lambda kv: kv[1])
    out = []
    if longest <= usable:
        out.append(Suggestion(f"shards.{'num_shards' if by == 'hash' else 'by'}", num_shards if by == "hash" else by,
                              f"every shard finishes inside one job: the longest ({longest_shard}) takes at most "
                              f"{longest / 60:.1f} of {job_minutes:g} minutes"))
    elif by == "hash" and usable > fixed_high and per_file.high > 0:
        wanted = math.ceil(total_files * per_file.high / (usable - fixed_high))
        out.append(Suggestion("shards.num_shards", max(wanted, num_shards),
                              f"{num_shards} shards: {longest_shard} would take up to {longest / 60:.0f} minutes, "
                              f"past {job_minutes:g}; {wanted} shards finish inside one job each"))
    else:
        jobs = math.ceil(longest / usable)
        out.append(Suggestion("shards.by", by, f"the folders fix the shards ({num_shards}); {longest_shard} takes up "
                                               f"to {longest / 60:.0f} minutes: {jobs} jobs of {job_minutes:g}, "
                                               "each resuming from the parts the last one wrote (the profile's "
                                               "retries and requeue); save_every bounds what a time-out loses"))
    if per_file.high > 0:
        most = max(batch, int(0.1 * job_minutes * 60 / per_file.high) // max(batch, 1) * max(batch, 1))
        if save_every > most:
            out.append(Suggestion("extract.save_every", most, f"{save_every} rows a part take up to "
                                  f"{save_every * per_file.high / 60:.0f} minutes; {most} writes a part at least "
                                  f"every {job_minutes / 10:g} minutes (a tenth of a job)"))
        else:
            every = save_every * per_file.high / 60
            out.append(Suggestion("extract.save_every", save_every, f"a part every {every:.1f} "
                                  f"minutes at most: within a tenth of a job ({job_minutes / 10:g} minutes)"))
    return out
