"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input (bad path, bad config, missing weights offline, ...).

    The message is one line that names the bad value and, where possible, the valid ones.
    """


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_choice(kind: str, name: str, valid: Iterable[str]) -> UserError:
    valid = sorted(valid)
    return UserError(
        f"unknown {kind} {name!r}{did_you_mean(name, valid)}; valid: {', '.join(valid) or 'none'}"
    )
