"""DINO self-distillation pieces in pure PyTorch (no OpenMMLab imports).

Multi-crop augmentation (per image on the CPU, or batched on the device), DINO head, DINO loss with centring, step-wise schedules, the EMA
teacher and the k-NN monitor.
"""
from .device_multicrop import DeviceMultiCrop
from .head import DINOHead, cancel_last_layer_gradients, clip_gradients_per_parameter
from .knn import knn_accuracy, knn_classify
from .loss import CENTERINGS, DINOLoss, sinkhorn_knopp, target_entropies
from .multicrop import MultiCropAugmentation, collate_multicrop
from .schedules import cosine_schedule, linear_warmup_then_constant
from .teacher import build_teacher, update_teacher

__all__ = [
    'CENTERINGS', 'DINOHead', 'DeviceMultiCrop', 'DINOLoss', 'MultiCropAugmentation', 'build_teacher',
    'cancel_last_layer_gradients', 'clip_gradients_per_parameter', 'collate_multicrop',
    'cosine_schedule', 'knn_accuracy', 'knn_classify', 'linear_warmup_then_constant',
    'sinkhorn_knopp', 'target_entropies', 'update_teacher']
