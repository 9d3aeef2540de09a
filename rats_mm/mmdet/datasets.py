"""COCO-style instance datasets that check their annotation JSON when they are built."""
import json
import os.path as osp

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS

from ..data import CATEGORIES
from ..data.palette import register_palette
from ..dense.dataset_checks import checked_once, fingerprint

REQUIRED_FIELDS = {
    'images': ('id', 'file_name', 'height', 'width'),
    'annotations': ('id', 'image_id', 'category_id', 'bbox', 'segmentation'),
    'categories': ('id', 'name'),
}


def check_coco_json(ann_file, img_dir=None, coco=None):
    """Raise a ``ValueError`` naming ``ann_file`` and the entry at fault if a section or a
    required field is missing, an annotation points to an unknown image or category, or
    (with ``img_dir``) an image file does not exist.

    Args:
        ann_file (str): The COCO JSON (named in the errors; read unless ``coco`` is given).
        img_dir (str | None): Folder of the images, to check they exist.
        coco (dict | None): The JSON already loaded (pycocotools' ``COCO.dataset``).
    """
    if coco is None:
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
    """mmdet's ``CocoDataset`` that validates its JSON (and image files) when built, on rank
    0 and once per unchanged file (``rats_mm.dense.dataset_checks``)."""

    def COCOAPI(self, annotation_file):  # noqa: N802  (mmdet's hook for the COCO reader)
        """mmdet's COCO reader, keeping the loaded JSON for the check (mmdet deletes its
        ``self.coco`` at the end of ``load_data_list``)."""
        self._loaded_coco = COCO(annotation_file)
        return self._loaded_coco

    def load_data_list(self):
        """mmdet's list; then, on rank 0 and once per unchanged file, the check of the JSON
        mmdet has just loaded (a 450 MB ``instances_train2017.json`` is not read twice)."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'annotation file {self.ann_file} does not exist')
        img_dir = self.data_prefix.get('img')
        self._loaded_coco = None
        try:
            data_list = super().load_data_list()
        except (KeyError, TypeError, IndexError, ValueError, AssertionError):
            if self._loaded_coco is not None:  # say which entry is at fault, if one is
                check_coco_json(self.ann_file, img_dir, self._loaded_coco.dataset)
            raise
        coco, self._loaded_coco = self._loaded_coco.dataset, None
        key = fingerprint('coco', [self.ann_file], dict(img_dir=img_dir))
        checked_once(key, lambda: check_coco_json(self.ann_file, img_dir, coco))
        return data_list


@DATASETS.register_module()
class SyntheticPartsCocoDataset(CheckedCocoDataset):
    """The generated synthetic data's COCO instances (``instances_<split>.json``)."""

    METAINFO = dict(classes=tuple(CATEGORIES),
                    palette=[tuple(c) for c in register_palette(len(CATEGORIES)).tolist()])
