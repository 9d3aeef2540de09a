"""mmdetection plugin: load with ``custom_imports = dict(imports=['rats_mm.mmdet'])``.

Registers the ``RatsViT`` backbone, the ``SimpleFeaturePyramid`` neck and the
``RegisterQueryMask2FormerHead`` panoptic head in mmdet's ``MODELS``.
"""
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.registry import MODELS

from ..dense import RatsViTBackbone, RegisterQueryMixin, SimpleFeaturePyramid
from . import datasets  # noqa: F401  (registers the checked datasets)

MODELS.register_module('RatsViT', module=RatsViTBackbone)
MODELS.register_module('SimpleFeaturePyramid', module=SimpleFeaturePyramid)


@MODELS.register_module()
class RegisterQueryMask2FormerHead(RegisterQueryMixin, Mask2FormerHead):
    """mmdet's ``Mask2FormerHead`` with queries from the backbone's registers
    (arguments: see :class:`rats_mm.dense.register_queries.RegisterQueryMixin`)."""


__all__ = ['RatsViTBackbone', 'RegisterQueryMask2FormerHead', 'SimpleFeaturePyramid']
