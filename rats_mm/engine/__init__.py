"""mmengine glue: the dense-prediction backbone wrapper, and the DINO pretraining model,
data, hooks and launcher used by ``tools/pretrain.py`` (registered in mmengine's registries)."""
from .backbone import RatsViTBackbone
from .data import EvalTransform, ImageFolderDataset, multicrop_collate
from .dino import DINODistributedDataParallel, DINOPretrainer, StudentOptimWrapperConstructor
from .optim import LayerDecayOptimWrapperConstructor
from .hooks import DINOScheduleHook, KNNMonitorHook, PlainCheckpointHook, ThroughputHook

__all__ = ['DINODistributedDataParallel', 'DINOPretrainer', 'DINOScheduleHook',
           'EvalTransform', 'ImageFolderDataset', 'KNNMonitorHook',
           'LayerDecayOptimWrapperConstructor', 'PlainCheckpointHook',
           'RatsViTBackbone', 'StudentOptimWrapperConstructor', 'ThroughputHook',
           'multicrop_collate']
