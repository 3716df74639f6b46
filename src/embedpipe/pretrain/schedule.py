"""AdamW with ECG-JEPA's parameter groups, and the learning rate: linear warm-up, then cosine decay."""

from __future__ import annotations

import math

import torch
from torch import nn


class WarmupCosine:
    """The learning rate's factor at a step (LambdaLR's lr_lambda): linear from `start_lr` to the
    peak over `warmup` steps, then a half cosine down to `final_lr` at step `total`, flat after.

    A class, not a closure: LambdaLR saves a callable object's attributes in its state_dict, so a
    resumed run continues the schedule it was started with."""

    def __init__(self, peak_lr: float, final_lr: float, warmup: int, total: int, start_lr: float = 1e-6) -> None:
        self.peak_lr, self.final_lr, self.warmup, self.total = peak_lr, final_lr, warmup, total
        self.start_lr = min(start_lr, peak_lr)

    def lr(self, step: int) -> float:
        if step < self.warmup:
            return self.start_lr + (self.peak_lr - self.start_lr) * step / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.final_lr + (self.peak_lr - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def __call__(self, step: int) -> float:
        return self.lr(step) / self.peak_lr


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on the weights of linear and convolution layers only (ECG-JEPA's choice): not on
    biases, norms, registers or the mask token."""
    decay, rest = [], []
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d)}
    for p in model.parameters():
        if p.requires_grad:
            (decay if id(p) in decayed else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, final_lr: float, warmup: int, total: int, weight_decay: float,
                    betas: tuple[float, float], eps: float,
                    fused: bool = False) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, fused=fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(lr, final_lr, warmup, total))
    return optimizer, scheduler
