"""Unsupervised single-object discovery scored by CorLoc: LOST for any ViT, and the RATS
registers' own foreground.

LOST (Simeoni et al., 2021) on the last block's patch keys: patches form a graph with an edge
where two keys have a positive dot product; the seed is the patch of lowest degree (the object
is assumed to cover less of the image than the background, so its patches have fewer
neighbours); the seed is expanded to those of the ``k`` lowest-degree patches that are
positively correlated with it; a patch is foreground when its summed correlation with that set
is positive; the box is that of the foreground's connected component holding the seed.

Registers (RATS): every patch goes to the register whose similarity map is highest at it
(cosine, as the part segmentation). A register is background when at least as large a share
of its patches lies on the image border as the border holds of the whole grid (the same prior
as LOST's: objects sit inside the frame, background reaches its edges); the patches of the
other registers are the foreground, and the box is that of its largest connected component.
With no foreground left the box is the whole image.
"""
import os

import numpy as np
from scipy import ndimage

from .boxes import corloc_hits, draw_discovery, read_boxes
from ..io import features, fit_geometry, load_image, prepare_image
from ..parts.segment import register_assignment

__all__ = ['DISCOVERY_METHODS', 'discover_objects', 'lost_foreground',
           'register_foreground', 'mask_box']

DISCOVERY_METHODS = ('lost', 'registers')


def lost_foreground(keys, grid_size, k_patches=100):
    """LOST's seed and foreground on one image.

    Args:
        keys (Tensor): (L, D) patch keys of the last block.
        grid_size (tuple): (h, w) patch grid, h * w = L.
        k_patches (int): Lowest-degree patches considered for the seed expansion.

    Returns:
        tuple[int, np.ndarray]: The seed's patch index and the (h, w) bool mask of the
        foreground's connected component that holds the seed.
    """
    h, w = grid_size
    keys = keys.float()
    corr = keys @ keys.T                                                    # (L, L)
    degree = (corr > 0).sum(dim=1)
    seed = int(degree.argmin())
    candidates = degree.argsort()[:k_patches]
    similar = candidates[corr[seed, candidates] > 0]                        # holds the seed
    foreground = (corr[similar].sum(dim=0) > 0).view(h, w).cpu().numpy()
    components, _ = ndimage.label(foreground)
    return seed, components == components[seed // w, seed % w]


def register_foreground(patch_tokens, register_tokens, grid_size):
    """The registers' foreground on one image (see the module docstring).

    Args:
        patch_tokens (Tensor): (L, D) final patch tokens.
        register_tokens (Tensor): (N, D) final registers.
        grid_size (tuple): (h, w), h * w = L.

    Returns:
        tuple[np.ndarray, list[int]]: The (h, w) bool mask of the largest foreground
        component (all False when every register is background) and the background
        registers.
    """
    h, w = grid_size
    labels = register_assignment(patch_tokens[None], register_tokens[None])[0].view(h, w)
    border = np.zeros((h, w), dtype=bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    labels = labels.cpu().numpy()
    border_share = border.mean()
    background = [int(r) for r in np.unique(labels)
                  if border[labels == r].mean() >= border_share]
    foreground = ~np.isin(labels, background)
    components, count = ndimage.label(foreground)
    if count == 0:
        return foreground, background
    sizes = ndimage.sum_labels(foreground, components, index=range(1, count + 1))
    return components == 1 + int(np.argmax(sizes)), background


def mask_box(mask, patch_size):
    """(x0, y0, x1, y1) in pixels of the patch grid around a (h, w) bool mask (the whole grid
    when the mask is empty)."""
    rows, cols = np.nonzero(mask)
    if not len(rows):
        h, w = mask.shape
        return np.array([0, 0, w * patch_size, h * patch_size], dtype=np.float32)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1],
                    dtype=np.float32) * patch_size


def _predict(model, image, method, k_patches):
    """Foreground mask (h, w) of one prepared image by ``method``."""
    grid = (image.shape[2] // model.patch_size, image.shape[3] // model.patch_size)
    if method == 'lost':
        device = next(model.parameters()).device
        keys = model.last_patch_keys(image.to(device))[0]                   # (L, D)
        return lost_foreground(keys, grid, k_patches)[1]
    out = features(model, image)
    return register_foreground(out['x_norm_patchtokens'][0], out['x_norm_regtokens'][0],
                               grid)[0]


def _to_image_box(box, shape, patch_size, size):
    """A box on the prepared (resized, centre-cropped) image -> original pixel coordinates."""
    (rh, rw), (top, left, _, _) = fit_geometry(shape[0], shape[1], patch_size, size)
    scale = np.array([shape[1] / rw, shape[0] / rh] * 2, dtype=np.float32)
    return (box + np.array([left, top, left, top], dtype=np.float32)) * scale


def discover_objects(model, data_root, ann_file, method='lost', img_dir=None, size=None,
                     k_patches=100, max_images=None, vis_dir=None, num_vis=8,
                     threshold=0.5):
    """One box per image by ``method``, scored by CorLoc against the annotated boxes.

    Args:
        model (RatsViT): The backbone (eval mode).
        data_root (str): Dataset folder.
        ann_file (str): COCO-style json, VOC XML folder or VOC image-set list.
        method (str): ``'lost'`` (any ViT) or ``'registers'`` (models with registers).
        img_dir (str | None): Image folder relative to ``data_root`` (default: ``images``
            for COCO when present, else ``data_root``; ``JPEGImages`` for VOC).
        size (int | None): Resize the short side to this first (default: native size).
        k_patches (int): LOST's expansion size.
        max_images (int | None): Score the first ``max_images``.
        vis_dir (str | None): Where PNGs of the first ``num_vis`` images go.
        num_vis (int): Images drawn.
        threshold (float): IoU for a correct box.

    Returns:
        dict: ``corloc`` in [0, 1], ``num_images``, ``num_correct``, ``method`` and
        ``boxes`` (file name, predicted box, correct) per image.
    """
    if method not in DISCOVERY_METHODS:
        raise ValueError(f'method={method!r} is not one of {DISCOVERY_METHODS}')
    if method == 'registers' and not model.num_registers:
        raise ValueError("method='registers' needs a model with registers (this one has "
                         "none): use method='lost'")
    items, default_dir = read_boxes(data_root, ann_file)
    folder = os.path.join(data_root, default_dir if img_dir is None else img_dir)
    items = items[:max_images or None]
    if not items:
        raise ValueError(f'{ann_file}: no image with a box')
    from tqdm import tqdm
    preds = []
    for i, item in enumerate(tqdm(items, desc=f'discovery ({method})', leave=False)):
        path = os.path.join(folder, item['file_name'])
        array = load_image(path)
        mask = _predict(model, prepare_image(array, model.patch_size, size), method,
                        k_patches)
        box = _to_image_box(mask_box(mask, model.patch_size), array.shape, model.patch_size,
                            size)
        preds.append(box)
        if vis_dir and i < num_vis:
            draw_discovery(array, box, item['boxes'], os.path.join(
                vis_dir, os.path.splitext(item['file_name'])[0].replace('/', '_') + '.png'))
    hits = corloc_hits(np.stack(preds), [item['boxes'] for item in items], threshold)
    return {'corloc': float(np.mean(hits)), 'num_images': len(items),
            'num_correct': int(sum(hits)), 'method': method, 'iou_threshold': threshold,
            'boxes': [{'file_name': item['file_name'], 'box': box.tolist(), 'correct': hit}
                      for item, box, hit in zip(items, preds, hits)]}
