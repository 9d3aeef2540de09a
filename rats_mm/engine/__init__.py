"""mmengine glue: the dense-prediction backbone wrapper, and the DINO pretraining model,
data, hooks and launcher used by ``tools/pretrain.py`` (registered in mmengine's registries)."""
from .backbone import RatsViTBackbone
from .data import EvalTransform, ImageFolderDataset, multicrop_collate
from .dino import (DINOAmpOptimWrapper, DINODistributedDataParallel, DINOOptimWrapper,
                   DINOPretrainer, StudentOptimWrapperConstructor)
from .optim import LayerDecayOptimWrapperConstructor
from .hooks import (CollapseMonitorHook, DINOScheduleHook, KNNMonitorHook, PlainCheckpointHook,
                    ThroughputHook)

__all__ = [
    'CollapseMonitorHook', 'DINOAmpOptimWrapper', 'DINODistributedDataParallel',
    'DINOOptimWrapper', 'DINOPretrainer', 'DINOScheduleHook', 'EvalTransform',
    'ImageFolderDataset', 'KNNMonitorHook', 'LayerDecayOptimWrapperConstructor',
    'PlainCheckpointHook', 'RatsViTBackbone', 'StudentOptimWrapperConstructor', 'ThroughputHook',
    'multicrop_collate']
