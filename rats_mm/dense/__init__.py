"""OpenMMLab glue shared by mmsegmentation and mmdetection: the RatsViT backbone wrapper, the
``SimpleFeaturePyramid`` neck, the register-query Mask2Former head logic and layer-wise lr
decay. ``rats_mm.mmseg`` and ``rats_mm.mmdet`` register these into each library."""
from .backbone import RatsViTBackbone
from .neck import SimpleFeaturePyramid
from .optim import LayerDecayOptimWrapperConstructor
from .register_queries import RegisterQueries, RegisterQueryMixin

__all__ = ['LayerDecayOptimWrapperConstructor', 'RatsViTBackbone', 'RegisterQueries',
           'RegisterQueryMixin', 'SimpleFeaturePyramid']
