"""``auto`` metric options: the first candidate that builds here, and why the others did not.

``recon --fd auto`` (Inception where its weights are found, else EfficientNet-Lite0) and
``--lpips auto`` (AlexNet LPIPS where its backbone is found, else none) both go through
:func:`first_available`; the :class:`AutoChoice` it returns is written with the results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from latentbench.errors import UserError

AUTO = "auto"
T = TypeVar("T")


@dataclass(frozen=True)
class AutoChoice:
    """What an ``auto`` metric option became (``chosen``) and, after a fallback, why."""

    option: str  # "fd", "lpips"
    chosen: str  # "inception", "efficientnet-lite0", "alex", "none", ...
    reason: str = ""  # why the earlier candidates did not run; "" when the first one did

    def note(self) -> str:
        return f"{self.option} auto -> {self.chosen}" + (f" ({self.reason})" if self.reason else "")

    def to_dict(self) -> dict[str, str]:
        return {"chosen": self.chosen, "reason": self.reason}


def first_available(
    option: str, candidates: Sequence[tuple[str, Callable[[], T]]]
) -> tuple[T, AutoChoice]:
    """Build the first candidate ``(name, build)`` that builds here; a UserError (e.g. weights
    missing offline) moves on to the next one and becomes the reason. The last one's error
    propagates."""
    reasons: list[str] = []
    for i, (name, build) in enumerate(candidates):
        try:
            return build(), AutoChoice(option, name, "; ".join(reasons))
        except UserError as e:
            if i == len(candidates) - 1:
                raise
            reasons.append(f"{name} unavailable: {e}")
    raise ValueError("first_available needs at least one candidate")
