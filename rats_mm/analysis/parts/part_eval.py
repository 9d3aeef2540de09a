"""Unsupervised part segmentation of a part dataset, scored against its part masks.

``evaluate_parts`` is what ``tools/analysis/part_eval.py`` and ``make demo`` run: segment the
patches of every image (by the registers or by k-means), upsample the labels to the masks and
score them with one dataset-wide matching (:func:`~rats_mm.analysis.part_miou`) plus NMI / ARI.
"""
import os

import numpy as np
import torch
from tqdm import tqdm

from ..io import features, part_items, prepare_image, prepare_labels
from .metrics import clustering_scores, part_miou
from .segment import kmeans, register_assignment, upsample_labels

__all__ = ['IGNORE_INDEX', 'cluster_patches', 'evaluate_parts', 'patch_labels', 'segment_parts',
           'single_segment_miou']

IGNORE_INDEX = 255
METHODS = ('registers', 'kmeans')
ASSIGNMENTS = ('cosine', 'broadcast')


def _check(model, method, assignment, num_clusters):
    """Resolve the method and validate the options against the model; the method."""
    method = method or ('registers' if model.num_registers else 'kmeans')
    if method not in METHODS or assignment not in ASSIGNMENTS:
        raise ValueError(f'method={method!r} / assignment={assignment!r}: expected one of '
                         f'{METHODS} / {ASSIGNMENTS}')
    if method == 'registers' and model.num_registers == 0:
        raise ValueError('the model has no registers (num_registers=0): use method kmeans')
    if method == 'registers' and assignment == 'broadcast' and model.attn_mode != 'rats':
        raise ValueError("the broadcast assignment needs a RATS model (attn_mode='rats'); "
                         f'this model has attn_mode={model.attn_mode!r}')
    if method == 'kmeans' and num_clusters is not None and num_clusters < 1:
        raise ValueError(f'num_clusters={num_clusters} must be at least 1')
    return method


def patch_labels(model, image, out, method, assignment='cosine', background_threshold=None):
    """One image's (L,) register labels (``method='registers'``, by ``assignment``), or its
    (L, D) patch features for k-means (``'kmeans'``), from its ``features`` output ``out``."""
    if method == 'kmeans':
        return out['x_norm_patchtokens'][0]
    if assignment == 'broadcast':  # the register each patch reads most from
        device = next(model.parameters()).device
        return model.last_broadcast_weights(image.to(device))[0].argmax(-1).cpu()
    return register_assignment(out['x_norm_patchtokens'], out['x_norm_regtokens'],
                               background_threshold)[0]


def cluster_patches(features_per_image, masks, num_clusters, seed=0):
    """k-means over all images' (L, D) patch features jointly; per-image (L,) labels and K
    (``num_clusters`` None or < 1: the part classes present in ``masks``)."""
    if num_clusters is None or num_clusters < 1:  # as many clusters as part classes present
        num_clusters = len(set().union(*(np.unique(m[m != IGNORE_INDEX]).tolist()
                                         for m in masks)))
    flat = torch.cat(features_per_image)                                  # (sum L, D)
    if num_clusters > flat.shape[0]:
        raise ValueError(f'num_clusters={num_clusters} exceeds the {flat.shape[0]} patches')
    _, assign = kmeans(flat, num_clusters, seed=seed)
    return list(torch.split(assign, [t.shape[0] for t in features_per_image])), num_clusters


