"""RatsViT as an OpenMMLab backbone (registered as ``RatsViT`` by ``rats_mm.mmseg`` and
``rats_mm.mmdet``): stride-16 NCHW maps from chosen blocks, then the final normed registers."""
import logging
import os

import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule

from ..models import RatsViT, compile_static, load_pretrained
from ..models.head import CLASSIFIER_ARGS


class RatsViTBackbone(BaseModule):
    """Dense-prediction wrapper around :class:`rats_mm.models.RatsViT`.

    Args:
        out_indices (Sequence[int]): Blocks whose patch maps are returned (negative allowed).
        norm_maps (bool): Apply the final norm to the returned maps.
        frozen_stages (int): Freeze the embeddings and the first ``frozen_stages`` blocks
            (-1: nothing frozen, 0: embeddings only).
        with_cp (bool): Activation checkpointing of the blocks in training (as mmseg's ViT
            ``with_cp``): less memory, one more forward per block in the backward pass.
        init_cfg (dict | None): ``dict(type='Pretrained', checkpoint=PATH)`` loads any
            checkpoint ``rats_mm.models.checkpoint_filter_fn`` reads (``weights_only=True``
            unless ``trust_checkpoint=True`` is added). A missing file is an error unless
            ``skip_if_missing=True`` (then the random init is kept, with a warning).
        compile (bool): ``torch.compile`` this backbone in place
            (:func:`rats_mm.models.compile_static`: checkpoint keys unchanged, one graph per
            input size, no graph break in the RatsViT forward).
        **vit_kwargs: Arguments of :class:`RatsViT` (``embed_dim``, ``num_registers``, ...).

    Returns (forward):
        tuple: ``(*maps, registers)``: (B, D, H/p, W/p) maps, one per ``out_indices`` entry, and
        the final normed registers (B, N, D). Inputs that are not multiples of the patch size
        are zero-padded at the bottom and right.
    """

    def __init__(self, out_indices=(-1,), norm_maps=True, frozen_stages=-1, init_cfg=None,
                 with_cp=False, compile=False, **vit_kwargs):
        super().__init__(init_cfg=init_cfg)
        if init_cfg is not None and init_cfg.get('type') != 'Pretrained':
            raise ValueError(f"init_cfg type {init_cfg.get('type')!r}: only 'Pretrained' is "
                             'supported (random init is the model default)')
        if init_cfg is not None and not init_cfg.get('checkpoint'):
            raise ValueError("init_cfg=dict(type='Pretrained') needs a 'checkpoint' path")
        classifier = sorted(set(vit_kwargs) & set(CLASSIFIER_ARGS))
        if classifier:  # they would also turn the final norm into fc_norm's identity
            raise ValueError(f'{classifier}: a dense backbone has no classifier; drop them')
        self.vit = RatsViT(**vit_kwargs)
        self.vit.set_grad_checkpointing(with_cp)
        self.out_indices = tuple(self.vit.take_indices(list(out_indices))[0])
        self.norm_maps = norm_maps
        depth = len(self.vit.blocks)
        if not -1 <= frozen_stages <= depth:
            raise ValueError(f'frozen_stages={frozen_stages} must lie in [-1, {depth}]')
        self.frozen_stages = frozen_stages
        self._freeze()
        if compile:
            compile_static(self)

    @property
    def num_registers(self):
        return self.vit.num_registers

    @property
    def embed_dim(self):
        return self.vit.embed_dim

    def init_weights(self):
        """Load the ``Pretrained`` checkpoint through ``checkpoint_filter_fn``."""
        if self.init_cfg is None:
            return
        ckpt = self.init_cfg['checkpoint']
        if not os.path.isfile(ckpt):
            if not self.init_cfg.get('skip_if_missing', False):
                raise FileNotFoundError(f'pretrained backbone {ckpt} does not exist (export '
                                        'one with tools/export_backbone.py)')
            print_log(f'RatsViT: {ckpt} not found, keeping the random init '
                      '(skip_if_missing=True)', logger='current', level=logging.WARNING)
            return
        result = load_pretrained(self.vit, ckpt,
                                 trust_checkpoint=self.init_cfg.get('trust_checkpoint', False))
        print_log(f'RatsViT: loaded {ckpt} (missing {len(result.missing_keys)}, unexpected '
                  f'{len(result.unexpected_keys)} keys)', logger='current')
        self._is_init = True

    def _freeze(self):
        if self.frozen_stages < 0:
            return
        frozen = [self.vit.patch_embed]
        frozen += list(self.vit.blocks[:self.frozen_stages])
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad = False
        for name in ('pos_embed', 'cls_token', 'registers'):
            p = getattr(self.vit, name)
            if p is not None:
                p.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze()
        return self

    def forward(self, x):
        """(B, 3, H, W) images -> ``(*maps, registers)``."""
        p = self.vit.patch_size
        pad_h, pad_w = -x.shape[-2] % p, -x.shape[-1] % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        final, maps = self.vit.forward_intermediates(x, indices=list(self.out_indices),
                                                     norm=self.norm_maps)
        return (*maps, self.vit.token_groups(final)[1])    # registers (B, N, D)
