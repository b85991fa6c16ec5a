from __future__ import annotations

import subprocess
import sys

import pytest

from latentbench.errors import UserError
from latentbench.registry import Registry
from latentbench.spaces import SPACES, build_space


def test_decorator_lazy_and_did_you_mean():
    reg: Registry = Registry("widget")
    reg.register("lazy-path", "pathlib:PurePosixPath")

    @reg.register("double")
    def double(x: int) -> int:
        return 2 * x

    assert reg.names() == ["double", "lazy-path"]
    assert reg.get("double")(3) == 6
    assert reg.get("lazy-path")("a/b").name == "b"
    with pytest.raises(UserError, match=r"unknown widget 'dubble' \(did you mean 'double'\?\)"):
        reg.get("dubble")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("double", double)


def test_unknown_space_option_is_a_user_error():
    with pytest.raises(UserError, match="takes no option 'pach'"):
        build_space("pixel", pach=2)
    with pytest.raises(UserError, match="did you mean 'pixel'"):
        build_space("pixle")


def test_listing_spaces_imports_no_heavy_library():
    code = (
        "import sys; from latentbench.spaces import SPACES; SPACES.names(); "
        "heavy = [m for m in ('diffusers', 'transformers', 'timm', 'torch_fidelity', 'lpips') "
        "if m in sys.modules]; print(heavy); assert not heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_builtin_names_present():
    assert "pixel" in SPACES
