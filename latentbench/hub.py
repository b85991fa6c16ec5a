"""Where models and weights come from: the one way latentbench reaches the Hugging Face hub and
weight files on disk.

- :func:`load_pretrained` is the only ``from_pretrained`` call of the package (transformers
  models, configs, tokenizers and processors; diffusers models). It always passes
  ``trust_remote_code=False``: code that comes with a folder or hub repo (``auto_map`` + ``.py``
  files) is never run and never prompted for; such a source is one UserError line naming it.
  Offline (``HF_HUB_OFFLINE``, read at each call) only local files and the hub cache are used.
- One lookup order for every weight latentbench loads: (1) the explicit path (option), (2) the
  folder named by ``$LATENTBENCH_WEIGHTS``, (3) the cache (the Hugging Face hub cache for hub
  models, torch's hub cache for torch-hub files, ``weights/`` under latentbench's cache root for
  TAESD's files), (4) a download. Hub models: :func:`model_folder` (steps 1-2), then
  huggingface_hub. Weight files named by URL: :func:`fetch_weights` / :func:`find_local_weights`
  (steps 1-2), :func:`download_weights` (step 4; checks the sha256 prefix torch-hub file names
  carry, or a whole-file hash). Saved latentbench spaces on the hub: :func:`hub_snapshot`.
- One offline rule: ``HF_HUB_OFFLINE`` (read at each call, :func:`hub_offline`) turns every
  download off; only local files and caches are used.
- One cache root: :func:`latentbench.runs.cache_root`; one cache-key function:
  :func:`latentbench.runs.cache_digest`.
- :func:`folder_digest` identifies the weights of a local model folder (it keys caches).

Every failure a user can cause (missing folder, hub id not cached offline, a folder that is not
the expected model, custom code) is one UserError line naming the folder or hub id and how to
supply it instead. Reading the files themselves safely is :mod:`latentbench.files`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from latentbench.atomic import atomic_path
from latentbench.errors import UserError
from latentbench.files import first_line
from latentbench.runs import WEIGHTS_ENV


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub reads it only once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


# -- Hugging Face models --------------------------------------------------------------------------
def _looks_like_path(source: str) -> bool:
    """A name no hub id has: it starts like a path, or has more than one '/'."""
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def model_folder(source: str) -> Path | None:
    """Steps 1 and 2 of the lookup order for a hub model: ``source`` itself when it is a local
    folder, else a copy of hub id ``OWNER/NAME`` under ``$LATENTBENCH_WEIGHTS`` (as
    ``OWNER/NAME/`` or ``NAME/``, e.g. made with ``hf download OWNER/NAME --local-dir``).
    None: use the hub cache, or download (steps 3 and 4, by huggingface_hub)."""
    local = Path(source).expanduser()
    if local.is_dir():
        return local
    if _looks_like_path(source) or source.count("/") != 1:
        return None
    for folder in weights_folders():
        for candidate in (folder / source, folder / source.split("/")[1]):
            if candidate.is_dir():
                return candidate
    return None


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
    local = model_folder(name) or Path(name).expanduser()
    sub = f" (subfolder {subfolder!r})" if subfolder else ""
    if local.is_dir():
        if name != str(local) and subfolder and not (local / subfolder).is_dir():
            subfolder = None  # a $LATENTBENCH_WEIGHTS copy of the model itself, not its pipeline
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
    local = model_folder(model)
    if local is not None:
        return str(local), {"folder": str(local), **folder_digest(local)}
    return model, {"hub_id": model}


def load_frozen(
    model_cls: Any,
    processor_cls: Any,
    model: str,
    what: str,
    option: str,
    device: str | torch.device | None = None,
) -> tuple[Any, Any, torch.device, dict[str, Any]]:
    """A transformers model in eval mode without gradients, on ``device`` (default CPU), and its
    processor, both from ``model`` (hub id or folder): (model, processor, device, the weights as
    a result's variant names them). ``what`` ("CLIP") and ``option`` name them in errors."""
    path, weights = pretrained_source(model)
    net = load_pretrained(model_cls, path, f"{what} model", option=option)
    net = net.eval().requires_grad_(False)
    processor = load_pretrained(processor_cls, path, f"{what} processor", option=option)
    dev = torch.device(device or "cpu")
    net.to(dev)
    return net, processor, dev, weights


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


def weights_folders(subfolder: str | None = None) -> list[Path]:
    """``$LATENTBENCH_WEIGHTS`` and, when given, its ``subfolder`` (none when it is unset)."""
    root = os.environ.get(WEIGHTS_ENV)
    if not root:
        return []
    folder = Path(root).expanduser()
    return [folder, folder / subfolder] if subfolder else [folder]


def find_local_weights(
    file_name: str, path: str | Path | None, subfolder: str | None = None
) -> Path | None:
    """Steps 1 and 2 of the lookup order: ``path`` (a file, or a folder holding ``file_name``),
    else ``$LATENTBENCH_WEIGHTS/<file>`` (or ``$LATENTBENCH_WEIGHTS/<subfolder>/<file>``).

    An explicit ``path`` that does not exist is a UserError; otherwise None when nothing is found.
    """
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir():
            p = p / file_name
        if not p.is_file():
            raise UserError(f"weights file not found: {p} (expected {file_name})")
        return p
    for folder in weights_folders(subfolder):
        if (folder / file_name).is_file():
            return folder / file_name
    return None


def torch_cache_file(file_name: str) -> Path:
    """Where torch-hub downloads keep ``file_name`` (step 3 for torch-hub weights)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def download_weights(
    url: str, target: Path, what: str, how: str, verify: Callable[[Path], bool] | None = None
) -> Path:
    """Step 4: download ``url`` to ``target`` (atomically), unless offline (``HF_HUB_OFFLINE``:
    the one offline rule, for hub models and weight files alike). The sha256 prefix in a
    torch-hub file name is checked, and ``verify`` (a whole-file check) when given; a file that
    fails is not kept. ``how``: how the user supplies the file instead."""
    from torch.hub import HASH_REGEX

    if hub_offline():
        raise UserError(f"{what}: weight file {target.name} not found (offline): {how}")
    match = HASH_REGEX.search(target.name)
    try:
        with atomic_path(target) as tmp:
            prefix = match.group(1) if match else None
            torch.hub.download_url_to_file(url, str(tmp), prefix, progress=False)
            if verify is not None and not verify(tmp):
                raise UserError(f"{what}: {url} does not match its recorded hash; nothing was kept")
    except (OSError, RuntimeError) as e:  # URLError, timeouts, HTTP errors, a bad hash prefix
        raise UserError(
            f"{what}: weight file {target.name} not found, download failed ({first_line(e)}): {how}"
        ) from None
    return target


def fetch_weights(
    file_name: str,
    url: str,
    path: str | Path | None,
    *,
    what: str,
    allow_missing: bool = False,
) -> WeightsFile | None:
    """``file_name`` in the lookup order: ``path``, ``$LATENTBENCH_WEIGHTS``, torch's hub cache,
    then a download from ``url`` into that cache (see :func:`download_weights`).

    With ``allow_missing`` nothing is downloaded and None is returned when no local file exists.
    """
    found = find_local_weights(file_name, path)
    cached = torch_cache_file(file_name)
    if found is None and cached.is_file():
        found = cached
    if found is None and not allow_missing:
        how = (
            f"download {url} into the folder named by ${WEIGHTS_ENV} (as "
            f"${WEIGHTS_ENV}/{file_name}) or into torch's cache ({cached})"
        )
        found = download_weights(url, cached, what, how)
    return WeightsFile.of(found) if found is not None else None


def folder_digest(folder: Path) -> dict[str, str]:
    """sha256 of the weight files of a local model folder (identifies the weights in caches)."""
    digest = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f.name.encode())
        digest.update(file_sha256(f).encode())
    return {"sha256": digest.hexdigest()[:16]}
