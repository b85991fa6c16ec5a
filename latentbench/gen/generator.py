"""A self-describing generator: the DiT plus everything needed to rebuild and sample it.

:class:`Generator` is a :class:`~latentbench.gen.dit.DiT` that also owns the latent statistics it
was trained on (normalisation), its text encoder (as a JSON description), the training shift and
its flow/sampling settings, and a note of the space it generates in. Through
``huggingface_hub``'s :class:`~huggingface_hub.PyTorchModelHubMixin` the constructor's arguments
*are* the saved config, so it cannot drift from the model::

    generator.save_pretrained("out/generator")        # config.json + model.safetensors
    same = Generator.from_pretrained("out/generator")  # or a hub id, or a local hub folder

The weights have the DiT's parameter names, so a train-gen checkpoint (``model.safetensors`` /
``ema.safetensors``) loads into a Generator unchanged.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor

from latentbench.config import from_dict
from latentbench.errors import UserError
from latentbench.gen.dit import Condition, CondKind, CondSpec, DiT, DiTConfig
from latentbench.gen.flow import FlowConfig
from latentbench.gen.qwen import QwenGenConfig, QwenGenerator
from latentbench.gen.text import FrozenTextEncoder, WordTokenizer, build_text_encoder

TextEncoder = WordTokenizer | FrozenTextEncoder


class TaskKind(str, enum.Enum):
    """What a generator makes: class-conditional, text-to-image or edited images."""

    CLASS = "class"
    T2I = "t2i"
    EDIT = "edit"


class _Shared:
    """A holder that ``copy.deepcopy`` returns as is: an EMA copy of a Generator shares its
    (possibly large, frozen) text encoder instead of copying it."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


class GeneratorParts:
    """What a Generator adds to its network: normalisation, conditions, text encoder, kind,
    strict loading. Shared by :class:`Generator` (the DiT) and :class:`PaperGenerator` (Qwen2)."""

    cond_spec: CondSpec

    def _attach(
        self,
        latent_mean: list[float],
        latent_std: list[float],
        shift: float,
        flow: FlowConfig | dict[str, Any] | None,
        text_encoder: dict[str, Any] | None,
        space: dict[str, Any] | None,
    ) -> None:
        channels = self.channels  # type: ignore[attr-defined]
        self.flow = (
            flow if isinstance(flow, FlowConfig) else from_dict(FlowConfig, flow or {}, "flow")
        )
        self.shift = float(shift)
        if len(latent_mean) != channels or len(latent_std) != channels:
            raise ValueError(f"latent statistics must have {channels} channels")
        stat = lambda v: torch.tensor(v, dtype=torch.float32)[None, :, None, None]  # noqa: E731
        register = self.register_buffer  # type: ignore[attr-defined]
        register("latent_mean", stat(latent_mean), persistent=False)  # (1, C, 1, 1)
        register("latent_std", stat(latent_std), persistent=False)
        if self.cond_spec.kind is not CondKind.CLASS and not text_encoder:
            raise ValueError(
                f"a {self.cond_spec.kind.value}-conditional generator needs a text encoder"
            )
        self.text_encoder_state = text_encoder
        self.space_info = dict(space or {})
        self._text_encoder = _Shared()

    # -- what it is ------------------------------------------------------------------------------
    @property
    def kind(self) -> TaskKind:
        if self.cond_spec.kind is CondKind.CLASS:
            return TaskKind.CLASS
        return TaskKind.EDIT if self.cond_spec.edit else TaskKind.T2I

    @property
    def text(self) -> TextEncoder | None:
        """The text encoder, built from its description on first use (None for a class)."""
        if self.text_encoder_state is None:
            return None
        if self._text_encoder.value is None:
            te = self.text_encoder_state
            self._text_encoder.value = build_text_encoder(
                te["kind"], path=te.get("path"), max_len=int(te["max_len"]), vocab=te.get("vocab")
            )
        return self._text_encoder.value

    def use_text_encoder(self, encoder: TextEncoder) -> None:
        """Use an already built ``encoder`` (it must be the one the config describes)."""
        if encoder.state() != self.text_encoder_state:
            raise ValueError("the text encoder differs from the generator's description")
        self._text_encoder.value = encoder

    # -- normalisation (the space's per-channel stats) -------------------------------------------
    def normalize(self, z: Tensor) -> Tensor:
        return (z - self.latent_mean.to(z.device)) / self.latent_std.to(z.device)

    def denormalize(self, z: Tensor) -> Tensor:
        return z * self.latent_std.to(z.device) + self.latent_mean.to(z.device)

    # -- conditions ------------------------------------------------------------------------------
    def condition(
        self,
        labels: Tensor | None,
        captions: list[str] | None,
        sources: Tensor | None,
        drop: Tensor,
        device: torch.device,
    ) -> Condition:
        """Condition of a batch; where ``drop`` (B,) is True, the null condition (label
        ``num_classes`` or the empty caption). Sources (normalised) are never dropped."""
        spec = self.cond_spec
        if spec.kind is CondKind.CLASS:
            if labels is None:
                raise ValueError("a class-conditional generator needs labels")
            y = torch.where(drop, torch.full_like(labels, spec.num_classes), labels)
            return Condition(labels=y.to(device))
        if captions is None or self.text is None:
            raise ValueError(f"a {self.kind.value} generator needs captions")
        caps = ["" if d else c for c, d in zip(captions, drop.tolist())]
        tb = self.text(caps, device)
        return Condition(
            tokens=tb.ids,
            features=tb.features,
            mask=tb.mask,
            source=sources.to(device) if sources is not None else None,
        )

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> Any:
        """As the mixin's, but strict (a missing or extra tensor is an error), silent, and
        reading safetensors only (no pickle fallback)."""
        from huggingface_hub import constants, hf_hub_download
        from safetensors.torch import load_model

        model = cls(**model_kwargs)
        local = Path(model_id)
        if local.is_dir():
            weights = local / constants.SAFETENSORS_SINGLE_FILE
            if not weights.is_file():
                raise UserError(f"{model_id}: no {constants.SAFETENSORS_SINGLE_FILE}")
        else:
            weights = Path(
                hf_hub_download(
                    repo_id=model_id,
                    filename=constants.SAFETENSORS_SINGLE_FILE,
                    revision=revision,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    token=token,
                    local_files_only=local_files_only,
                )
            )
        load_model(model, str(weights), strict=strict, device=map_location)
        return model.eval()


