"""mmsegmentation plugin: load with ``custom_imports = dict(imports=['rats_mm.mmseg'])``.

Registers the ``RatsViT`` backbone, the ``SimpleFeaturePyramid`` neck and the
``RegisterQueryMask2FormerHead`` decode head in mmseg's ``MODELS``.
"""
from mmseg.models.decode_heads import Mask2FormerHead
from mmseg.registry import MODELS

from ..dense import RatsViTBackbone, RegisterQueryMixin, SimpleFeaturePyramid
from . import datasets  # noqa: F401  (registers the checked datasets)

MODELS.register_module('RatsViT', module=RatsViTBackbone)
MODELS.register_module('SimpleFeaturePyramid', module=SimpleFeaturePyramid)


@MODELS.register_module()
class RegisterQueryMask2FormerHead(RegisterQueryMixin, Mask2FormerHead):
    """mmseg's ``Mask2FormerHead`` with queries from the backbone's registers
    (arguments: see :class:`rats_mm.dense.register_queries.RegisterQueryMixin`;
    ``register_queries=None`` is the upstream head), and sliding-window inference that works.
    """

    def predict(self, x, batch_img_metas, test_cfg):
        """Upstream's, except in sliding-window inference (``test_cfg.mode='slide'``): there
        the masks are upsampled to the window (its ``img_shape``), not to the whole padded
        image (``pad_shape``), which made the window stitching fail with a size mismatch
        (mmseg 1.2.2; upstream PR #3752)."""
        if test_cfg.get('mode') == 'slide':
            batch_img_metas = [{**meta, 'pad_shape': meta['img_shape']}
                               for meta in batch_img_metas]
        return super().predict(x, batch_img_metas, test_cfg)


__all__ = ['RatsViTBackbone', 'RegisterQueryMask2FormerHead', 'SimpleFeaturePyramid']
