"""Shared network blocks: ViT block (SDPA), LDM-style conv decoder, PatchGAN discriminator."""
