"""The pretraining step: MyJEPA on ECGs, resumable, on one device or several (torchrun, DDP).

`PretrainStep(settings).run()` builds the model, resumes from the newest checkpoint in
`<out>/checkpoints/` if there is one, and trains to `steps`: bf16 autocast on CUDA (float32 on the
CPU), AdamW with linear warm-up and cosine decay, gradient clipping, a checkpoint every
`checkpoint_every` steps and on SIGTERM/SIGINT, and `<out>/final.pt` at the end. Every step appends
a row to `<out>/metrics.csv` (and to wandb when enabled).

Resuming continues the same loss curve: the data order, crops and masks are functions of the seed
and the batch's position (data.py), the SIGReg directions of the seed and the step, and the
checkpoint holds the model, optimiser, schedule and RNG states; on the CPU the resumed steps'
losses equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from embedpipe.pretrain import checkpoint
from embedpipe.pretrain import data as pdata
from embedpipe.pretrain.masks import BlockMasks
from embedpipe.pretrain.metrics import WANDB_MISSING, MetricsCsv, Wandb, wandb_installed
from embedpipe.pretrain.model import MyJepa
from embedpipe.pretrain.schedule import build_optimizer
from embedpipe.pretrain.settings import CURVE_KEYS, PretrainSettings
from embedpipe.runtime.decode_guard import kill_leftover_children, stop_workers
from embedpipe.runtime.error_text import clean_message
from embedpipe.runtime.stop import StopRequest
from embedpipe.store.atomic import OutputWriteError

log = logging.getLogger("pretrain")
ERRORS_LOGGED = 20


class PretrainError(Exception):
    """A setting, the data or the run folder is not usable: one line, no traceback."""


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_ranks(device_option: str) -> tuple[Ranks, torch.device]:
    """torchrun's environment (WORLD_SIZE > 1): one process per GPU, NCCL (gloo on the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ranks = Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    cuda = torch.cuda.is_available() and device_option in ("auto", "cuda")
    device = torch.device(f"cuda:{ranks.local}") if cuda else torch.device(
        "cpu" if device_option == "auto" else device_option)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def sigreg_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


