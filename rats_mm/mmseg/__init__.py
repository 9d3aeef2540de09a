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
    (arguments: see :class:`rats_mm.dense.register_queries.RegisterQueryMixin`)."""


__all__ = ['RatsViTBackbone', 'RegisterQueryMask2FormerHead', 'SimpleFeaturePyramid']