def segment_parts(model, data_root, method=None, assignment='cosine', num_clusters=None,
                  background_threshold=None, split=None, max_images=None, size=None, seed=0):
    """Segment every image's patches.

    Args:
        model (RatsViT): The backbone (eval mode).
        data_root (str): Generic part layout (``images/**``, ``parts/<same stem>.png``).
        method (str | None): ``'registers'`` or ``'kmeans'`` (None: registers if the model
            has them).
        assignment (str): For registers: ``'cosine'`` (most similar final register) or
            ``'broadcast'`` (the register the patch reads most from in the last block).
        num_clusters (int | None): k-means K (None: the registers N, or without registers
            the number of part classes present).
        background_threshold (float | None): Registers, cosine: best similarity below this
            gives the extra background segment N.
        split (str | None): Only images under ``images/SPLIT``.
        max_images (int | None): Keep the first ``max_images``.
        size (int | None): Resize the short side to this before cropping to the patch grid.
        seed (int): k-means seed.

    Returns:
        tuple: per image (L,) int64 patch labels, (h, w) grids and (H, W) uint8 masks aligned
        with the prepared image; ``num_pred`` (number of segment ids) and the method used.
    """
    method = _check(model, method, assignment, num_clusters)
    items, count = part_items(data_root, split, max_images)
    if count == 0:
        raise FileNotFoundError(f'no images to evaluate under {data_root} (split={split})')
    labels, grids, masks = [], [], []
    for item in tqdm(items, total=count, desc='segmenting', unit='image', leave=False,
                     disable=None):  # shown on a terminal only
        image = prepare_image(item['image'], model.patch_size, size)
        out = features(model, image)
        masks.append(prepare_labels(item['parts'], model.patch_size, size))
        grids.append(out['grid_size'])
        labels.append(patch_labels(model, image, out, method, assignment,
                                    background_threshold))
    if method == 'kmeans':
        k = num_clusters if num_clusters is not None else model.num_registers
        labels, num_pred = cluster_patches(labels, masks, k, seed)
    else:
        cosine_bg = assignment == 'cosine' and background_threshold is not None
        num_pred = model.num_registers + int(cosine_bg)
    return labels, grids, masks, num_pred, method


def _pixel_maps(labels, grids, masks):
    """Lazily upsample (L,) patch labels to each mask's (H, W)."""
    for lab, grid, mask in zip(labels, grids, masks):
        yield upsample_labels(lab[None], grid, mask.shape)[0].numpy()


def evaluate_parts(model, data_root, mode='hungarian', **segment_kwargs):
    """Part mIoU, NMI and ARI of a model's unsupervised part segmentation of a dataset.

    Args:
        model (RatsViT): The backbone (eval mode).
        data_root (str): Generic part layout.
        mode (str): ``'hungarian'`` (one-to-one) or ``'majority'`` (many-to-one) matching.
        **segment_kwargs: :func:`segment_parts` options.

    Returns:
        dict: ``miou``, ``nmi``, ``ari`` (clipped at 0; signed ``ari_raw``),
        ``pixel_accuracy``, ``per_class_iou``, ``present_classes``, ``assignment`` (the
        matching), ``method``, ``patch_assignment``, ``mode``, ``num_images``, ``num_pred``,
        ``num_gt``, ``num_pixels``.
    """
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f'data root {data_root} does not exist')
    labels, grids, masks, num_pred, method = segment_parts(model, data_root, **segment_kwargs)
    if all((m == IGNORE_INDEX).all() for m in masks):
        raise ValueError(f'every mask pixel under {data_root} is ignore ({IGNORE_INDEX})')
    num_gt = max(int(m[m != IGNORE_INDEX].max(initial=0)) for m in masks) + 1
    res = part_miou(_pixel_maps(labels, grids, masks), masks, num_pred, num_gt,
                    ignore_index=IGNORE_INDEX, mode=mode)
    cs = clustering_scores(_pixel_maps(labels, grids, masks), masks, ignore_index=IGNORE_INDEX)
    return {
        'miou': res['miou'], 'nmi': cs['nmi'], 'ari': max(0.0, cs['ari']), 'ari_raw': cs['ari'],
        'pixel_accuracy': res['pixel_accuracy'], 'per_class_iou': res['per_class_iou'],
        'present_classes': res['present_classes'], 'assignment': res['assignment'],
        'method': method, 'patch_assignment': segment_kwargs.get('assignment', 'cosine'),
        'mode': mode, 'num_images': len(masks), 'num_pred': num_pred, 'num_gt': num_gt,
        'num_pixels': cs['num_pixels']}


def single_segment_miou(data_root, split='validation', patch_size=8, max_images=None):
    """Part mIoU of the trivial prediction "every pixel one segment": the floor any part
    method must clear (matched to one class, it scores that class alone).

    Args:
        data_root (str): Generic part layout.
        split (str): Which split's part masks.
        patch_size (int): The masks are cropped to multiples of it, as for a model.
        max_images (int | None): Keep the first ``max_images`` (those a model is scored on).

    Returns:
        float: mIoU in [0, 1].
    """
    items, _ = part_items(data_root, split, max_images)
    masks = [prepare_labels(item['parts'], patch_size) for item in items]
    num_gt = max(int(m[m != IGNORE_INDEX].max(initial=0)) for m in masks) + 1
    return part_miou((np.zeros_like(m) for m in masks), masks, 1, num_gt)['miou']
