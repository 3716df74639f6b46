"""SIGReg, LeJEPA's collapse regulariser (Balestriero & LeCun 2025, arXiv 2511.08544).

Embeddings `[N, D]` are projected on random unit directions; each 1-D projection is compared with
N(0, 1) by the Epps–Pulley statistic

    EP = N · ∫ |φ̂(t) − φ(t)|² w(t) dt,   φ̂(t) = mean_n exp(i t x_n),   φ(t) = w(t) = exp(−t²/2),

over [−t_max, t_max] by the trapezoidal rule on [0, t_max] with doubled weights (the integrand is
even: φ̂(−t) is the conjugate of φ̂(t) and φ is real), as LeJEPA computes it (t_max 3, 17 knots);
SIGReg is the mean over the directions. Under DistributedDataParallel the characteristic function is
that of the global batch: the sums over samples are all-reduced with a differentiable all-reduce,
so every rank computes the same statistic and gradients reach every rank's samples.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

T_MAX = 3.0
KNOTS = 17
SLICES = 256


def quadrature(t_max: float = T_MAX, knots: int = KNOTS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(t `[knots]` on [0, t_max], φ(t), trapezoid weights × 2 (for t < 0) × w(t))."""
    if knots < 2 or t_max <= 0:
        raise ValueError(f"Epps-Pulley quadrature needs knots >= 2 and t_max > 0, not {knots}, {t_max}")
    t = torch.linspace(0.0, t_max, knots, dtype=torch.float64)
    step = t_max / (knots - 1)
    weights = torch.full((knots,), 2 * step, dtype=torch.float64)
    weights[[0, -1]] = step  # the trapezoid's half weights at 0 and t_max, doubled like the rest
    phi = torch.exp(-0.5 * t * t)
    return t, phi, weights * phi


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the gradients over ranks too. Each rank's loss holds the
    global statistic, so each rank's samples get the gradient of every rank's copy of it; DDP's
    mean over ranks then leaves exactly the gradient of the one global statistic."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def _global_sum(x: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return _AllReduceSum.apply(x)
    return x


def epps_pulley(x: torch.Tensor, t_max: float = T_MAX, knots: int = KNOTS) -> torch.Tensor:
    """`x [N, K]`: K samples of N values each → `[K]` Epps–Pulley statistics against N(0, 1)."""
    t, phi, weights = (v.to(x.device, x.dtype) for v in quadrature(t_max, knots))
    xt = x.unsqueeze(-1) * t  # [N, K, knots]
    n = _global_sum(torch.tensor(float(x.shape[0]), device=x.device, dtype=x.dtype))
    cos_mean = _global_sum(torch.cos(xt).sum(0)) / n
    sin_mean = _global_sum(torch.sin(xt).sum(0)) / n
    distance = (cos_mean - phi) ** 2 + sin_mean**2  # |φ̂ − φ|², φ real
    return n * (distance @ weights)


def random_directions(dim: int, slices: int, generator: torch.Generator) -> torch.Tensor:
    """`[dim, slices]` unit columns, drawn on the CPU: the same directions on every device and rank."""
    directions = torch.randn(dim, slices, generator=generator, dtype=torch.float32)
    return directions / directions.norm(dim=0, keepdim=True)


def sigreg(z: torch.Tensor, generator: torch.Generator, slices: int = SLICES, t_max: float = T_MAX,
           knots: int = KNOTS) -> torch.Tensor:
    """SIGReg of embeddings `z [N, D]`: the mean Epps–Pulley statistic of `slices` random projections.

    Computed in float32 whatever the autocast: cos/sin of |t·x| up to tens of radians in bfloat16
    would carry errors of the order of the statistic itself."""
    if z.ndim != 2:
        raise ValueError(f"sigreg takes embeddings [N, D], not {tuple(z.shape)}")
    with torch.autocast(device_type=z.device.type, enabled=False):
        x = z.float()
        directions = random_directions(x.shape[1], slices, generator).to(x.device)
        return epps_pulley(x @ directions, t_max, knots).mean()
