"""ViT-to-pyramid neck (ViTDet's simple feature pyramid) that passes the registers through.

Registered as ``SimpleFeaturePyramid`` in mmseg's and mmdet's ``MODELS`` by the plugins.
"""
from mmengine.model import BaseModule
from timm.layers import LayerNorm2d  # LayerNorm over the channels of (B, C, H, W) maps
from torch import nn


def _rescale(dim, scale):
    """Layers taking a (B, dim, H, W) map to scale ``scale``; returns (module, out channels)."""
    if scale == 4.0:
        return nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), LayerNorm2d(dim // 2), nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2)), dim // 4
    if scale == 2.0:
        return nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), dim // 2
    if scale == 1.0:
        return nn.Identity(), dim
    if scale in (0.5, 0.25):
        return nn.MaxPool2d(int(1 / scale), stride=int(1 / scale)), dim
    raise ValueError(f'scale factor {scale} is not one of 4, 2, 1, 0.5, 0.25')


class SimpleFeaturePyramid(BaseModule):
    """Stride-16 ViT maps -> a pyramid (strides 4, 8, 16, 32 by default), registers untouched.

    With one input map every level is built from it (ViTDet); with one map per level (from
    different blocks, ``out_indices`` of the backbone) level ``i`` is built from map ``i``.

    Args:
        in_channels (int): Channels D of the backbone maps.
        out_channels (int): Channels of every pyramid level.
        scale_factors (Sequence[float]): Scale of each level relative to the input map.
        pass_registers (bool): Return the registers (the backbone's last output) after the
            pyramid, for register-query heads; False drops them (upstream heads).
        init_cfg (dict | None): mmengine init config.

    Returns (forward):
        tuple: ``(*levels, registers)`` or ``levels``; level ``i`` is
        (B, out_channels, H * s_i, W * s_i).
    """

    def __init__(self, in_channels, out_channels=256, scale_factors=(4.0, 2.0, 1.0, 0.5),
                 pass_registers=True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.pass_registers = pass_registers
        self.levels = nn.ModuleList()
        for scale in self.scale_factors:
            rescale, dim = _rescale(in_channels, scale)
            self.levels.append(nn.Sequential(
                rescale,
                nn.Conv2d(dim, out_channels, 1, bias=False), LayerNorm2d(out_channels),
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                LayerNorm2d(out_channels)))

    def forward(self, inputs):
        *maps, registers = inputs
        if registers.dim() != 3:
            raise ValueError('the backbone output must end with registers (B, N, D); got a '
                             f'{tuple(registers.shape)} tensor last (use type=RatsViT)')
        if len(maps) not in (1, len(self.levels)):
            raise ValueError(f'{len(maps)} backbone maps for {len(self.levels)} pyramid '
                             'levels: give one map, or one per level (out_indices)')
        sources = maps if len(maps) == len(self.levels) else maps * len(self.levels)
        pyramid = tuple(level(x) for level, x in zip(self.levels, sources))
        return (*pyramid, registers) if self.pass_registers else pyramid
