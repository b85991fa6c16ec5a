"""What the spaces built on a pretrained encoder (``rae``, ``rae-hd``, ``semrec``, ``svae``...)
share: building the encoder from the typed config, the config as the space's options, and the
encoder kept in eval mode when the space trains."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from latentbench.config import to_dict
from latentbench.spaces.backbones import Backbone, build_backbone
from latentbench.spaces.base import LatentSpace


class EncoderSpace(LatentSpace):
    """A space with ``self.encoder`` (a :class:`Backbone`) and ``self.cfg``, a typed config with
    the fields ``encoder`` and ``encoder_input_size``."""

    encoder: Backbone
    cfg: Any

    def _build_encoder(self, config: Any, pretrained: bool) -> None:
        """Build the encoder of ``config``; keep the config with the encoder resolved to what was
        built, so that saving it rebuilds the same encoder."""
        self.encoder = build_backbone(config.encoder, pretrained, config.encoder_input_size)
        self.cfg = replace(
            config,
            encoder=self.encoder.config.to_dict(),
            encoder_input_size=self.encoder.config.input_size,
        )

    def resolved_options(self) -> dict[str, Any]:
        """The whole typed config, encoder resolved: the factory rebuilds exactly this."""
        return to_dict(self.cfg)

    def train(self, mode: bool = True) -> EncoderSpace:
        super().train(mode)
        self.encoder.eval()  # no dropout, frozen BatchNorm statistics, also when its weights train
        return self
