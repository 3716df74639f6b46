"""SIGReg against computations that share nothing with it: scipy's adaptive quadrature of the
Epps–Pulley integrand, and the integral's closed form over the whole line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from embedpipe.pretrain.sigreg import epps_pulley, quadrature, random_directions, sigreg

N = 400


def samples(kind: str, n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return {"normal": rng.standard_normal(n), "shifted": rng.standard_normal(n) + 0.5,
            "uniform": rng.uniform(-math.sqrt(3), math.sqrt(3), n)}[kind]  # unit variance, not Gaussian


def quad_statistic(x: np.ndarray, t_max: float) -> float:
    """N · ∫_{-t_max}^{t_max} |φ̂(t) − exp(−t²/2)|² exp(−t²/2) dt by adaptive quadrature."""
    def integrand(t: float) -> float:
        ecf = np.exp(1j * t * x).mean()
        return abs(ecf - math.exp(-t * t / 2)) ** 2 * math.exp(-t * t / 2)

    value, error = integrate.quad(integrand, -t_max, t_max, limit=400, epsabs=1e-13, epsrel=1e-11)
    assert error < 1e-9
    return len(x) * value


def closed_form(x: np.ndarray) -> float:
    """The same over the whole line: ∫cos(ta)e^{−t²/2} = √(2π)e^{−a²/2}, ∫cos(tx)e^{−t²} = √π e^{−x²/4}."""
    n = len(x)
    pairs = np.exp(-((x[:, None] - x[None, :]) ** 2) / 2).sum() / n**2
    return n * (math.sqrt(2 * math.pi) * pairs - 2 * math.sqrt(math.pi) * np.exp(-x**2 / 4).mean()
                + math.sqrt(2 * math.pi / 3))


def ep(x: np.ndarray, **kw) -> float:
    return float(epps_pulley(torch.from_numpy(x)[:, None], **kw)[0])


@pytest.mark.parametrize("kind", ["normal", "shifted", "uniform"])
def test_epps_pulley_equals_numerical_integration(kind):
    x = samples(kind)
    reference = quad_statistic(x, 3.0)
    # A fine trapezoid converges to the integral; LeJEPA's 17 knots stay within 1 % of it.
    assert ep(x, t_max=3.0, knots=2049) == pytest.approx(reference, rel=1e-6)
    assert ep(x) == pytest.approx(reference, rel=1e-2)
    assert ep(x, t_max=10.0, knots=4097) == pytest.approx(closed_form(x), rel=1e-6)


def test_normal_is_near_its_expectation_and_the_others_far_above():
    # E[N·|φ̂ − φ|²] = 1 − φ² for N(0, 1) samples: the statistic of a normal sample stays near
    # ∫(1 − e^{−t²}) e^{−t²/2} dt whatever N; a distribution that is not N(0, 1) grows with N.
    expected = integrate.quad(lambda t: (1 - math.exp(-t * t)) * math.exp(-t * t / 2), -3, 3)[0]
    n = 2000
    normal = [ep(samples("normal", n, seed)) for seed in range(5)]
    assert np.mean(normal) == pytest.approx(expected, rel=0.35)
    for kind in ("shifted", "uniform"):
        assert ep(samples(kind, n)) > 10 * expected, kind
    assert ep(samples("normal", n)) / n < 1e-3  # the distance itself, unscaled, vanishes


def test_quadrature_weights_integrate_the_gaussian_window():
    t, phi, weights = quadrature(3.0, 513)
    assert float((weights).sum()) == pytest.approx(math.sqrt(2 * math.pi) * math.erf(3 / math.sqrt(2)), rel=1e-5)
    assert torch.equal(phi, torch.exp(-t * t / 2))


def test_directions_are_unit_and_come_from_the_generator():
    a = random_directions(16, 32, torch.Generator().manual_seed(1))
    b = random_directions(16, 32, torch.Generator().manual_seed(1))
    c = random_directions(16, 32, torch.Generator().manual_seed(2))
    assert torch.allclose(a.norm(dim=0), torch.ones(32))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sigreg_separates_isotropic_gaussian_from_collapse_and_anisotropy():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1024, 16, generator=g)
    isotropic = float(sigreg(z, torch.Generator().manual_seed(3), slices=64))
    collapsed = float(sigreg(z[:, :1].expand(-1, 16) / 4, torch.Generator().manual_seed(3), slices=64))
    stretched = float(sigreg(z * torch.linspace(0.2, 3, 16), torch.Generator().manual_seed(3), slices=64))
    assert isotropic < 3 and collapsed > 50 * isotropic and stretched > 10 * isotropic


def test_sigreg_is_differentiable_and_its_gradient_removes_collapse():
    x = torch.randn(12, 3, dtype=torch.float64) * 0.5 + 1
    assert torch.autograd.gradcheck(lambda v: epps_pulley(v, knots=9), (x.requires_grad_(),))
    z = torch.nn.Parameter(torch.randn(256, 8) * 0.05 + 2.0)  # collapsed, off-centre
    optimiser = torch.optim.Adam([z], lr=0.05)
    first = None
    for step in range(150):
        loss = sigreg(z, torch.Generator().manual_seed(step), slices=32)
        first = float(loss.detach()) if first is None else first
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    final = float(sigreg(z.detach(), torch.Generator().manual_seed(999), slices=64))
    assert final < first / 20
    assert abs(float(z.detach().mean())) < 0.3 and float(z.detach().std()) == pytest.approx(1.0, abs=0.3)


def test_sigreg_runs_in_float32_under_bfloat16_input():
    z = torch.randn(64, 8)
    full = sigreg(z, torch.Generator().manual_seed(0), slices=16)
    half = sigreg(z.bfloat16(), torch.Generator().manual_seed(0), slices=16)
    assert half.dtype == torch.float32
    assert float(half) == pytest.approx(float(full), rel=0.1)
