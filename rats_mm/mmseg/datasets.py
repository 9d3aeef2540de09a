"""Semantic-segmentation datasets that check their annotations when they are built."""
import os.path as osp

import numpy as np
from mmseg.datasets import ADE20KDataset, BaseSegDataset
from mmseg.registry import DATASETS
from PIL import Image

from ..data import CATEGORIES, IGNORE_INDEX
from ..data.palette import register_palette
from ..dense.dataset_checks import checked_once, fingerprint


class CheckedSegMixin:
    """Checks at build time that every image has its annotation file and that every label is
    a class index or the ignore value, naming the file at fault.

    Args:
        verify_labels (bool): Also read every annotation and check its values: one pass
            over the masks, on rank 0 only and remembered for unchanged files
            (``rats_mm.dense.dataset_checks``).
    """

    def __init__(self, *args, verify_labels=True, **kwargs):
        self.verify_labels = verify_labels
        super().__init__(*args, **kwargs)

    def load_data_list(self):
        data_list = super().load_data_list()
        num_classes = len(self.metainfo['classes'])
        # raw values 1..num_classes are shifted down by one under reduce_zero_label
        low, high = (1, num_classes) if self.reduce_zero_label else (0, num_classes - 1)
        for item in data_list:
            path = item['seg_map_path']
            if not osp.isfile(path):
                raise FileNotFoundError(f'annotation {path} for image {item["img_path"]} '
                                        'is missing')
        if self.verify_labels:  # reads every mask: on rank 0, once per set of files
            key = fingerprint('seg_labels', [item['seg_map_path'] for item in data_list],
                              dict(low=low, high=high, ignore=self.ignore_index,
                                   reduce_zero_label=self.reduce_zero_label))
            checked_once(key, lambda: [self._check_labels(item['seg_map_path'], low, high)
                                       for item in data_list])
        return data_list

    def _check_labels(self, path, low, high):
        values = np.unique(np.asarray(Image.open(path)))
        bad = [int(v) for v in values if not (low <= v <= high or v == self.ignore_index
                                              or (self.reduce_zero_label and v == 0))]
        if bad:
            raise ValueError(f'{path}: label(s) {bad} outside the {high - low + 1} classes '
                             f'[{low}, {high}] and not the ignore value {self.ignore_index}')


@DATASETS.register_module()
class CheckedADE20KDataset(CheckedSegMixin, ADE20KDataset):
    """mmseg's ``ADE20KDataset`` with build-time annotation checks."""


@DATASETS.register_module()
class SyntheticPartsSegDataset(CheckedSegMixin, BaseSegDataset):
    """The generated synthetic data in ADE20K layout (``images/<split>/*.jpg``,
    ``annotations/<split>/*.png``): background plus the object categories, 255 ignored."""

    METAINFO = dict(classes=('background', *CATEGORIES),
                    palette=[[0, 0, 0]] + register_palette(len(CATEGORIES)).tolist())

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=False,
                 ignore_index=IGNORE_INDEX, **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, ignore_index=ignore_index,
                         **kwargs)
