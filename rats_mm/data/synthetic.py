"""The synthetic parts dataset: the project's embedded default data
(docs/architecture.md section 4).

Images of objects built from named parts (cars, buses, bicycles, birds, dogs, houses), each
part type with its own texture and colour family, at random pose, scale and position over
textured backgrounds, with 1-3 objects per image. Part types shared by several categories
(``wheel``, ``window``, ``door``, ``head``, ``torso``, ``leg``, ``tail``) keep one global id,
so cross-category part reuse can be measured.

``render_sample`` gives one sample from (index, size, seed), random access and deterministic;
``generate_dataset`` writes a dataset in the layouts the rest of the project reads (ADE20K-style
images / annotations folders, COCO instance JSON, part masks, image-level labels).

Label values: part ids 1..len(PART_TYPES), category ids 1..len(CATEGORIES), 0 = background,
255 (``IGNORE_INDEX``) = pixels of objects too little visible to count as instances.
"""
import json
import multiprocessing
import os
import shutil
import time

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..files import write_json
from .scene import CATEGORY_IDS, LAYOUTS, PART_IDS, compose_scene, sample_scene
from .shapes import CATEGORIES, CATEGORY_PARTS, PART_TYPES

SYNTHETIC_VERSION = 1  # bump whenever the rendered content changes
IGNORE_INDEX = 255
SPLITS = ('training', 'validation')
MIN_VISIBLE_FRACTION = 0.002  # of the image area: smaller visible objects are not instances
MIN_VISIBLE_PIXELS = 16
MAX_ATTEMPTS = 8  # scenes whose objects all end up invisible are re-drawn
SUPERCATEGORIES = {'car': 'vehicle', 'bus': 'vehicle', 'bicycle': 'vehicle',
                   'bird': 'animal', 'dog': 'animal', 'house': 'building'}

__all__ = ['PART_TYPES', 'CATEGORIES', 'CATEGORY_PARTS', 'PART_IDS', 'CATEGORY_IDS',
           'IGNORE_INDEX', 'SYNTHETIC_VERSION', 'render_sample', 'generate_dataset']


def extract_instances(canvas, scene, min_area):
    """Visible instances of a composed scene; too small ones become ignore pixels.

    Args:
        canvas: dict from ``compose_scene`` (its ``parts`` and ``semantic`` maps are set to
            ``IGNORE_INDEX`` under dropped instances, in place).
        scene: dict from ``sample_scene``.
        min_area: smallest visible area, in pixels, of a kept instance.

    Returns:
        List of dicts ``{category_id, mask, bbox, area}``: (H, W) bool visible mask, integer
        bbox [x, y, w, h] of that mask, visible area in pixels.
    """
    instances = []
    for index, obj in enumerate(scene['objects']):
        mask = canvas['objects'] == index
        area = int(mask.sum())
        if area < min_area:
            canvas['parts'][mask] = IGNORE_INDEX
            canvas['semantic'][mask] = IGNORE_INDEX
            continue
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        bbox = [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1),
                int(rows[-1] - rows[0] + 1)]
        instances.append({'category_id': CATEGORY_IDS[obj['category']], 'mask': mask,
                          'bbox': bbox, 'area': area})
    return instances


def render_sample(index, size=224, seed=0, layout='scene'):
    """Render one sample; deterministic in (index, size, seed), any index in any order.

    The scene (objects, poses, colours) depends on (index, seed) only, so the same sample at
    two sizes shows the same picture; only the pixel noise depends on the size too.

    Args:
        index: non-negative sample index.
        size: image side S in pixels (square images; 16 or more).
        seed: non-negative dataset seed.
        layout: ``'scene'`` (1-3 objects and clutter), ``'object_centric'`` (one large
            centred object, as in ImageNet-style photos) or ``'isolated'`` (that object on a
            plain grey background).

    Returns:
        Dict with ``image`` (S, S, 3) uint8 RGB, ``part_mask`` (S, S) uint8 part ids,
        ``semantic_mask`` (S, S) uint8 category ids, ``instances`` (list of dicts with
        ``category_id``, ``mask`` (S, S) bool visible region, ``bbox`` [x, y, w, h] and
        ``area``) and ``label`` (category id of the largest visible object).
    """
    if min(index, seed) < 0 or size < 16:
        raise ValueError(f'need index >= 0, seed >= 0, size >= 16; got {index}, {seed}, {size}')
    min_area = max(MIN_VISIBLE_PIXELS, int(MIN_VISIBLE_FRACTION * size * size))
    for attempt in range(MAX_ATTEMPTS):
        scene = sample_scene(np.random.default_rng([seed, index, attempt]), layout)
        canvas = compose_scene(scene, size, np.random.default_rng([seed, index, attempt, size]))
        instances = extract_instances(canvas, scene, min_area)
        if instances:
            break
    if instances:
        label = max(instances, key=lambda inst: inst['area'])['category_id']
    else:  # never seen in practice: the main object is large and near the centre
        label = CATEGORY_IDS[scene['objects'][0]['category']]
    return {'image': canvas['image'], 'part_mask': canvas['parts'],
            'semantic_mask': canvas['semantic'], 'instances': instances, 'label': label}


