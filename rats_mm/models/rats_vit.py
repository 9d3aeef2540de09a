"""RATS Vision Transformer; with ``attn_mode='full'`` also ViT + registers and plain ViT."""
from functools import partial

import torch
from timm.layers import resample_abs_pos_embed, trunc_normal_
from timm.models._features import feature_take_indices
from timm.models import register_model
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers import ATTN_MODES, COMPRESS_STEPS, LOGITS, Block


def _pair(size):
    return (size, size) if isinstance(size, int) else tuple(size)


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (timm name ``patch_embed.proj``)."""

    def __init__(self, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        """(B, C, H, W) -> (B, h*w, D) patch tokens and the grid (h, w)."""
        H, W = x.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f'input size {H}x{W} is not a multiple of the patch size '
                             f'{self.patch_size}; pad or resize the image first')
        x = self.proj(x)                                   # (B, D, h, w)
        return x.flatten(2).transpose(1, 2), x.shape[-2:]  # (B, h*w, D)


class RatsViT(nn.Module):
    """Vision Transformer whose [CLS] token is split into ``num_registers`` registers.

    Token order inside the blocks: ``[cls?, registers, patches]``. Only patches carry a position
    embedding (resampled bicubically for any input size that is a multiple of the patch size).

    Args:
        img_size (int | tuple): Pretraining size; sets the stored position-embedding grid.
        patch_size (int): Patch size.
        in_chans (int): Input channels.
        embed_dim (int): Token dimension D.
        depth (int): Number of blocks.
        num_heads (int): Attention heads H.
        mlp_ratio (float): MLP hidden size relative to D.
        qkv_bias (bool): Bias in the ``qkv`` projections.
        num_registers (int): Learnable registers N (a multiple of H for ``'rats'``).
        attn_mode (str): ``'rats'`` (register attention) or ``'full'`` (self-attention over all
            tokens: ViT + registers, or with ``num_registers=0, class_token=True`` a plain ViT).
        class_token (bool): Keep a [CLS] token (``'full'`` only; in RATS registers replace it).
        drop_path_rate (float): Stochastic depth, linearly increasing over blocks.
        init_values (float | None): LayerScale init (``None``: no LayerScale).
        attn_drop_rate (float): Attention-weight dropout.
        proj_drop_rate (float): Dropout after projections.
        compress (str): The compress step of register attention: ``'attention'`` (the paper's,
            each register's softmax over the patches) or ``'competition'`` (each patch's
            softmax over its head's registers; ``'rats'`` only).
        logits (str): The logits of register attention's three steps: ``'dot'`` (the
            paper's ``q . k / sqrt(d)``) or ``'cosine'`` (scaled cosine with a learnable
            temperature per step and head, ``RegisterAttention.logit_scale``; ``'rats'`` only).
    """

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=384, depth=12,
                 num_heads=6, mlp_ratio=4.0, qkv_bias=True, num_registers=48, attn_mode='rats',
                 class_token=False, drop_path_rate=0.0, init_values=None, attn_drop_rate=0.0,
                 proj_drop_rate=0.0, compress='attention', logits='dot'):
        super().__init__()
        self._check_args(img_size, patch_size, num_registers, attn_mode, class_token, compress,
                         logits)
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_registers = num_registers
        self.attn_mode = attn_mode
        self.compress = compress
        self.logits = logits
        self.has_class_token = class_token
        self.num_prefix_tokens = int(class_token) + num_registers
        self.grid_size = tuple(s // patch_size for s in _pair(img_size))
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.registers = (nn.Parameter(torch.zeros(1, num_registers, embed_dim))
                          if num_registers else None)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1],
                                                  embed_dim))
        dpr = torch.linspace(0, drop_path_rate, depth, device='cpu').tolist()  # also under meta
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, num_registers=num_registers, attn_mode=attn_mode,
                  mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, init_values=init_values,
                  drop_path=dpr[i], attn_drop=attn_drop_rate, proj_drop=proj_drop_rate,
                  compress=compress, logits=logits)
            for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.grad_checkpointing = False
        self.init_weights()

    @staticmethod
    def _check_args(img_size, patch_size, num_registers, attn_mode, class_token, compress,
                    logits):
        if attn_mode not in ATTN_MODES:
            raise ValueError(f'attn_mode={attn_mode!r} is not one of {ATTN_MODES}')
        if compress not in COMPRESS_STEPS:
            raise ValueError(f'compress={compress!r} is not one of {COMPRESS_STEPS}')
        if logits not in LOGITS:
            raise ValueError(f'logits={logits!r} is not one of {LOGITS}')
        if compress != 'attention' and attn_mode != 'rats':
            raise ValueError(f"compress={compress!r} needs attn_mode='rats': full attention "
                             'has no compress step')
        if logits != 'dot' and attn_mode != 'rats':
            raise ValueError(f"logits={logits!r} needs attn_mode='rats': full attention is "
                             "timm's, with dot-product logits")
        if attn_mode == 'rats' and class_token:
            raise ValueError("class_token=True needs attn_mode='full': in RATS the registers "
                             'replace the [CLS] token')
        if num_registers < 0:
            raise ValueError(f'num_registers={num_registers} must be >= 0')
        if not class_token and num_registers == 0:
            raise ValueError('the model needs registers or a class token (num_registers=0 and '
                             'class_token=False leave no image embedding)')
        if any(s % patch_size for s in _pair(img_size)):
            raise ValueError(f'img_size={img_size} is not a multiple of patch_size={patch_size}')

    def init_weights(self):
        """timm-style init: trunc-normal(0.02) for weights and tokens, zero biases."""
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.registers is not None:
            trunc_normal_(self.registers, std=0.02)  # distinct at init
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def set_grad_checkpointing(self, enable=True):
        """Activation checkpointing of every block in training (timm's API): the blocks'
        activations are recomputed in the backward pass instead of kept, trading compute for
        memory (see ``benchmarks/grad_checkpointing.py``)."""
        self.grad_checkpointing = bool(enable)

    def _run_block(self, blk, x):
        """One block, checkpointed when enabled and gradients are being recorded."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(blk, x, use_reentrant=False)
        return blk(x)

    def no_weight_decay(self):
        """Parameter names excluded from weight decay (the tokens, and the cosine logits'
        temperatures, as Swin V2 excludes its ``logit_scale``)."""
        names = {'pos_embed', 'cls_token', 'registers'}
        return names | {n for n, _ in self.named_parameters() if n.endswith('logit_scale')}

    def _embed(self, x):
        """(B, C, H, W) -> tokens (B, T, D) in block order, and the patch grid (h, w)."""
        patches, grid = self.patch_embed(x)                                # (B, L, D)
        pos = self.pos_embed
        if tuple(grid) != self.grid_size:
            pos = resample_abs_pos_embed(pos, new_size=list(grid), old_size=list(self.grid_size),
                                         num_prefix_tokens=0, interpolation='bicubic')
        tokens = [patches + pos]
        B = patches.shape[0]
        if self.registers is not None:
            tokens.insert(0, self.registers.expand(B, -1, -1))
        if self.cls_token is not None:
            tokens.insert(0, self.cls_token.expand(B, -1, -1))
        return torch.cat(tokens, dim=1), tuple(grid)

    def token_groups(self, x):
        """The one place that slices a token sequence ([CLS] if any, registers, patches), as
        the blocks and ``forward_intermediates`` lay it out.

        Args:
            x (Tensor): (B, T, D) tokens, T = num_prefix_tokens + L.

        Returns:
            tuple: [CLS] (B, D) or None without one, registers (B, N, D) (N may be 0) and
            patches (B, L, D).
        """
        c = int(self.has_class_token)
        cls = x[:, 0] if c else None
        return cls, x[:, c:self.num_prefix_tokens], x[:, self.num_prefix_tokens:]

    def _split(self, x):
        """Normed tokens (B, T, D) -> the forward_features dict."""
        cls, registers, patches = self.token_groups(x)
        return {
            'x_norm_clstoken': cls if cls is not None else registers.mean(dim=1),
            'x_norm_regtokens': registers,
            'x_norm_patchtokens': patches,
        }

    def forward_features(self, x):
        """Args:
            x (Tensor): (B, C, H, W) images, H and W multiples of the patch size.

        Returns:
            dict: ``x_norm_clstoken`` (B, D), ``x_norm_regtokens`` (B, N, D),
            ``x_norm_patchtokens`` (B, L, D), ``x_prenorm`` (B, T, D), ``grid_size`` (h, w).
        """
        x, grid = self._embed(x)
        for blk in self.blocks:
            x = self._run_block(blk, x)
        out = self._split(self.norm(x))
        out.update(x_prenorm=x, grid_size=grid)
        return out

    def forward(self, x):
        """Image embedding (B, D): the [CLS] token, or the mean of the registers."""
        return self.forward_features(x)['x_norm_clstoken']

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
        B, P = x.shape[0], self.num_prefix_tokens
        blocks = self.blocks[:last + 1] if stop_early or intermediates_only else self.blocks
        outs = []
        for i, blk in enumerate(blocks):
            x = self._run_block(blk, x)
            if i not in take:
                continue
            y = self.norm(x) if norm else x
            maps = y[:, P:]                                                  # (B, L, D)
            if output_fmt == 'NCHW':
                maps = maps.transpose(1, 2).reshape(B, -1, h, w)             # (B, D, h, w)
            outs.append((maps, y[:, :P]) if return_prefix_tokens else maps)
        if intermediates_only:
            return outs
        return self.norm(x), outs

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
        tokens = self._last_block_input(x)[:, self.num_prefix_tokens:]      # (B, L, D)
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


# (embed_dim, depth, num_heads) of the standard sizes.
ARCHS = {'tiny': (192, 12, 3), 'small': (384, 12, 6), 'base': (768, 12, 12),
         'large': (1024, 24, 16)}


def _build(arch, patch_size, **kwargs):
    if arch not in ARCHS:
        raise ValueError(f'arch={arch!r} is not one of {sorted(ARCHS)}')
    dim, depth, heads = ARCHS[arch]
    kwargs = {'embed_dim': dim, 'depth': depth, 'num_heads': heads, **kwargs}
    return RatsViT(patch_size=patch_size, **kwargs)


def rats_vit(arch='small', patch_size=16, registers_per_head=8, **kwargs):
    """RATS of a standard size with ``registers_per_head`` registers per head (48 for S)."""
    heads = ARCHS[arch][2] if arch in ARCHS else 1
    kwargs.setdefault('num_registers', registers_per_head * kwargs.get('num_heads', heads))
    return _build(arch, patch_size, attn_mode='rats', class_token=False, **kwargs)


def vit(arch='small', patch_size=16, num_registers=0, **kwargs):
    """Plain ViT (``num_registers=0``) or ViT + registers (Darcet et al.) with a [CLS] token."""
    return _build(arch, patch_size, attn_mode='full', class_token=True,
                  num_registers=num_registers, **kwargs)


# timm passes these to every registered entrypoint; RATS has no hosted weights to apply them to
_TIMM_FACTORY_KWARGS = ('pretrained_cfg', 'pretrained_cfg_overlay', 'cache_dir')


def _timm_entrypoint(arch):
    """A ``timm.create_model`` entrypoint for RATS of size ``arch`` with 16 px patches."""
    def entrypoint(pretrained=False, **kwargs):
        if pretrained:
            raise ValueError('no RATS weights are hosted: create the model, then load a file '
                             'with rats_mm.models.load_pretrained(model, path)')
        for key in _TIMM_FACTORY_KWARGS:
            kwargs.pop(key, None)
        return rats_vit(arch, 16, **kwargs)
    entrypoint.__name__ = entrypoint.__qualname__ = f'rats_{arch}_patch16'
    entrypoint.__doc__ = (f'RATS-{arch} with 16 px patches and 8 registers per head '
                          '(``num_registers`` or ``registers_per_head`` to change).')
    entrypoint.__module__ = __name__
    return register_model(entrypoint)


rats_tiny_patch16 = _timm_entrypoint('tiny')
rats_small_patch16 = _timm_entrypoint('small')
rats_base_patch16 = _timm_entrypoint('base')
rats_large_patch16 = _timm_entrypoint('large')
vit_small_patch16 = partial(vit, 'small', 16)
vit_base_patch16 = partial(vit, 'base', 16)
vit_small_patch16_reg4 = partial(vit, 'small', 16, 4)
vit_base_patch16_reg4 = partial(vit, 'base', 16, 4)
