"""Ground-truth boxes for object discovery (COCO json, Pascal VOC XML), CorLoc, drawings.

Boxes are ``(x0, y0, x1, y1)`` in pixels of the original image, continuous coordinates
(a box covering pixel columns 0..9 is ``x0=0, x1=10``).
"""
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.ops import box_iou
from torchvision.utils import draw_bounding_boxes

__all__ = ['box_iou', 'corloc_hits', 'draw_discovery', 'read_boxes', 'read_coco_boxes',
           'read_voc_boxes']


def _item(file_name, boxes, where):
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    bad = boxes[(boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])]
    if len(bad):
        raise ValueError(f'{where}: box {bad[0].tolist()} has x1 < x0 or y1 < y0')
    return {'file_name': file_name, 'boxes': boxes}


def read_coco_boxes(ann_file):
    """Images and their boxes from a COCO-style json (``bbox`` = x, y, w, h).

    Args:
        ann_file (str): The json (``images`` with ``id`` / ``file_name``, ``annotations``
            with ``image_id`` / ``bbox``; ``iscrowd`` ones are dropped).

    Returns:
        list[dict]: ``file_name`` and ``boxes`` (K, 4) xyxy float32, in the json's image order;
        images without a box are left out.
    """
    with open(ann_file) as f:
        coco = json.load(f)
    for key in ('images', 'annotations'):
        if key not in coco:
            raise KeyError(f'{ann_file}: no "{key}" list (not a COCO-style file)')
    boxes = {}
    for ann in coco['annotations']:
        if ann.get('iscrowd', 0):
            continue
        x, y, w, h = ann['bbox']
        boxes.setdefault(ann['image_id'], []).append((x, y, x + w, y + h))
    return [_item(img['file_name'], boxes[img['id']], f'{ann_file} image {img["id"]}')
            for img in coco['images'] if img['id'] in boxes]


def _voc_item(xml_file):
    root = ET.parse(xml_file).getroot()
    name = root.findtext('filename')
    if not name:
        raise ValueError(f'{xml_file}: no <filename>')
    boxes = []
    for obj in root.iter('object'):
        bb = obj.find('bndbox')
        if bb is None:
            raise ValueError(f'{xml_file}: an <object> has no <bndbox>')
        # VOC pixel indices are 1-based and inclusive: x0 - 1 .. x1 in continuous coordinates
        x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        boxes.append((x0 - 1, y0 - 1, x1, y1))
    return _item(name, boxes, str(xml_file))


def read_voc_boxes(ann, data_root=None):
    """Images and boxes from Pascal VOC XML files (every object, difficult ones included).

    Args:
        ann (str): A folder of XML files (``Annotations``), or an image-set list
            (``ImageSets/Main/trainval.txt``: one id per line, XML at
            ``data_root/Annotations/<id>.xml``).
        data_root (str | None): The VOC year folder (needed with a list).

    Returns:
        list[dict]: ``file_name`` and ``boxes`` (K, 4) xyxy float32; images without an object
        are left out.
    """
    ann = Path(ann)
    if ann.is_dir():
        files = sorted(ann.glob('*.xml'))
    else:
        if data_root is None:
            raise ValueError(f'{ann}: an image-set list needs the VOC data root')
        ids = [line.split()[0] for line in ann.read_text().splitlines() if line.strip()]
        files = [Path(data_root) / 'Annotations' / f'{i}.xml' for i in ids]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f'{len(missing)} VOC annotation(s) missing, e.g. {missing[0]}')
    if not files:
        raise FileNotFoundError(f'no VOC XML files in {ann}')
    return [item for item in map(_voc_item, files) if len(item['boxes'])]


def read_boxes(data_root, ann_file):
    """COCO json (``.json``) or VOC (folder of XML or image-set ``.txt``) boxes.

    Returns:
        tuple[list[dict], str]: The items and the default image folder under ``data_root``
        (``images`` for COCO when it exists, ``JPEGImages`` for VOC).
    """
    if not os.path.exists(ann_file):
        raise FileNotFoundError(f'annotation file {ann_file} does not exist')
    if str(ann_file).endswith('.json'):
        folder = 'images' if os.path.isdir(os.path.join(data_root, 'images')) else ''
        return read_coco_boxes(ann_file), folder
    return read_voc_boxes(ann_file, data_root), 'JPEGImages'


def corloc_hits(pred_boxes, gt_boxes, threshold=0.5):
    """Per image, whether the predicted box has IoU >= ``threshold`` with any ground truth.

    Args:
        pred_boxes (Tensor | np.ndarray): (n, 4) one predicted box per image.
        gt_boxes (list): n arrays (K_i, 4) of ground-truth boxes.
        threshold (float): IoU needed.

    Returns:
        list[bool]: CorLoc is their mean.
    """
    pred = torch.as_tensor(np.asarray(pred_boxes, dtype=np.float32)).reshape(-1, 4)
    if len(pred) != len(gt_boxes):
        raise ValueError(f'{len(pred)} predicted boxes for {len(gt_boxes)} images')
    return [bool(len(gt) and box_iou(p[None], torch.as_tensor(gt).reshape(-1, 4)).max()
                 >= threshold) for p, gt in zip(pred, gt_boxes)]


def draw_discovery(image, pred_box, gt_boxes, path, mask=None):
    """PNG of an image with its ground-truth boxes (green), the predicted box (red) and,
    if given, the predicted foreground (a (H, W) bool array, tinted red)."""
    array = np.asarray(image, dtype=np.uint8).copy()
    if mask is not None:
        array[mask] = (0.6 * array[mask] + 0.4 * np.array([255, 0, 0])).astype(np.uint8)
    boxes = torch.as_tensor(np.concatenate([np.asarray(gt_boxes).reshape(-1, 4),
                                            np.asarray(pred_box).reshape(1, 4)]))
    colors = ['lime'] * (len(boxes) - 1) + ['red']
    drawn = draw_bounding_boxes(torch.from_numpy(array).permute(2, 0, 1), boxes.round(),
                                colors=colors, width=max(1, min(array.shape[:2]) // 64))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(path)
    return path
