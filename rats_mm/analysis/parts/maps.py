"""Register similarity maps of images, rendered: what ``tools/analysis/similarity_maps.py``
and ``make demo`` write."""
import os

from tqdm import tqdm

from ..io import IMAGE_EXTENSIONS, features, fit_to_patches, load_image, prefix_tokens
from ..io import prepare_image
from .segment import upsample_labels
from .similarity import (register_patch_similarity, render_part_overlay,
                         render_similarity_grid, similarity_maps)

__all__ = ['expand_images', 'output_stems', 'render_similarity_map', 'write_similarity_maps']

SOURCES = ('cosine', 'compress')


def expand_images(paths):
    """Files as given, folders expanded to their images (sorted, recursive).

    Args:
        paths (Sequence[str]): Image files or folders.

    Returns:
        list[str]: Image files.
    """
    files = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs
                           if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) under {p}')
            files += found
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise FileNotFoundError(f'image file {p} does not exist')
    return files


def output_stems(files):
    """Output name per image: the file stem, index-prefixed when stems collide."""
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    if len(set(stems)) == len(stems):
        return stems
    return [f'{i:04d}_{s}' for i, s in enumerate(stems)]


def _similarity(model, image, source):
    """(1, N, L) register-patch similarity of one prepared image and its patch grid (N = 1
    for a model with a [CLS] token under ``'cosine'``: ``prefix_tokens``)."""
    out = features(model, image)
    if source == 'cosine':
        return register_patch_similarity(out['x_norm_patchtokens'], prefix_tokens(model, out)), \
            out['grid_size']
    dev = next(model.parameters()).device
    return model.last_compress_weights(image.to(dev)).float().cpu(), out['grid_size']


def write_similarity_maps(model, images, out_dir, source='cosine', size=None):
    """Per image, a grid of per-register heat maps and a part overlay, as PNGs.

    Args:
        model (RatsViT): The backbone (eval mode); a model with a [CLS] token (a ViT, with
            or without registers) shows that token's map (``prefix_tokens``).
        images (Sequence[str]): Image files or folders.
        out_dir (str): Output folder (created).
        source (str): ``'cosine'`` (final registers vs final patches) or ``'compress'`` (the
            last block's compress attention; RATS only).
        size (int | None): Resize the short side to this before cropping to the patch grid.

    Returns:
        list[dict]: Per image ``image``, ``similarity`` and ``overlay`` paths and its size.
    """
    if source not in SOURCES:
        raise ValueError(f'source={source!r} is not one of {SOURCES}')
    if source == 'compress' and model.attn_mode != 'rats':
        raise ValueError("the compress source needs a RATS model (attn_mode='rats'); this "
                         f'model has attn_mode={model.attn_mode!r}')
    files = expand_images(images)
    os.makedirs(out_dir, exist_ok=True)
    return [render_similarity_map(model, path, os.path.join(out_dir, f'{stem}_similarity.png'),
                                  os.path.join(out_dir, f'{stem}_overlay.png'), source, size)
            for path, stem in tqdm(list(zip(files, output_stems(files))),
                                   desc='similarity maps', unit='image', leave=False,
                                   disable=None)]


def render_similarity_map(model, path, grid_png, overlay_png=None, source='cosine', size=None):
    """One image's grid of per-register heat maps (and its part overlay), as PNGs: what
    :func:`write_similarity_maps` draws for each image.

    Args:
        model (RatsViT): The backbone (eval mode); a model with a [CLS] token (a ViT, with
            or without registers) shows that token's map (``prefix_tokens``).
        path (str): Image file.
        grid_png (str): PNG of the heat maps.
        overlay_png (str | None): PNG of the overlay (each pixel's most similar register);
            None draws none.
        source (str): ``'cosine'`` or ``'compress'`` (see :func:`write_similarity_maps`).
        size (int | None): Resize the short side to this before cropping to the patch grid.

    Returns:
        dict: ``image``, ``similarity`` and ``overlay`` paths and the drawn ``size`` (W, H).
    """
    image = fit_to_patches(load_image(path), model.patch_size, size)        # (H, W, 3)
    sim, grid = _similarity(model, prepare_image(image, model.patch_size), source)
    H, W = image.shape[:2]
    render_similarity_grid(image, similarity_maps(sim, grid, (H, W))[0], grid_png)
    if overlay_png:
        labels = upsample_labels(sim.argmax(dim=1), grid, (H, W))[0]
        render_part_overlay(image, labels, overlay_png, sim.shape[1])
    return {'image': path, 'similarity': grid_png, 'overlay': overlay_png, 'size': (W, H)}
