"""The pretraining data pipeline in mmengine's registries: the image folder that skips (and
counts) unreadable files and the evaluation transform (``rats_mm.data.images``, registered
here), the multi-crop transform, the multi-crop collate function and the data preprocessor
that normalises uint8 views on the device."""
import torch
from mmengine.logging import print_log
from mmengine.model import BaseDataPreprocessor
from mmengine.registry import DATASETS, FUNCTIONS, MODELS, TRANSFORMS

from ..data import images
from ..ssl import MultiCropAugmentation, collate_multicrop

TRANSFORMS.register_module('MultiCropAugmentation', module=MultiCropAugmentation)


@TRANSFORMS.register_module('EvalTransform')
class EvalTransform(images.EvalTransform):
    """:class:`rats_mm.data.images.EvalTransform` in mmengine's ``TRANSFORMS``."""


@DATASETS.register_module('ImageFolderDataset')
class ImageFolderDataset(images.ImageFolderDataset):
    """:class:`rats_mm.data.images.ImageFolderDataset` in mmengine's ``DATASETS``: builds
    ``pipeline`` config dicts from ``TRANSFORMS`` and logs skipped files in the run's log."""

    @staticmethod
    def build_pipeline(pipeline):
        return TRANSFORMS.build(pipeline) if isinstance(pipeline, dict) else pipeline

    def report_skip(self, message):
        print_log(message, logger='current', level=30)


@FUNCTIONS.register_module()
def multicrop_collate(batch):
    """Samples -> ``dict(inputs=[(B, 3, s, s) per crop], data_samples=dict(labels, skipped))``.

    Single-view samples (an evaluation transform) give ``inputs`` as one (B, 3, s, s) tensor.
    """
    views = [b['inputs'] for b in batch]
    inputs = collate_multicrop(views) if isinstance(views[0], (list, tuple)) \
        else torch.stack(views)
    return {'inputs': inputs,
            'data_samples': {'labels': torch.tensor([b['label'] for b in batch]),
                             'skipped': sum(b['skipped'] for b in batch)}}


@MODELS.register_module()
class MultiCropDataPreprocessor(BaseDataPreprocessor):
    """Moves a multi-crop batch to the device and normalises uint8 views there.

    With ``MultiCropAugmentation(output='uint8')`` the loader collates and copies uint8 views
    (a quarter of float32's bytes, from pinned memory without blocking); here each uint8
    (B, 3, s, s) view becomes ``(x - 255 mean) / (255 std)`` in float32 on the device, the
    same numbers ``ToTensor`` + ``Normalize`` give on the host. Float views (an evaluation
    transform's) pass through unchanged.

    Args:
        mean (Sequence[float]): Per-channel mean in [0, 1] (ImageNet's by default).
        std (Sequence[float]): Per-channel std in [0, 1].
        non_blocking (bool): Asynchronous host-to-device copies (from pinned memory).
    """

    def __init__(self, mean=images.IMAGENET_MEAN, std=images.IMAGENET_STD, non_blocking=True):
        super().__init__(non_blocking=non_blocking)
        # One multiply-add per pixel, folded on the device; it differs from
        # ``rats_mm.data.images.normalise_uint8`` by float rounding only, and is kept so that
        # the recorded pretraining runs (make demo's figures) stay bit-identical.
        self.register_buffer('offset', torch.tensor(mean).view(1, 3, 1, 1) * 255, False)
        self.register_buffer('scale', 1.0 / (torch.tensor(std).view(1, 3, 1, 1) * 255), False)

    def _normalise(self, x):
        if x.dtype != torch.uint8:
            return x
        return (x.float() - self.offset.to(x.device)) * self.scale.to(x.device)  # (B, 3, s, s)

    def forward(self, data, training=False):
        data = self.cast_data(data)
        inputs = data['inputs']
        data['inputs'] = ([self._normalise(x) for x in inputs]
                          if isinstance(inputs, (list, tuple)) else self._normalise(inputs))
        return data
