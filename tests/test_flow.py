"""Rectified flow: path, shift rule, time distribution, samplers (guidance: test_sampling)."""

from __future__ import annotations

import pytest
import torch

from latentbench.gen.flow import (
    Sampler,
    dimension_shift,
    interpolate,
    logit_normal_time,
    sample,
    shift_time,
    time_grid,
    velocity_target,
)


@pytest.mark.parametrize(
    ("channels", "patch", "expected"), [(16, 2, 2.0), (768, 1, 6.93), (96, 1, 2.45)]
)
def test_dimension_shift_matches_paper(channels, patch, expected):
    # the paper's values on its 16x16 token grid; the rule is sqrt(N C p^2 / 4096)
    assert dimension_shift(channels, patch, tokens=256) == pytest.approx(expected, abs=5e-3)
    # the same space on an 8x8 grid has a quarter of the dimensions: half the shift
    assert dimension_shift(channels, patch, tokens=64) == pytest.approx(expected / 2, abs=3e-3)


def test_shift_time_endpoints_and_direction():
    t = torch.linspace(0, 1, 11)
    s = shift_time(t, 3.0)
    assert s[0] == 0 and s[-1] == 1 and (s[1:-1] > t[1:-1]).all()
    torch.testing.assert_close(shift_time(t, 1.0), t)
    grid = time_grid(4, 2.0)
    assert grid[0] == 1 and grid[-1] == 0 and (grid.diff() < 0).all()


def test_logit_normal_median_moves_with_shift():
    n = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    t = logit_normal_time(n, 0.0, 1.0, 1.0)
    assert t.median().item() == pytest.approx(0.5, abs=0.02)
    assert logit_normal_time(n, 0.0, 1.0, 3.0).median().item() == pytest.approx(0.75, abs=0.02)


def test_path_and_target():
    x0, eps = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    t = torch.tensor([0.0, 0.5, 1.0])
    xt = interpolate(x0, eps, t)
    torch.testing.assert_close(xt[0], x0[0])
    torch.testing.assert_close(xt[2], eps[2])
    torch.testing.assert_close(xt[1], 0.5 * (x0[1] + eps[1]))
    torch.testing.assert_close(velocity_target(x0, eps), eps - x0)


def _gaussian_velocity(s: float):
    """Exact velocity field when x0 ~ N(0, s^2): E[eps - x0 | x_t]."""

    def v(x, t):
        t = t.reshape(-1, *([1] * (x.ndim - 1))).double()
        var = (1 - t) ** 2 * s**2 + t**2
        return (x.double() * (t - (1 - t) * s**2) / var).to(x.dtype)

    return v


@pytest.mark.parametrize("sampler", list(Sampler))
def test_straight_paths_are_integrated_exactly(sampler):
    a = torch.randn(4, 3)

    def v(x, t):  # a point mass at a: every path is straight
        return (x - a) / t[:, None]

    out = sample(v, torch.randn(4, 3), steps=3, shift=2.0, sampler=sampler)
    torch.testing.assert_close(out, a, atol=1e-5, rtol=0)


def test_heun_beats_euler_on_a_gaussian():
    s = 0.3
    noise = torch.randn(8, dtype=torch.float64)
    exact = noise * s  # the ODE maps x1 to x1 * sqrt(var(0) / var(1)) = s x1
    err = {
        k: (sample(_gaussian_velocity(s), noise, steps=8, sampler=k) - exact).abs().max().item()
        for k in Sampler
    }
    assert err[Sampler.HEUN] < 0.5 * err[Sampler.EULER]
    fine = sample(_gaussian_velocity(s), noise, steps=200, sampler=Sampler.HEUN)
    torch.testing.assert_close(fine, exact, atol=1e-4, rtol=0)
