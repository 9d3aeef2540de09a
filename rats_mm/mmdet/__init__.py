"""mmdetection plugin: load with ``custom_imports = dict(imports=['rats_mm.mmdet'])``."""
from mmdet.registry import MODELS

from ..engine import RatsViTBackbone

MODELS.register_module('RatsViT', module=RatsViTBackbone)

__all__ = ['RatsViTBackbone']
