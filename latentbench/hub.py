"""Where models and weights come from: the one way latentbench reaches the Hugging Face hub and
weight files on disk.

- :func:`load_pretrained` is the only ``from_pretrained`` call of the package (transformers
  models, configs, tokenizers and processors; diffusers models). It always passes
  ``trust_remote_code=False``: code that comes with a folder or hub repo (``auto_map`` + ``.py``
  files) is never run and never prompted for; such a source is one UserError line naming it.
  Offline (``HF_HUB_OFFLINE``, read at each call) only local files and the hub cache are used.
- Weight files named by URL (:func:`fetch_weights`) are looked up in one order: the explicit
  path (a file, or a folder holding the file), ``$LATENTBENCH_WEIGHTS``, torch's hub cache, then
  downloaded into that cache (checking the sha256 prefix torch-hub file names carry).
- :func:`folder_digest` identifies the weights of a local model folder (it keys caches).

Every failure a user can cause (missing folder, hub id not cached offline, a folder that is not
the expected model, custom code) is one UserError line naming the folder or hub id and how to
supply it instead. Reading the files themselves safely is :mod:`latentbench.files`.

TAESD's upstream ``.pth`` files keep their own lookup for now (:mod:`latentbench.spaces.taesd`:
explicit path, ``$LATENTBENCH_WEIGHTS`` and its ``taesd/`` subfolder, a hash-checked copy under
``$LATENTBENCH_CACHE/weights/taesd``, download): it verifies whole-file hashes recorded per file
rather than torch-hub name prefixes, and caches under latentbench's root, not torch's.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from latentbench.errors import UserError
from latentbench.files import first_line

WEIGHTS_ENV = "LATENTBENCH_WEIGHTS"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub reads it only once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


# -- Hugging Face models --------------------------------------------------------------------------
def _looks_like_path(source: str) -> bool:
    """A name no hub id has: it starts like a path, or has more than one '/'."""
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def load_pretrained(
    cls: Any,
    source: str | Path,
    what: str,
    *,
    option: str = "model=PATH",
    subfolder: str | None = None,
    **kwargs: Any,
) -> Any:
    """``cls.from_pretrained(source, trust_remote_code=False, ...)`` with one-line UserErrors.

    Args:
        cls: a transformers / diffusers class with ``from_pretrained`` (Auto classes included).
        source: a local folder (``save_pretrained``) or a hub id (``OWNER/NAME``).
        what: what is loaded, for messages ("CLIP model", "text encoder", ...).
        option: how the user passes a local folder instead (``model=PATH``, ``--clip-model``).
        subfolder: the model's subfolder inside ``source`` (diffusers pipelines).
        kwargs: passed on to ``from_pretrained``.
    """
    name = str(source)
    local = Path(name).expanduser()
    sub = f" (subfolder {subfolder!r})" if subfolder else ""
    if local.is_dir():
        name = str(local)
    elif _looks_like_path(name):
        raise UserError(f"{what} {name!r}{sub}: no such folder, and not a hub id (OWNER/NAME)")
    if subfolder is not None:
        kwargs["subfolder"] = subfolder
    try:
        return cls.from_pretrained(
            name, trust_remote_code=False, local_files_only=hub_offline(), **kwargs
        )
    except (OSError, ValueError, SafetensorError, pickle.UnpicklingError, EOFError) as e:
        if isinstance(e, ValueError) and "trust_remote_code=True" in str(e):
            raise UserError(
                f"{what} {name!r}{sub} ships its own Python code (auto_map); latentbench never "
                "runs code that comes with a model (trust_remote_code=False): use a model whose "
                "architecture transformers knows"
            ) from None
        if local.is_dir():
            raise UserError(f"{name!r}{sub} is not a {what} folder ({first_line(e)})") from None
        raise UserError(
            f"cannot load {what} {name!r}{sub} from the Hugging Face hub or its cache "
            f"({first_line(e)}): pass a local folder saved with save_pretrained ({option}), or "
            "go online (with HF_HUB_OFFLINE unset) to download it"
        ) from None


def hub_snapshot(
    repo_id: str,
    files: list[str],
    what: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """The local folder of hub repo ``repo_id`` holding ``files`` (downloaded unless offline;
    only those files, never code). A UserError line when it cannot be had."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    if _looks_like_path(repo_id):
        raise UserError(f"{what} {repo_id!r}: no such folder, and not a hub id (OWNER/NAME)")
    try:
        folder = snapshot_download(
            repo_id,
            allow_patterns=files,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=hub_offline(),
        )
    except (OSError, ValueError, HfHubHTTPError) as e:  # not cached offline: an OSError
        raise UserError(
            f"cannot get {what} {repo_id!r} from the Hugging Face hub or its cache "
            f"({first_line(e)}): pass a local folder, or go online (HF_HUB_OFFLINE unset)"
        ) from None
    return Path(folder)


