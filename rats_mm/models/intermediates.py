"""timm's intermediate-feature interface of ``RatsViT`` (a mixin; the model owns
``_embed``, ``_run_block``, ``blocks``, ``norm``, ``token_groups``, ``fc_norm`` and
``reset_classifier``): which blocks to take, their patch maps, and pruning what follows the
last one taken (timm's ``features_only`` getter)."""
import torch
from timm.models._features import feature_take_indices
from torch import nn

__all__ = ['IntermediatesMixin']


class IntermediatesMixin:
    """``take_indices``, ``forward_intermediates``, ``get_intermediate_layers`` and
    ``prune_intermediate_layers`` with timm ``VisionTransformer``'s semantics."""

    def prune_intermediate_layers(self, indices=1, prune_norm=False, prune_head=True):
        """Drop the blocks after the last of ``indices`` (timm's ``features_only`` getter
        calls it).

        Args:
            indices (int | Sequence[int]): As ``forward_intermediates`` takes them.
            prune_norm (bool): Also replace the final norm by an identity.
            prune_head (bool): Also drop ``fc_norm``, the head and the pooling.

        Returns:
            list[int]: The absolute indices taken (as ``take_indices`` resolves them).
        """
        take, last = self.take_indices(indices)
        self.blocks = self.blocks[:last + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.fc_norm = nn.Identity()
            self.reset_classifier(0, '')
        return take

    def take_indices(self, indices=None):
        """Absolute block indices as timm's ``feature_take_indices`` resolves them: None takes
        every block, an int n the last n, a sequence those blocks (negative allowed).

        Returns:
            tuple[list[int], int]: The sorted indices and the largest.
        """
        depth = len(self.blocks)
        if isinstance(indices, int) and not 0 < indices <= depth:
            raise ValueError(f'indices={indices}: ask for 1..{depth} last blocks')
        if indices is not None and not isinstance(indices, int):
            bad = [i for i in indices if not -depth <= i < depth]
            if bad or not indices:
                raise ValueError(f'block indices {list(indices)} are out of range for depth '
                                 f'{depth}')
        take, _ = feature_take_indices(depth, indices)
        take = sorted(set(take))
        return take, take[-1]

    def forward_intermediates(self, x, indices=None, return_prefix_tokens=False, norm=False,
                              stop_early=False, output_fmt='NCHW', intermediates_only=False):
        """Patch maps after chosen blocks, with timm ``VisionTransformer``'s semantics.

        Args:
            x (Tensor): (B, C, H, W) images.
            indices (int | Sequence[int] | None): None every block, an int n the last n, a
                sequence those block indices (negative allowed).
            return_prefix_tokens (bool): Pair each map with that block's prefix tokens
                ([CLS] if any, then the registers), (B, num_prefix_tokens, D).
            norm (bool): Apply the final norm to the taken tokens.
            stop_early (bool): Run no block after the last taken one.
            output_fmt (str): ``'NCHW'`` maps (B, D, h, w) or ``'NLC'`` tokens (B, L, D).
            intermediates_only (bool): Return only the intermediates.

        Returns:
            list | tuple: the intermediates (maps, or ``(map, prefix_tokens)`` pairs), or
            ``(final normed tokens (B, T, D), intermediates)``.
        """
        if output_fmt not in ('NCHW', 'NLC'):
            raise ValueError(f"output_fmt={output_fmt!r} is not 'NCHW' or 'NLC'")
        take, last = self.take_indices(indices)
        x, (h, w) = self._embed(x)
        B = x.shape[0]
        blocks = self.blocks[:last + 1] if stop_early or intermediates_only else self.blocks
        outs = []
        for i, blk in enumerate(blocks):
            x = self._run_block(blk, x)
            if i not in take:
                continue
            y = self.norm(x) if norm else x
            cls, registers, maps = self.token_groups(y)                      # maps (B, L, D)
            if output_fmt == 'NCHW':
                maps = maps.transpose(1, 2).reshape(B, -1, h, w)             # (B, D, h, w)
            if return_prefix_tokens:
                prefix = registers if cls is None else torch.cat([cls[:, None], registers], 1)
                outs.append((maps, prefix))
            else:
                outs.append(maps)
        if intermediates_only:
            return outs
        return self.norm(x), outs

    def get_intermediate_layers(self, x, n=1, reshape=False, return_prefix_tokens=False,
                                norm=False):
        """DINO's / timm's older API over ``forward_intermediates``: the patch tokens
        (B, L, D), or with ``reshape`` maps (B, D, h, w), of the last ``n`` blocks (an int) or
        of the blocks ``n`` names; with ``return_prefix_tokens`` ``(patches, prefix)`` pairs.

        Returns:
            tuple: One entry per block taken.
        """
        return tuple(self.forward_intermediates(
            x, indices=n, return_prefix_tokens=return_prefix_tokens, norm=norm,
            output_fmt='NCHW' if reshape else 'NLC', intermediates_only=True))
