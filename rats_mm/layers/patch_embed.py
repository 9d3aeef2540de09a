"""Patch projection and the patches' position embedding at any grid.

What branches on the input's size lives in functions that ``torch.fx`` keeps as single calls
(``torch.fx.wrap``, in every module that calls them): symbolic tracing (timm's feature
extraction, torchvision's ``create_feature_extractor``) cannot branch on a traced size, and
the traced graph still runs them.
"""
import torch.fx
from timm.layers import resample_abs_pos_embed
from torch import nn

__all__ = ['PatchEmbed', 'check_patch_multiple', 'position_embedding']


def check_patch_multiple(x, patch_size):
    """Return ``x`` (B, C, H, W) unchanged; raise ``ValueError`` unless H and W are multiples
    of ``patch_size``."""
    H, W = x.shape[-2:]
    if H % patch_size or W % patch_size:
        raise ValueError(f'input size {H}x{W} is not a multiple of the patch size '
                         f'{patch_size}; pad or resize the image first')
    return x


def position_embedding(pos_embed, grid, stored_grid):
    """The position embedding of a ``grid`` of patches.

    Args:
        pos_embed (Tensor): (1, h0 * w0, D) stored embedding of the ``stored_grid``.
        grid (Sequence[int]): (h, w) patch grid of the input.
        stored_grid (tuple[int, int]): (h0, w0).

    Returns:
        Tensor: (1, h * w, D), resampled bicubically where the grids differ.
    """
    grid = tuple(int(s) for s in grid)
    if grid == tuple(stored_grid):
        return pos_embed
    return resample_abs_pos_embed(pos_embed, new_size=list(grid), old_size=list(stored_grid),
                                  num_prefix_tokens=0, interpolation='bicubic')


torch.fx.wrap('check_patch_multiple')


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (timm name ``patch_embed.proj``).

    Args:
        patch_size (int): Patch size p.
        in_chans (int): Input channels.
        embed_dim (int): Token dimension D.
    """

    def __init__(self, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        """(B, C, H, W) -> (B, h*w, D) patch tokens and the grid (h, w)."""
        x = self.proj(check_patch_multiple(x, self.patch_size))   # (B, D, h, w)
        return x.flatten(2).transpose(1, 2), x.shape[-2:]          # (B, h*w, D)