def split_indices(num_images, val_fraction):
    """Sample indices of each split: the first ones train, the last ones validate.

    Args:
        num_images: total number of images.
        val_fraction: fraction (rounded) of images in the validation split.

    Returns:
        Dict split name -> range of indices.
    """
    num_val = int(round(num_images * val_fraction))
    return {'training': range(0, num_images - num_val),
            'validation': range(num_images - num_val, num_images)}


def encode_rle(mask):
    """COCO run-length encoding of a binary mask, JSON-ready.

    Args:
        mask: (H, W) bool array.

    Returns:
        Dict ``{'size': [H, W], 'counts': str}``.
    """
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(rle['size'][0]), int(rle['size'][1])],
            'counts': rle['counts'].decode('ascii')}


def write_sample(task):
    """Render one sample and write its image, masks; return its annotation record.

    Args:
        task: tuple (out_dir, split, index, size, seed, layout).

    Returns:
        Dict with ``index``, ``split``, ``file_name``, ``label`` and ``instances`` (list of
        dicts with ``category_id``, ``segmentation`` RLE, ``area``, ``bbox``).
    """
    out_dir, split, index, size, seed, layout = task
    sample = render_sample(index, size=size, seed=seed, layout=layout)
    stem = f'{index:06d}'
    writes = [(os.path.join(out_dir, 'images', split, stem + '.jpg'), sample['image'][..., ::-1],
               [cv2.IMWRITE_JPEG_QUALITY, 95]),
              (os.path.join(out_dir, 'annotations', split, stem + '.png'),
               sample['semantic_mask'], []),
              (os.path.join(out_dir, 'parts', split, stem + '.png'), sample['part_mask'], [])]
    for path, array, params in writes:
        if not cv2.imwrite(path, np.ascontiguousarray(array), params):
            raise OSError(f'could not write {path}')
    instances = [{'category_id': inst['category_id'], 'segmentation': encode_rle(inst['mask']),
                  'area': float(inst['area']), 'bbox': [float(v) for v in inst['bbox']]}
                 for inst in sample['instances']]
    return {'index': index, 'split': split, 'file_name': stem + '.jpg', 'label': sample['label'],
            'instances': instances}


def coco_dict(records, size):
    """COCO instance-segmentation dict of one split.

    Args:
        records: list of dicts from ``write_sample``, in index order.
        size: image side S.

    Returns:
        Dict with ``info``, ``images`` (id = index + 1), ``annotations`` (ids from 1) and
        ``categories``, loadable by pycocotools ``COCO`` and mmdet's ``CocoDataset``.
    """
    images, annotations = [], []
    for record in records:
        image_id = record['index'] + 1
        images.append({'id': image_id, 'file_name': record['file_name'], 'height': size,
                       'width': size})
        for inst in record['instances']:
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id,
                                'iscrowd': 0, **inst})
    categories = [{'id': CATEGORY_IDS[name], 'name': name, 'supercategory': SUPERCATEGORIES[name],
                   'part_ids': [PART_IDS[p] for p in CATEGORY_PARTS[name]]} for name in CATEGORIES]
    info = {'description': 'rats_mm synthetic parts dataset', 'version': str(SYNTHETIC_VERSION)}
    return {'info': info, 'images': images, 'annotations': annotations, 'categories': categories}


def clear_outputs(out_dir):
    """Remove what ``generate_dataset`` writes (and nothing else) from ``out_dir``.

    Args:
        out_dir: dataset root.
    """
    meta = os.path.join(out_dir, 'meta.json')
    if os.path.exists(meta):
        os.remove(meta)  # first, so an interrupted rewrite never looks complete
    for split in SPLITS:
        for folder in ('images', 'annotations', 'parts'):
            shutil.rmtree(os.path.join(out_dir, folder, split), ignore_errors=True)
        for path in (os.path.join(out_dir, 'labels', split + '.txt'),
                     os.path.join(out_dir, f'instances_{split}.json')):
            if os.path.exists(path):
                os.remove(path)


