"""Transformer block with either register attention (RATS) or full self-attention (ViT)."""
from functools import partial

from timm.layers import Attention, DropPath, LayerScale, Mlp
from torch import nn

from .register_attention import RegisterAttention

ATTN_MODES = ('rats', 'full')


class Block(nn.Module):
    """Pre-norm block with timm / DINO parameter names (``norm1``, ``attn.qkv``, ``attn.proj``,
    ``ls1``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``, ``ls2``).

    Args:
        dim (int): Token dimension.
        num_heads (int): Attention heads.
        num_registers (int): Registers at the front of the sequence (used by ``'rats'``).
        attn_mode (str): ``'rats'`` (compress / communicate / broadcast through the registers)
            or ``'full'`` (ordinary self-attention over all tokens).
        mlp_ratio (float): Hidden size of the MLP relative to ``dim``.
        qkv_bias (bool): Bias in the ``qkv`` projection.
        init_values (float | None): LayerScale init; ``None`` disables LayerScale.
        drop_path (float): Stochastic depth rate.
        attn_drop (float): Attention-weight dropout.
        proj_drop (float): Dropout after projections.
        norm_layer (callable): Normalisation layer constructor.
        compress (str): ``RegisterAttention``'s compress step, ``'attention'`` (the paper's)
            or ``'competition'`` (used by ``'rats'``).
        logits (str): ``RegisterAttention``'s logits, ``'dot'`` (the paper's) or
            ``'cosine'`` (scaled cosine; used by ``'rats'``).
    """

    def __init__(self, dim, num_heads, num_registers=0, attn_mode='rats', mlp_ratio=4.0,
                 qkv_bias=True, init_values=None, drop_path=0.0, attn_drop=0.0,
                 proj_drop=0.0, norm_layer=partial(nn.LayerNorm, eps=1e-6),
                 compress='attention', logits='dot'):
        super().__init__()
        if attn_mode not in ATTN_MODES:
            raise ValueError(f'attn_mode={attn_mode!r} is not one of {ATTN_MODES}')
        self.norm1 = norm_layer(dim)
        if attn_mode == 'rats':
            self.attn = RegisterAttention(dim, num_heads, num_registers, qkv_bias=qkv_bias,
                                          attn_drop=attn_drop, proj_drop=proj_drop,
                                          compress=compress, logits=logits)
        else:
            self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias,
                                  attn_drop=attn_drop, proj_drop=proj_drop)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU,
                       drop=proj_drop)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        """Args:
            x (Tensor): (B, T, D) tokens.

        Returns:
            Tensor: (B, T, D) tokens.
        """
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
