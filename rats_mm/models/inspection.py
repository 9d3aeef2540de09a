"""What the analyses read inside a trained backbone besides its outputs: the last block's
patch keys and register-attention weights, and every block's compress / communicate /
broadcast weights (a mixin of ``RatsViT``, kept apart from the timm model interface), and
which prefix tokens stand for the image."""
import torch

__all__ = ['AttentionInspection', 'embedding_tokens']


def embedding_tokens(cls, registers):
    """The prefix tokens a model's image embedding is read from, (B, p, D): its [CLS] token
    (p = 1) when it has one (a ViT, with or without registers), else its registers (p = N; a
    RATS embeds an image as their mean). The one rule for every reader of "the image's
    tokens": the collapse diagnostics' stream norm and the analyses' register-patch maps.

    Args:
        cls (Tensor | None): (B, D) [CLS] token, None without one (``RatsViT.token_groups``).
        registers (Tensor): (B, N, D) registers.

    Returns:
        Tensor: (B, 1, D) or (B, N, D).
    """
    return cls[:, None] if cls is not None else registers


class AttentionInspection:
    """Read-only views into the attention of a ``RatsViT`` (needs its ``_embed``, ``blocks``,
    ``attn_mode``, ``token_groups`` and ``embed_dim``)."""

    @torch.no_grad()
    def _last_block_input(self, x, what=None):
        """Normed input of the last block's attention, (B, T, D); ``what`` names the
        ``'rats'``-only weights asked for (None: any attention mode)."""
        if what is not None and self.attn_mode != 'rats':
            raise ValueError(f"{what} weights exist only for attn_mode='rats'")
        x, _ = self._embed(x)
        for blk in self.blocks[:-1]:
            x = blk(x)
        return self.blocks[-1].norm1(x)

    def last_patch_keys(self, x):
        """Keys of the patch tokens in the last block's attention, heads concatenated,
        (B, L, D): the features LOST builds its patch graph from (either attention mode; the
        ``qkv`` layout is timm's in both)."""
        _, _, tokens = self.token_groups(self._last_block_input(x))         # (B, L, D)
        with torch.no_grad():
            qkv = self.blocks[-1].attn.qkv(tokens)                          # (B, L, 3D)
        return qkv[..., self.embed_dim:2 * self.embed_dim]                  # (B, L, D)

    def last_compress_weights(self, x):
        """Compress-step attention of the last block, (B, N, L) (``'rats'`` only)."""
        x = self._last_block_input(x, 'compress')
        return self.blocks[-1].attn.compress_weights(x)

    def last_broadcast_weights(self, x):
        """Broadcast-step attention of the last block, (B, L, N): which register each patch
        reads from (each head's n entries sum to 1; ``'rats'`` only)."""
        x = self._last_block_input(x, 'broadcast')
        return self.blocks[-1].attn.broadcast_weights(x)

    @torch.no_grad()
    def register_step_weights(self, x):
        """The compress / communicate / broadcast weights of every block (``'rats'`` only).

        Args:
            x (Tensor): (B, 3, H, W) images.

        Returns:
            list[dict]: per block, :meth:`RegisterAttention.step_weights` of its input.
        """
        if self.attn_mode != 'rats':
            raise ValueError("register step weights exist only for attn_mode='rats'")
        x, _ = self._embed(x)
        weights = []
        for blk in self.blocks:
            weights.append(blk.attn.step_weights(blk.norm1(x)))
            x = blk(x)
        return weights
