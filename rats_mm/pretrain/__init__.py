"""DINO pretraining on mmengine: the pretraining model, its data, hooks and optim wrappers,
registered in mmengine's registries. Loaded by the pretraining configs
(``custom_imports = dict(imports=['rats_mm.pretrain'])``); no segmentation or detection run
imports it."""
from ..runtime import PlainCheckpointHook
from .pipeline import (EvalTransform, ImageFolderDataset, MultiCropDataPreprocessor,
                   multicrop_collate)
from .diagnostics import CollapseDiagnosticsHook
from .dino import (DINOAmpOptimWrapper, DINODistributedDataParallel, DINOOptimWrapper,
                   DINOPretrainer, StudentOptimWrapperConstructor)
from .hooks import (CollapseMonitorHook, DINOScheduleHook, KNNMonitorHook,
                    RegisterAttentionMonitorHook, ThroughputHook, knn_top1)

__all__ = [
    'CollapseDiagnosticsHook', 'CollapseMonitorHook', 'DINOAmpOptimWrapper', 'DINODistributedDataParallel',
    'DINOOptimWrapper', 'DINOPretrainer', 'DINOScheduleHook', 'EvalTransform',
    'ImageFolderDataset', 'KNNMonitorHook', 'MultiCropDataPreprocessor', 'PlainCheckpointHook',
    'RegisterAttentionMonitorHook',
    'StudentOptimWrapperConstructor', 'ThroughputHook', 'knn_top1', 'multicrop_collate']
