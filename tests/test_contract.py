"""One contract test over every registered space (built-ins and installed plugins).

Each space is built offline with random weights (``pretrained=False``) at 64 px.
"""

from __future__ import annotations

import pytest
import torch

from latentbench.spaces import SPACES, build_space, load_space

IMAGE_SIZE = 64
# Full-size architectures (80M+ parameters) built with random weights: minutes on 2 CPU cores.
# Their classes are covered fast by tests/test_vae_spaces.py with tiny configs.
LARGE = {"vae", "sd-vae", "sdxl-vae", "sd3-vae", "flux-vae"}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(n, marks=[pytest.mark.slow] if n in LARGE else []) for n in SPACES.names()
    ],
)
def space(request):
    torch.manual_seed(0)
    return build_space(request.param, pretrained=False, image_size=IMAGE_SIZE).eval()


def _batch(space, n=3):
    size = space.spec.image_size
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, size // 8, size // 8, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def test_shapes_and_range(space):
    spec, x = space.spec, _batch(space)
    with torch.inference_mode():
        z = space.encode(x)
        y = space.decode(z)
    assert tuple(z.shape) == (3, *spec.latent_shape)
    assert spec.image_size == spec.stride * spec.latent_size
    assert tuple(y.shape) == (3, 3, spec.image_size, spec.image_size)
    assert y.min() >= -1 and y.max() <= 1
    assert torch.isfinite(z).all() and torch.isfinite(y).all()


def test_deterministic_and_batch_independent(space):
    x = _batch(space, 4)
    with torch.inference_mode():
        z1, z2 = space.encode(x), space.encode(x)
        z_single = torch.cat([space.encode(x[i : i + 1]) for i in range(4)])
    assert torch.equal(z1, z2)
    torch.testing.assert_close(z_single, z1, rtol=1e-4, atol=1e-4)


def test_dtype_move(space):
    x = _batch(space, 2)
    with torch.inference_mode():
        ref = space.encode(x)
    space.to(torch.float64)  # outside inference mode: parameters stay normal tensors
    try:
        with torch.inference_mode():
            z = space.encode(x)
            assert z.dtype == torch.float64
            assert space.decode(z).dtype == torch.float64
    finally:
        space.to(torch.float32)
    torch.testing.assert_close(z.float(), ref, rtol=1e-3, atol=1e-3)


def test_stats_normalise(space):
    batches = [_batch(space, 2), _batch(space, 2).flip(-1)]
    stats = space.fit_stats(batches, seed=0)
    assert stats.num_samples == 4 and len(stats.mean) == space.spec.channels
    with torch.inference_mode():
        z = space.encode(batches[0])
        torch.testing.assert_close(space.denormalize(space.normalize(z)), z, rtol=1e-4, atol=1e-4)


def test_save_load_roundtrip(space, tmp_path):
    x = _batch(space, 2)
    space.fit_stats([x], seed=3)
    space.save(tmp_path / "s")
    loaded = load_space(tmp_path / "s").eval()
    assert loaded.spec == space.spec
    assert loaded.stats == space.stats
    assert loaded.fingerprint() == space.fingerprint()
    with torch.inference_mode():
        torch.testing.assert_close(loaded.encode(x), space.encode(x))
        z = space.encode(x)
        torch.testing.assert_close(loaded.decode(z), space.decode(z))


def test_fingerprint_tracks_weights(space):
    params = list(space.parameters())
    if not params:
        pytest.skip(f"{space.spec.name} has no weights")
    before = space.fingerprint()
    with torch.no_grad():
        params[0].view(-1)[0] += 1.0
    try:
        assert space.fingerprint() != before
    finally:
        with torch.no_grad():
            params[0].view(-1)[0] -= 1.0