def render_records(tasks, workers):
    """Run ``write_sample`` over tasks, in a process pool when ``workers`` > 1.

    Args:
        tasks: list of ``write_sample`` tasks.
        workers: number of processes.

    Returns:
        List of records, in task order.
    """
    if workers <= 1 or len(tasks) < 2:
        return [write_sample(task) for task in tasks]
    chunk = max(1, len(tasks) // (workers * 8))
    # spawn, not fork: a fork after torch / OpenCV started their thread pools can deadlock
    with multiprocessing.get_context('spawn').Pool(workers, initializer=cv2.setNumThreads,
                                            initargs=(1,)) as pool:
        return list(pool.imap(write_sample, tasks, chunksize=chunk))


def dataset_identity(num_images, size, seed, val_fraction, layout='scene'):
    """The settings that decide a generated dataset's content (compared for skip-if-present).

    Args:
        num_images, size, seed, val_fraction, layout: as in ``generate_dataset``.

    Returns:
        Dict of those settings plus ``version``.
    """
    return {'num_images': int(num_images), 'size': int(size), 'seed': int(seed),
            'val_fraction': float(val_fraction), 'layout': layout,
            'version': SYNTHETIC_VERSION}


def read_meta(out_dir):
    """The ``meta.json`` of a generated dataset, or None when absent or unreadable.

    Args:
        out_dir: dataset root.

    Returns:
        Dict or None.
    """
    try:
        with open(os.path.join(out_dir, 'meta.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def generate_dataset(out_dir, num_images, size=224, seed=0, val_fraction=0.2, workers=1,
                     overwrite=False, layout='scene'):
    """Write the synthetic dataset to ``out_dir`` (skipped when already there).

    Layout: ``images/<split>/NNNNNN.jpg`` (quality 95), ``annotations/<split>/NNNNNN.png``
    (category ids), ``parts/<split>/NNNNNN.png`` (part ids), ``instances_<split>.json`` (COCO,
    RLE masks), ``labels/<split>.txt`` (``images/<split>/NNNNNN.jpg <category id>`` lines),
    ``meta.json`` (written last). Splits are ``training`` then ``validation``.

    Args:
        out_dir: dataset root, str or path-like (created when missing).
        num_images: total number of images (1 or more).
        size: image side S in pixels.
        seed: non-negative dataset seed.
        val_fraction: fraction of images in the validation split, in [0, 1).
        workers: number of processes rendering in parallel.
        overwrite: regenerate even when ``meta.json`` already matches these settings.
        layout: ``'scene'``, ``'object_centric'`` or ``'isolated'`` (see ``render_sample``).

    Returns:
        Summary dict: ``out_dir``, settings, ``splits`` (image counts), ``num_instances``
        (per split), ``seconds`` (time taken) and ``skipped`` (True when nothing was written).
    """
    if layout not in LAYOUTS:
        raise ValueError(f'layout={layout!r} is not one of {LAYOUTS}')
    if num_images < 1 or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f'need num_images >= 1 and 0 <= val_fraction < 1, got '
                         f'{num_images}, {val_fraction}')
    out_dir = os.fspath(out_dir)
    identity = dataset_identity(num_images, size, seed, val_fraction, layout)
    meta = read_meta(out_dir)
    if not overwrite and meta and all(meta.get(k) == v for k, v in identity.items()):
        return {'out_dir': out_dir, **identity, 'splits': meta['splits'],
                'num_instances': meta['num_instances'], 'seconds': 0.0, 'skipped': True}
    start = time.perf_counter()
    clear_outputs(out_dir)
    splits = split_indices(num_images, val_fraction)
    tasks = []
    for split, indices in splits.items():
        for folder in ('images', 'annotations', 'parts'):
            os.makedirs(os.path.join(out_dir, folder, split), exist_ok=True)
        tasks += [(out_dir, split, index, size, seed, layout) for index in indices]
    os.makedirs(os.path.join(out_dir, 'labels'), exist_ok=True)
    records = render_records(tasks, workers)
    num_instances = {}
    for split in SPLITS:
        split_records = [r for r in records if r['split'] == split]
        num_instances[split] = sum(len(r['instances']) for r in split_records)
        write_json(os.path.join(out_dir, f'instances_{split}.json'), coco_dict(split_records, size))
        with open(os.path.join(out_dir, 'labels', split + '.txt'), 'w') as f:
            f.writelines(f"images/{split}/{r['file_name']} {r['label']}\n" for r in split_records)
    meta = {**identity, 'categories': CATEGORIES, 'part_types': PART_TYPES,
            'category_parts': CATEGORY_PARTS, 'ignore_index': IGNORE_INDEX,
            'splits': {split: len(indices) for split, indices in splits.items()},
            'num_instances': num_instances}
    write_json(os.path.join(out_dir, 'meta.json'), meta)
    return {'out_dir': out_dir, **identity, 'splits': meta['splits'],
            'num_instances': num_instances, 'seconds': round(time.perf_counter() - start, 3),
            'skipped': False}
