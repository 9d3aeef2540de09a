"""Backbones from project configs and checkpoints, image preparation and shared CLI helpers
for the analysis tools (``tools/analysis/*.py``).

Image size rule (``fit_to_patches``): optionally resize so that the short side is ``size``
(bicubic for images, nearest for label maps), then **centre-crop** each side down to the
largest multiple of the patch size. Cropping was chosen over padding so that no patch sees
invented content (padding would add patches of constant colour that k-means and the
registers would have to place somewhere); at most ``patch_size - 1`` border pixels per side
are lost. Part masks go through the identical resize + crop (``prepare_labels``), so predicted
and ground-truth maps are always aligned pixel for pixel.
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import files
from ..data.images import (IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, load_rgb,
                           normalise_uint8, read_label_list)
from ..models.inspection import embedding_tokens

__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'IMAGE_EXTENSIONS', 'category_labels', 'features',
           'fit_geometry',
           'fit_to_patches', 'image_files', 'load_image', 'make_parser', 'part_items',
           'prepare_image', 'prepare_labels', 'run_cli', 'to_jsonable', 'write_json']


@torch.no_grad()
def features(model, image):
    """Args:
        model (RatsViT): The backbone.
        image (Tensor): (1, 3, H, W) prepared image (moved to the model's device here).

    Returns:
        dict: ``forward_tokens`` output, tensors on the CPU, plus ``grid_size``.
    """
    device = next(model.parameters()).device
    out = model.forward_tokens(image.to(device))
    return {k: (v.float().cpu() if torch.is_tensor(v) else v) for k, v in out.items()}


def prefix_tokens(model, out):
    """The tokens the analyses compare patches with, by the rule of
    ``rats_mm.models.inspection.embedding_tokens`` (the one the collapse diagnostics read
    too): what the model's image embedding is read from, its [CLS] token (B, 1, D) when it
    has one (a ViT, with or without registers), else its registers (B, N, D; a RATS).

    Args:
        model (RatsViT): The backbone ``out`` came from.
        out (dict): Its :func:`features`.
    """
    cls = out['x_norm_clstoken'] if model.has_class_token else None
    return embedding_tokens(cls, out['x_norm_regtokens'])


# ----------------------------------------------------------------------------- images

load_image = load_rgb  # (H, W, 3) uint8 RGB array of an image file; errors name the file


def fit_geometry(h, w, patch_size, size):
    """Resized (h, w) and the centre-crop box (top, left, H, W) for ``fit_to_patches``."""
    if size is not None:
        if size < patch_size:
            raise ValueError(f'size={size} is smaller than the patch size {patch_size}')
        scale = size / min(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
    H, W = h // patch_size * patch_size, w // patch_size * patch_size
    if H == 0 or W == 0:
        raise ValueError(f'a {h}x{w} image holds no {patch_size}x{patch_size} patch '
                         '(use --size to enlarge it)')
    return (h, w), ((h - H) // 2, (w - W) // 2, H, W)


def fit_to_patches(array, patch_size, size=None, labels=False):
    """Resize (optional, short side to ``size``) and centre-crop to patch multiples.

    Args:
        array (np.ndarray): (H, W, 3) uint8 image or (H, W) label map.
        patch_size (int): The model's patch size.
        size (int | None): Short side after resizing; None keeps the native size.
        labels (bool): Nearest-neighbour resizing (label maps) instead of bicubic.

    Returns:
        np.ndarray: The fitted array, both sides multiples of ``patch_size``, same dtype.
    """
    array = np.asarray(array)
    (h, w), (top, left, H, W) = fit_geometry(array.shape[0], array.shape[1], patch_size, size)
    if (h, w) != array.shape[:2]:
        resample = Image.NEAREST if labels else Image.BICUBIC
        array = np.asarray(Image.fromarray(array).resize((w, h), resample))
    return array[top:top + H, left:left + W]


def prepare_labels(mask, patch_size, size=None):
    """Apply ``prepare_image``'s geometry to a (H, W) part-id map (nearest neighbour).

    Args:
        mask (np.ndarray): (H, W) uint8 label map.
        patch_size (int): The model's patch size.
        size (int | None): The same ``size`` as given to ``prepare_image``.

    Returns:
        np.ndarray: (H', W') uint8 labels aligned with the prepared image.
    """
    return fit_to_patches(np.asarray(mask, dtype=np.uint8), patch_size, size, labels=True)


def prepare_image(path_or_array, patch_size, size=None):
    """Load (if a path), fit to patch multiples (see the module docstring), normalise.

    Args:
        path_or_array (str | Path | np.ndarray): Image file or (H, W, 3) uint8 RGB array.
        patch_size (int): The model's patch size.
        size (int | None): Short side after resizing; None keeps the native size.

    Returns:
        Tensor: (1, 3, H', W') float32, ImageNet mean/std normalised, H' and W' multiples of
        ``patch_size``.
    """
    array = path_or_array
    if isinstance(array, (str, Path)):
        array = load_image(array)
    array = fit_to_patches(np.asarray(array, dtype=np.uint8), patch_size, size)
    x = torch.from_numpy(np.array(array)).permute(2, 0, 1)  # (3, H', W'), a writable copy
    return normalise_uint8(x).unsqueeze(0)


# ----------------------------------------------------------------------------- datasets

def _split_dir(data_root, split):
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f'data root {data_root} does not exist')
    images = root / 'images'
    if split is None:
        return images if images.is_dir() else root
    if not (images / split).is_dir():
        found = sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
        raise FileNotFoundError(f'no split folder {images / split} (found: {found or "none"})')
    return images / split


def image_files(data_root, split=None, max_images=None):
    """Image files under ``D/images[/split]/**`` (or ``D/**`` without an images folder).

    Args:
        data_root (str): Dataset folder.
        split (str | None): Sub-folder of ``images``.
        max_images (int | None): Keep the first ``max_images`` in sorted order.

    Returns:
        list[Path]: Sorted image files; FileNotFoundError when there are none.
    """
    folder = _split_dir(data_root, split)
    files = sorted(p for p in folder.rglob('*')
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) under {folder}')
    return files[:max_images] if max_images else files


def part_items(data_root, split=None, max_images=None):
    """Items of the generic part layout (``rats_mm.analysis.PartFolder``).

    Args:
        data_root (str): Folder with ``images/**`` and ``parts/<same stem>.png``.
        split (str | None): Sub-folder of ``images`` to keep.
        max_images (int | None): Keep the first ``max_images``.

    Returns:
        tuple[Iterator[dict], int]: lazily read ``image``, ``parts``, ``path`` items (see
        ``PartFolder``) and their number.
    """
    from .parts.readers import PartFolder
    folder = PartFolder(data_root)
    wanted = set(image_files(data_root, split))
    idx = [i for i, p in enumerate(folder.images) if p in wanted][:max_images or None]
    return (folder[i] for i in idx), len(idx)


def category_labels(data_root):
    """Image categories from ``D/labels/*.txt`` (``relative/path.jpg <id>`` lines).

    Args:
        data_root (str): Dataset folder.

    Returns:
        tuple[dict | None, dict]: {absolute resolved path: category id} (None without label
        files) and {category id: name} from the ``categories`` list of ``D/meta.json`` (empty
        when absent). Ids count from 1 when the largest id equals the number of names (the
        synthetic generator's convention, 0 being background), from 0 otherwise.
    """
    root = Path(data_root)
    files = sorted((root / 'labels').glob('*.txt'))
    if not files:
        return None, None
    cats = {}
    for f in files:
        cats.update((str((root / path).resolve()), label) for path, label in read_label_list(f))
    names = []
    if (root / 'meta.json').is_file():
        names = json.loads((root / 'meta.json').read_text()).get('categories') or []
    offset = int(bool(cats) and max(cats.values()) == len(names))
    return cats, {i + offset: str(name) for i, name in enumerate(names)}


# ----------------------------------------------------------------------------- CLI helpers

def make_parser(doc):
    """An ``argparse`` parser showing the tool's module docstring as its description."""
    return argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def run_cli(main, argv=None):
    """Run ``main(argv)``; expected failures exit with ``error: <message>`` (no traceback,
    unless ``RATS_DEBUG=1``)."""
    try:
        return main(argv)
    except (FileNotFoundError, ValueError, RuntimeError, KeyError) as e:
        if os.environ.get('RATS_DEBUG'):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        sys.exit(f'error: {msg}')


def to_jsonable(obj):
    """Numpy / torch values -> JSON types; NaN and inf -> None; keys -> str."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if torch.is_tensor(obj):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path, obj):
    """Write ``to_jsonable(obj)`` to ``path`` (``rats_mm.files.write_json``: atomic, parent
    folders created, indent 1); return ``path``."""
    return files.write_json(path, to_jsonable(obj), indent=1)