def pretrained_source(model: str) -> tuple[str, dict[str, Any]]:
    """(what ``from_pretrained`` gets, how a result's variant names the weights): a local
    folder by its path and content digest, anything else as a hub id."""
    local = Path(model).expanduser()
    if local.is_dir():
        return str(local), {"folder": str(local), **folder_digest(local)}
    return model, {"hub_id": model}


# -- weight files ---------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsFile:
    """A local weights file and its sha256, checked against the hash in torch-hub file names."""

    path: Path
    sha256: str

    @property
    def official(self) -> bool | None:
        """Whether the sha256 starts with the hash in the file name (``name-<hash>.pth``)."""
        from torch.hub import HASH_REGEX

        match = HASH_REGEX.search(self.path.name)
        return self.sha256.startswith(match.group(1)) if match and match.group(1) else None

    def describe(self) -> dict[str, Any]:
        return {"file": self.path.name, "sha256": self.sha256[:16], "official": self.official}

    @classmethod
    def of(cls, path: Path) -> WeightsFile:
        return cls(path, file_sha256(path))


def find_local_weights(file_name: str, path: str | Path | None) -> Path | None:
    """``path`` (a file, or a folder holding ``file_name``), else ``$LATENTBENCH_WEIGHTS/<file>``.

    An explicit ``path`` that does not exist is a UserError; otherwise None when nothing is found.
    """
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir():
            p = p / file_name
        if not p.is_file():
            raise UserError(f"weights file not found: {p} (expected {file_name})")
        return p
    folder = os.environ.get(WEIGHTS_ENV)
    if folder and (Path(folder).expanduser() / file_name).is_file():
        return Path(folder).expanduser() / file_name
    return None


def fetch_weights(
    file_name: str,
    url: str,
    path: str | Path | None,
    *,
    what: str,
    allow_missing: bool = False,
) -> WeightsFile | None:
    """Find ``file_name`` locally (see :func:`find_local_weights`, then torch's hub cache), else
    download it from ``url`` into the hub cache, checking the sha256 prefix in its name.

    With ``allow_missing`` nothing is downloaded and None is returned when no local file exists.
    """
    found = find_local_weights(file_name, path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if found is None and cached.is_file():
        found = cached
    if found is None and not allow_missing:
        from torch.hub import HASH_REGEX

        match = HASH_REGEX.search(file_name)
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(cached), match.group(1) if match else None)
        except (OSError, RuntimeError) as e:
            raise UserError(
                f"cannot get {what} weights {file_name} from {url} ({first_line(e)}); download "
                f"that file into the folder named by ${WEIGHTS_ENV} (as "
                f"${WEIGHTS_ENV}/{file_name}) or into torch's cache ({cached})"
            ) from None
        found = cached
    return WeightsFile.of(found) if found is not None else None


def folder_digest(folder: Path) -> dict[str, str]:
    """sha256 of the weight files of a local model folder (identifies the weights in caches)."""
    digest = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f.name.encode())
        digest.update(file_sha256(f).encode())
    return {"sha256": digest.hexdigest()[:16]}