class PretrainStep:
    def __init__(self, settings: PretrainSettings) -> None:
        self.s = settings
        self.stop = StopRequest()
        self.ckpt_dir = settings.out / "checkpoints"
        self.final = settings.out / "final.pt"

    def run(self) -> int:
        """The exit status: 0 trained to `steps`, 1 a one-line error (logged), 128 + signal when stopped."""
        initialised = dist.is_initialized()
        try:
            self.stop.install()
            return self._run()
        except PretrainError as exc:
            log.error("%s", exc)
            return 1
        except OutputWriteError as exc:  # a full disk or quota while checkpointing: the previous checkpoint stands
            log.error("%s. Free space and rerun: it resumes from the newest checkpoint in %s.", exc.strerror,
                      self.ckpt_dir)
            return 1
        finally:
            # A decode worker still alive here would be joined forever by multiprocessing at exit.
            if left := kill_leftover_children():
                log.warning("killed %d decode worker(s) still alive at the end of the run", left)
            self.stop.restore()
            if dist.is_initialized() and not initialised:
                dist.destroy_process_group()

    def _run(self) -> int:
        s = self.s
        ranks, device = setup_ranks(s.device)
        if not ranks.main:
            log.setLevel(logging.WARNING)  # one progress log per run, not one per rank
        if s.batch_size % ranks.world:
            raise PretrainError(f"batch_size {s.batch_size} does not split over {ranks.world} ranks")
        if s.wandb and not wandb_installed():  # on every rank: none waits for a rank that left
            raise PretrainError(WANDB_MISSING)
        torch.manual_seed(s.seed)
        model = MyJepa(s.model).to(device)
        optimizer, scheduler = build_optimizer(model, s.learning_rate, s.final_learning_rate, s.warmup_steps, s.steps,
                                               s.weight_decay, s.betas, s.eps, fused=device.type == "cuda")
        step = self.resume(model, optimizer, scheduler)
        if step >= s.steps:
            if ranks.main and not self.final.is_file():
                self.publish_final()
            log.info("%s: trained to step %d already", s.out, step)
            return 0
        net: torch.nn.Module = model
        if ranks.world > 1:
            ids = [device] if device.type == "cuda" else None
            net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        loader = self.loader(ranks, device, step)  # a data problem is one line before anything is written
        metrics = MetricsCsv(s.out / "metrics.csv") if ranks.main else None
        try:
            wandb = Wandb(s.out, s.wandb_project, s.wandb_name, s.as_dict()) if s.wandb and ranks.main else None
        except ImportError as exc:
            raise PretrainError(WANDB_MISSING) from exc
        if metrics:
            metrics.start(step)
        batches = iter(loader)
        try:
            return self.train(net, model, optimizer, scheduler, batches, step, ranks, device, metrics, wandb)
        finally:
            stop_workers(batches)  # the sampler never ends: nothing else would stop the workers
            for sink in (metrics, wandb):
                if sink is not None:
                    sink.close()

    def resume(self, model: MyJepa, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
        path = checkpoint.latest(self.ckpt_dir)
        if path is None:
            return 0
        try:
            return self._restore(path, model, optimizer, scheduler)
        except PretrainError:
            raise
        except Exception as exc:  # a file under a checkpoint's name that is not one of ours, or damaged
            raise PretrainError(f"{path}: cannot resume from it ({type(exc).__name__}: "
                                f"{clean_message(str(exc))[:300]}); move it away to resume from the checkpoint "
                                "before it, or use another run folder") from None

    def _restore(self, path: Path, model: MyJepa, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
        state = checkpoint.load(path)
        if state["config"] != self.s.model.checkpoint_config():
            raise PretrainError(f"{path} was trained with another model config; use another run folder")
        changed = [k for k in CURVE_KEYS if state["train"].get(k) != self.s.as_dict()[k]]
        if changed:
            raise PretrainError(f"{path}: resuming with other {', '.join(changed)} would not continue the same run; "
                                "use another run folder")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        log.info("resuming from %s (step %d)", path, state["step"])
        return int(state["step"])

    def loader(self, ranks: Ranks, device: torch.device, step: int) -> DataLoader:
        s, c = self.s, self.s.model
        per_rank = s.batch_size // ranks.world
        try:
            reader = pdata.ecg_reader(c.patch_size, s.normalise, s.resample, s.nan)
            sources = pdata.open_sources(s.data, reader, s.input_dir, normalise_dumps=not s.dumps_normalised)
            dataset = pdata.PretrainData(sources, c.channel_size, s.seed)
            plan = pdata.BatchPlan(len(dataset), per_rank, s.seed, ranks.rank, ranks.world, start=step)
        except (OSError, ValueError) as exc:  # a missing file, a dump of another shape, too few records
            raise PretrainError(f"data: {exc}") from exc
        masks = BlockMasks(c.num_patches, c.min_keep_ratio, c.max_keep_ratio, c.min_block_size)
        log.info("%d records; %d batches of %d per epoch per rank, %d ranks", len(dataset), plan.per_epoch,
                 per_rank, ranks.world)
        return DataLoader(dataset, batch_sampler=plan, collate_fn=pdata.MaskCollate(masks, s.seed, ranks.rank),
                          num_workers=s.num_workers, worker_init_fn=pdata.worker_init if s.num_workers else None,
                          pin_memory=device.type == "cuda")

    def train(self, net: torch.nn.Module, model: MyJepa, optimizer: torch.optim.Optimizer, scheduler: Any,
              batches: Iterator[dict[str, Any]], step: int, ranks: Ranks, device: torch.device,
              metrics: MetricsCsv | None, wandb: Wandb | None) -> int:
        s = self.s
        bf16 = s.amp == "bfloat16" and device.type == "cuda"
        if s.amp == "bfloat16" and not bf16:
            log.info("bfloat16 autocast is for CUDA only: training in float32 on %s", device)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()
        net.train()
        logged, last = set(), time.perf_counter()
        while step < s.steps:
            t0 = time.perf_counter()
            try:
                batch = next(batches)
            except pdata.EmptyBatch as exc:
                raise PretrainError(f"data: {exc}") from exc
            data_time = time.perf_counter() - t0
            for error in batch["errors"]:  # each bad record once (it comes back every epoch); all are counted
                if error not in logged and len(logged) < ERRORS_LOGGED:
                    logged.add(error)
                    log.warning("skipped: %s%s", error, "" if len(logged) < ERRORS_LOGGED else
                                " (further skipped records: only counted, in metrics.csv)")
            inputs = {k: batch[k].to(device, non_blocking=True) for k in ("x", "context", "target")}
            with autocast:
                out = net(inputs | {"sigreg_seed": sigreg_seed(s.seed, step)})
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip if s.grad_clip > 0 else math.inf)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            step += 1
            stats = torch.stack([out["loss"].detach().float(), out["pred_loss"].detach().float(),
                                 out["sigreg_loss"].detach().float()]).cpu().tolist()
            counts = [len(batch["x"]), len(batch["errors"]), float(bool(self.stop))]
            if ranks.world > 1:  # the mean over ranks, and a stop any rank saw is every rank's
                totals = torch.tensor(stats + counts, dtype=torch.float64, device=device)
                dist.all_reduce(totals)
                stats, counts = [v / ranks.world for v in totals[:3].tolist()], totals[3:].tolist()
            now = time.perf_counter()
            row = {"step": step, "loss": stats[0], "pred_loss": stats[1], "sigreg_loss": stats[2], "lr": lr,
                   "grad_norm": float(grad_norm), "step_time": now - last, "data_time": data_time,
                   "samples_per_s": counts[0] / (now - last), "samples": int(counts[0]), "skipped": int(counts[1]),
                   **gpu_memory(device)}
            last = now
            if not math.isfinite(row["loss"]):
                raise PretrainError(f"loss {row['loss']} at step {step}; the newest checkpoint in {self.ckpt_dir} "
                                    "is from before it")
            if metrics:
                metrics.append(row)
            if wandb:
                wandb.log(row)
            if step % s.log_every == 0 or step == 1:
                log.info("step %d/%d loss %.4f (pred %.4f, sigreg %.4f) lr %.2e, %.0f samples/s", step, s.steps,
                         row["loss"], row["pred_loss"], row["sigreg_loss"], lr, row["samples_per_s"])
            stopping = counts[2] > 0 if ranks.world > 1 else bool(self.stop)  # ranks agree on the step to stop at
            if step % s.checkpoint_every == 0 or step == s.steps or stopping:
                self.checkpoint(model, optimizer, scheduler, step, ranks)
            if stopping:
                log.warning("stopped by signal %d at step %d, checkpointed; rerun to resume", self.stop.signum, step)
                return 128 + (self.stop.signum or 15)
        if ranks.main:
            self.publish_final()
        log.info("trained to step %d: %s", step, self.final)
        return 0

    def publish_final(self) -> None:
        """`final.pt`: the last step's checkpoint (a hard link where the file system allows), the file
        a workflow rule waits for."""
        last = checkpoint.latest(self.ckpt_dir)
        if last is None:
            raise PretrainError(f"no checkpoint in {self.ckpt_dir} to publish as {self.final}")
        checkpoint.publish(last, self.final)

    def checkpoint(self, model: MyJepa, optimizer: torch.optim.Optimizer, scheduler: Any, step: int,
                   ranks: Ranks) -> None:
        if ranks.main:
            self.save(checkpoint.step_file(self.ckpt_dir, step), model, optimizer, scheduler, step, ranks)
            checkpoint.prune(self.ckpt_dir, self.s.keep_checkpoints)
        if ranks.world > 1:
            dist.barrier()  # no rank runs ahead of a checkpoint it might be resumed from

    def save(self, path: Path, model: MyJepa, optimizer: torch.optim.Optimizer, scheduler: Any, step: int,
             ranks: Ranks) -> None:
        checkpoint.save(path, {
            "model": model.state_dict(), "config": self.s.model.checkpoint_config(), "train": self.s.as_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
            "rng": checkpoint.rng_state(), "world_size": ranks.world,
        })


def gpu_memory(device: torch.device) -> dict[str, float | None]:
    if device.type != "cuda":
        return {"gpu_mem_mb": None, "gpu_peak_mb": None}
    return {"gpu_mem_mb": torch.cuda.memory_allocated(device) / 2**20,
            "gpu_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20}
