"""RATS Vision Transformer; with ``attn_mode='full'`` also ViT + registers and plain ViT.

The model has timm ``VisionTransformer``'s interface (classifier head, pooling,
``forward_features`` / ``forward_head`` / ``forward_intermediates``, ``features_only``,
pretrained cfgs); the DINO-style named outputs the project's analyses read come from
``forward_tokens``.
"""
from contextlib import nullcontext
from functools import partial

import torch
import torch.fx
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_
from timm.models import (build_model_with_cfg, generate_default_cfgs, register_model,
                         resolve_pretrained_cfg)
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers import Block, PatchEmbed, position_embedding
from .head import REGISTER_POOLS, ClassifierMixin, check_pool, pooled_dim, uses_fc_norm
from .inspection import AttentionInspection
from .intermediates import IntermediatesMixin
from .options import check_model_options, pair
from .weights import checkpoint_filter_fn, load_pretrained

# one call in a torch.fx graph (timm's fx feature extraction): it branches on the input size
torch.fx.wrap('position_embedding')


class RatsViT(ClassifierMixin, IntermediatesMixin, AttentionInspection, nn.Module):
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
        num_classes (int): Classes of the linear ``head`` (0: none, ``forward`` gives the
            pooled embedding).
        global_pool (str): What ``forward_head`` pools, one of ``GLOBAL_POOLS``: ``'token'``
            the image embedding ([CLS], else the mean of the registers), ``'avg'`` / ``'max'``
            / ``'avgmax'`` the patches, ``''`` nothing, ``'registers'`` every register
            concatenated (N * D), ``'heads'`` each head's registers averaged on that head's
            channels (D), ``'registers_avg'`` the registers and the patch mean ((N + 1) * D).
        fc_norm (bool | None): Norm the pooled tokens instead of every token (None: timm's
            rule, for ``'avg'``, ``'max'`` and ``'avgmax'``).
        drop_rate (float): Dropout before the head.
        device (torch.device | str | None): Where the parameters are created.
        dtype (torch.dtype | None): Their dtype.
    """

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=384, depth=12,
                 num_heads=6, mlp_ratio=4.0, qkv_bias=True, num_registers=48, attn_mode='rats',
                 class_token=False, drop_path_rate=0.0, init_values=None, attn_drop_rate=0.0,
                 proj_drop_rate=0.0, compress='attention', logits='dot', num_classes=0,
                 global_pool='token', fc_norm=None, drop_rate=0.0, device=None, dtype=None):
        super().__init__()
        check_model_options(img_size, patch_size, num_registers, attn_mode, class_token,
                            compress, logits)
        check_pool(global_pool, num_registers, num_heads, class_token)
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = self.num_features = embed_dim
        self.num_heads = num_heads
        self.num_registers = num_registers
        self.attn_mode = attn_mode
        self.compress = compress
        self.logits = logits
        self.has_class_token = class_token
        self.num_prefix_tokens = int(class_token) + num_registers
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.head_hidden_size = pooled_dim(global_pool, embed_dim, num_registers)
        self.grid_size = tuple(s // patch_size for s in pair(img_size))
        self.grad_checkpointing = False
        self.feature_info = [dict(module=f'blocks.{i}', num_chs=embed_dim, reduction=patch_size)
                             for i in range(depth)]
        with torch.device(device) if device is not None else nullcontext():
            self._build_tokens(in_chans, class_token)
            dpr = torch.linspace(0, drop_path_rate, depth, device='cpu').tolist()  # meta too
            self.blocks = nn.ModuleList([
                Block(embed_dim, num_heads, num_registers=num_registers, attn_mode=attn_mode,
                      mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, init_values=init_values,
                      drop_path=dpr[i], attn_drop=attn_drop_rate, proj_drop=proj_drop_rate,
                      compress=compress, logits=logits)
                for i in range(depth)])
            use_fc_norm = uses_fc_norm(global_pool, fc_norm)
            if use_fc_norm and global_pool in REGISTER_POOLS:
                raise ValueError(f'fc_norm norms a D-wide pooled token: not for '
                                 f'global_pool={global_pool!r} (every register is normed)')
            self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=1e-6)
            self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6) if use_fc_norm else nn.Identity()
            self.head_drop = nn.Dropout(drop_rate)
            self.head = (nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0
                         else nn.Identity())
        self.init_weights()
        if dtype is not None:
            self.to(dtype)

    def _build_tokens(self, in_chans, class_token):
        """The patch projection, the [CLS] token, the registers and the position embedding."""
        D = self.embed_dim
        self.patch_embed = PatchEmbed(self.patch_size, in_chans, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D)) if class_token else None
        self.registers = (nn.Parameter(torch.zeros(1, self.num_registers, D))
                          if self.num_registers else None)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], D))

    def load_pretrained(self, checkpoint):
        """``rats_mm.models.load_pretrained`` into this model (timm's loader calls it for a
        file, ``custom_load``): any supported source, the recorded options checked, a
        classifier kept where it matches, what did not match logged."""
        return load_pretrained(self, checkpoint)

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
        tokens = [patches + position_embedding(self.pos_embed, grid, self.grid_size)]
        B = patches.shape[0]
        if self.registers is not None:
            tokens.insert(0, self.registers.expand(B, -1, -1))
        if self.cls_token is not None:
            tokens.insert(0, self.cls_token.expand(B, -1, -1))
        return torch.cat(tokens, dim=1), grid

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

    def forward_blocks(self, x):
        """The embedding and every block: what all outputs are read from (and what
        ``compile_static`` compiles).

        Args:
            x (Tensor): (B, C, H, W) images, H and W multiples of the patch size.

        Returns:
            tuple: the tokens after the last block, before the final norm, (B, T, D), and the
            patch grid (h, w).
        """
        x, grid = self._embed(x)
        for blk in self.blocks:
            x = self._run_block(blk, x)
        return x, grid

    def forward_features(self, x):
        """timm's features: every token after the final norm, (B, T, D), in block order
        ([CLS] if any, registers, patches)."""
        x, _ = self.forward_blocks(x)
        return self.norm(x)

    def forward_tokens(self, x):
        """The named outputs the project's analyses, probes and pretraining read (DINOv2's
        names).

        Args:
            x (Tensor): (B, C, H, W) images, H and W multiples of the patch size.

        Returns:
            dict: ``x_norm_clstoken`` (B, D) the image embedding ([CLS], else the mean of the
            registers), ``x_norm_regtokens`` (B, N, D), ``x_norm_patchtokens`` (B, L, D),
            all after ``norm`` (an identity where timm's rule moves the final norm to the
            pooled tokens, ``fc_norm``: ``global_pool`` 'avg' / 'max' / 'avgmax');
            ``x_prenorm`` (B, T, D) and ``grid_size`` (h, w).
        """
        x, grid = self.forward_blocks(x)
        normed = self.norm(x)
        _, registers, patches = self.token_groups(normed)
        return {
            'x_norm_clstoken': self.pool(normed, 'token'),  # the one image-embedding rule
            'x_norm_regtokens': registers,
            'x_norm_patchtokens': patches,
            'x_prenorm': x,
            'grid_size': tuple(grid),
        }

    def forward(self, x):
        """``forward_head(forward_features(x))``: with ``num_classes=0`` and the default pool
        the image embedding (B, D), [CLS] or the mean of the registers."""
        return self.forward_head(self.forward_features(x))

    def group_matcher(self, coarse=False):
        """Parameter groups for timm's layer-wise learning-rate decay: the stem (patch
        projection, tokens, positions), then one group per block, then the final norm."""
        return dict(stem=r'^cls_token|^registers|^pos_embed|^patch_embed',
                    blocks=[(r'^blocks\.(\d+)', None), (r'^norm', (99999,))])


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


def _cfg(**kwargs):
    """A pretrained cfg without hosted weights: ImageNet normalisation, 224 px, no head (the
    models are self-supervised backbones, like timm's DINO ViTs)."""
    return {'url': '', 'num_classes': 0, 'input_size': (3, 224, 224), 'pool_size': None,
            'crop_pct': 0.9, 'interpolation': 'bicubic', 'fixed_input_size': False,
            'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
            'first_conv': 'patch_embed.proj', 'classifier': 'head', **kwargs}


# read by timm's ``register_model`` from this module (``timm.models.get_pretrained_cfg``)
default_cfgs = generate_default_cfgs({f'rats_{arch}_patch16': _cfg() for arch in ARCHS})


def _has_weights(cfg):
    return bool(cfg.file or cfg.state_dict or cfg.url or cfg.hf_hub_id)


def _create_rats(variant, arch, pretrained=False, registers_per_head=8, **kwargs):
    """``build_model_with_cfg`` for RATS of size ``arch`` with 16 px patches: timm's
    ``num_classes`` / ``global_pool`` / ``features_only`` handling, and weights from a local
    file (``pretrained_cfg_overlay=dict(file=PATH)``) read by ``RatsViT.load_pretrained``
    (a state dict given as ``dict(state_dict=...)`` through ``checkpoint_filter_fn``)."""
    if pretrained and not _has_weights(resolve_pretrained_cfg(
            variant, kwargs.get('pretrained_cfg'), kwargs.get('pretrained_cfg_overlay'))):
        raise ValueError('no RATS weights are hosted: create the model, then load a file '
                         'with rats_mm.models.load_pretrained(model, path), or pass '
                         'pretrained_cfg_overlay=dict(file=PATH)')
    overlay = kwargs.get('pretrained_cfg_overlay') or {}
    if overlay.get('file'):  # read by RatsViT.load_pretrained: the project's loader and checks
        kwargs['pretrained_cfg_overlay'] = {'custom_load': True, **overlay}
    dim, depth, heads = ARCHS[arch]
    kwargs = {'embed_dim': dim, 'depth': depth, 'num_heads': heads, 'patch_size': 16,
              'attn_mode': 'rats', **kwargs}
    kwargs.setdefault('num_registers', registers_per_head * kwargs['num_heads'])
    return build_model_with_cfg(RatsViT, variant, pretrained,
                                pretrained_filter_fn=checkpoint_filter_fn,
                                feature_cfg=dict(out_indices=3, feature_cls='getter'),
                                **kwargs)


def _timm_entrypoint(arch):
    """A ``timm.create_model`` entrypoint for RATS of size ``arch`` with 16 px patches."""
    variant = f'rats_{arch}_patch16'

    def entrypoint(pretrained=False, **kwargs):
        return _create_rats(variant, arch, pretrained, **kwargs)
    entrypoint.__name__ = entrypoint.__qualname__ = variant
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
