"""COCO-style instance datasets that check their annotation JSON when they are built."""
import json
import os.path as osp

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from ..data import CATEGORIES
from ..data.palette import register_palette

REQUIRED_FIELDS = {
    'images': ('id', 'file_name', 'height', 'width'),
    'annotations': ('id', 'image_id', 'category_id', 'bbox', 'segmentation'),
    'categories': ('id', 'name'),
}


def check_coco_json(ann_file, img_dir=None):
    """Raise a ``ValueError`` naming ``ann_file`` and the entry at fault if a section or a
    required field is missing, an annotation points to an unknown image or category, or
    (with ``img_dir``) an image file does not exist."""
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'annotation file {ann_file} does not exist')
    with open(ann_file) as f:
        coco = json.load(f)
    for section, fields in REQUIRED_FIELDS.items():
        if not isinstance(coco.get(section), list):
            raise ValueError(f'{ann_file}: missing the "{section}" list')
        for i, entry in enumerate(coco[section]):
            missing = [k for k in fields if k not in entry]
            if missing:
                raise ValueError(f'{ann_file}: {section}[{i}] lacks required field(s) '
                                 f'{missing}')
    image_ids = {im['id'] for im in coco['images']}
    category_ids = {c['id'] for c in coco['categories']}
    for i, ann in enumerate(coco['annotations']):
        if ann['image_id'] not in image_ids:
            raise ValueError(f'{ann_file}: annotations[{i}] refers to unknown image_id '
                             f'{ann["image_id"]}')
        if ann['category_id'] not in category_ids:
            raise ValueError(f'{ann_file}: annotations[{i}] refers to unknown category_id '
                             f'{ann["category_id"]}')
    if img_dir is not None:
        for im in coco['images']:
            path = osp.join(img_dir, im['file_name'])
            if not osp.isfile(path):
                raise FileNotFoundError(f'{ann_file}: image {path} does not exist')


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` that validates its JSON (and image files) when built."""

    def load_data_list(self):
        check_coco_json(self.ann_file, self.data_prefix.get('img'))
        return super().load_data_list()


@DATASETS.register_module()
class SyntheticPartsCocoDataset(CheckedCocoDataset):
    """The generated synthetic data's COCO instances (``instances_<split>.json``)."""

    METAINFO = dict(classes=tuple(CATEGORIES),
                    palette=[tuple(c) for c in register_palette(len(CATEGORIES)).tolist()])