HUB = {"library_name": "latentbench", "tags": ["latentbench", "rectified-flow"]}


class Generator(GeneratorParts, DiT, PyTorchModelHubMixin, **HUB):  # type: ignore[misc]
    """DiT + latent statistics + text encoder description + flow settings.

    ``latent_mean`` / ``latent_std`` (C,): the per-channel statistics that map the space's raw
    latents to the normalised scale the DiT works on. ``shift``: the training time shift (the
    sampling shift defaults to it). ``text_encoder``: the encoder's ``state()`` (None for a
    class-conditional generator). ``space``: the space it was trained on (name, options, image
    size, fingerprint), to rebuild it; not used by the generator itself.
    """

    def __init__(
        self,
        dit: DiTConfig | dict[str, Any],
        cond: CondSpec | dict[str, Any],
        channels: int,
        latent_size: int,
        latent_mean: list[float],
        latent_std: list[float],
        shift: float,
        flow: FlowConfig | dict[str, Any] | None = None,
        text_encoder: dict[str, Any] | None = None,
        space: dict[str, Any] | None = None,
    ) -> None:
        dit_cfg = dit if isinstance(dit, DiTConfig) else from_dict(DiTConfig, dit, "dit")
        cspec = cond if isinstance(cond, CondSpec) else from_dict(CondSpec, cond, "cond")
        DiT.__init__(self, dit_cfg, int(channels), int(latent_size), cspec)
        self._attach(latent_mean, latent_std, shift, flow, text_encoder, space)


class PaperGenerator(GeneratorParts, QwenGenerator, PyTorchModelHubMixin, **HUB):  # type: ignore[misc]
    """The paper's Qwen2 generator (:mod:`latentbench.gen.qwen`, preset ``paper``) with the
    same arguments as :class:`Generator` (``dit``: a :class:`QwenGenConfig`)."""

    def __init__(
        self,
        dit: QwenGenConfig | dict[str, Any],
        cond: CondSpec | dict[str, Any],
        channels: int,
        latent_size: int,
        latent_mean: list[float],
        latent_std: list[float],
        shift: float,
        flow: FlowConfig | dict[str, Any] | None = None,
        text_encoder: dict[str, Any] | None = None,
        space: dict[str, Any] | None = None,
    ) -> None:
        qcfg = dit if isinstance(dit, QwenGenConfig) else from_dict(QwenGenConfig, dit, "dit")
        cspec = cond if isinstance(cond, CondSpec) else from_dict(CondSpec, cond, "cond")
        QwenGenerator.__init__(self, qcfg, int(channels), int(latent_size), cspec)
        self._attach(latent_mean, latent_std, shift, flow, text_encoder, space)


AnyGenerator = Generator | PaperGenerator


def generator_class(dit: Any) -> type[Generator] | type[PaperGenerator]:
    """The class a ``dit`` config (object or dict) belongs to: Qwen2 when it names an ``llm``."""
    if isinstance(dit, QwenGenConfig) or (isinstance(dit, dict) and "llm" in dit):
        return PaperGenerator
    return Generator


def make_generator(**config: Any) -> Generator | PaperGenerator:
    """A generator of either class from its saved arguments (``config.json``)."""
    return generator_class(config["dit"])(**config)
