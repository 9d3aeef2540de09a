"""The register dictionary of a dataset, measured and drawn: what
``tools/analysis/register_dictionary.py`` writes (see :mod:`.dictionary` for the clustering)."""
import os

import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

from .dictionary import build_register_dictionary, render_dictionary_heatmap
from ..io import (category_labels, features, fit_to_patches, image_files, load_image,
                 prefix_tokens, prepare_image)
from .similarity import register_patch_similarity, similarity_maps

__all__ = ['collect_registers', 'register_dictionary_report', 'select_images']


def collect_registers(model, files, size=None):
    """Per image: (N, D) registers and (N, L) register-patch cosine maps with their grid
    (N = 1 for a model with a [CLS] token, that token: ``prefix_tokens``)."""
    regs, sims = [], []
    for path in tqdm(files, desc='registers', unit='image', leave=False, disable=None):
        out = features(model, prepare_image(path, model.patch_size, size))
        tokens = prefix_tokens(model, out)                                 # (1, N or 1, D)
        regs.append(tokens[0])
        sim = register_patch_similarity(out['x_norm_patchtokens'], tokens)
        sims.append((sim[0], out['grid_size']))
    return torch.stack(regs), sims                                          # (M, N, D)


def top_images(emb, result, k):
    """Per entry, up to k (image, register, cosine) members closest to its centroid."""
    x = F.normalize(emb, dim=-1)                                            # (M, N, D)
    cos = torch.einsum('mnd,ed->emn', x, F.normalize(result['centroids'], dim=-1))
    cos = cos.masked_fill(result['labels'][None] != torch.arange(len(cos))[:, None, None],
                          float('-inf'))                                   # members only
    best, reg = cos.max(dim=2)                                              # (E, M)
    tops = []
    for e in range(len(cos)):
        order = [int(m) for m in best[e].argsort(descending=True)[:k] if best[e, m] > -1e9]
        tops.append([(m, int(reg[e, m]), float(best[e, m])) for m in order])
    return tops


def render_entry(entry, top, files, sims, names, size, patch_size, path):
    """Save one entry's row: each top image with its register's similarity map over it."""
    fig = Figure(figsize=(2.0 * max(len(top), 1), 2.4), dpi=100)
    axes = fig.subplots(1, max(len(top), 1), squeeze=False)[0]
    for ax in axes:
        ax.set_axis_off()
    for ax, (m, r, score) in zip(axes, top):
        image = fit_to_patches(load_image(files[m]), patch_size, size)
        H, W = image.shape[:2]
        heat = similarity_maps(sims[m][0][None, r:r + 1], sims[m][1], (H, W))[0, 0].numpy()
        heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-8)
        ax.imshow(image)
        ax.imshow(heat, cmap='inferno', alpha=0.55, vmin=0, vmax=1)
        label = f'{names[m]} ' if names else ''
        ax.set_title(f'{label}r{r} cos {score:.2f}', fontsize=7)
    common = sorted(entry['registers'].items(), key=lambda rc: -rc[1])[:6]
    regs = ', '.join(f'r{r} x{c}' for r, c in common)
    fig.suptitle(f"entry {entry['id']}: {entry['size']} members ({regs})", fontsize=8)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=fig.dpi)


def select_images(data_root, split=None, max_images=None):
    """Images to use, with dense category indices, names and original ids (or Nones).

    Args:
        data_root (str): Dataset folder (``images/``, optional ``labels/*.txt``).
        split (str | None): Only images under ``images/SPLIT``.
        max_images (int | None): Keep the first ``max_images``.

    Returns:
        tuple: files (list[Path]), categories (list[int] | None, dense over the ids present),
        names (list[str] | None) and ids (list[int] | None) of the dense categories.
    """
    files = image_files(data_root, split)
    cat_map, cat_names = category_labels(data_root)
    if cat_map is not None:
        files = [f for f in files if str(f.resolve()) in cat_map]
        if not files:
            raise ValueError(f'no image under {data_root} is listed in its labels/*.txt')
    files = files[:max_images] if max_images else files
    cats = names = present = None
    if cat_map is not None:  # dense category indices over the ids present, with names
        ids = [cat_map[str(f.resolve())] for f in files]
        present = sorted(set(ids))
        cats = [present.index(i) for i in ids]
        names = [cat_names.get(i, str(i)) for i in present]
    return files, cats, names, present


def register_dictionary_report(model, data_root, out_dir, num_entries=None, top_k=6,
                               split=None, max_images=None, size=None, seed=0):
    """Build the register dictionary of a dataset and write its heat map and entry rows.

    Args:
        model (RatsViT): The backbone (eval mode); a model with a [CLS] token (a ViT, with
            or without registers) uses that token (``prefix_tokens``).
        data_root (str): Dataset folder (``images/``, optional ``labels/*.txt`` categories).
        out_dir (str): Output folder for ``dictionary_heatmap.png`` and ``entry_NN.png``.
        num_entries (int | None): Dictionary entries (default: the registers N; for a
            model with a [CLS] token, the number of categories, or 8 without them).
        top_k (int): Images shown per entry.
        split (str | None): Only images under ``images/SPLIT``.
        max_images (int | None): Keep the first ``max_images``.
        size (int | None): Resize the short side to this before cropping to the patch grid.
        seed (int): k-means seed.

    Returns:
        dict: What ``dictionary.json`` holds (entries, entry x category counts, proximity,
        images, register entries, ...).
    """
    files, cats, names, present = select_images(data_root, split, max_images)
    emb, sims = collect_registers(model, files, size)
    E = num_entries or (0 if model.has_class_token else model.num_registers) or len(
        names or ()) or 8
    if not 1 <= E <= emb.shape[0] * emb.shape[1]:
        raise ValueError(f'num_entries={E} must lie in [1, {emb.shape[0] * emb.shape[1]}] '
                         f'({emb.shape[0]} images x {emb.shape[1]} registers)')
    result = build_register_dictionary(emb, cats, E, seed=seed)
    os.makedirs(out_dir, exist_ok=True)
    render_dictionary_heatmap(result, names or ['all'],
                              os.path.join(out_dir, 'dictionary_heatmap.png'))
    image_names = None if cats is None else [names[c] for c in cats]
    for entry, top in zip(result['entries'], top_images(emb, result, top_k)):
        render_entry(entry, top, files, sims, image_names, size, model.patch_size,
                     os.path.join(out_dir, f"entry_{entry['id']:02d}.png"))
        entry['top_images'] = [{'path': str(files[m]), 'register': r, 'cosine': s}
                               for m, r, s in top]
    out = {k: result[k] for k in ('entries', 'entry_category', 'entry_category_counts',
                                  'cross_category_proximity', 'category_entry_overlap')}
    out.update(category_names=names, category_ids=present, num_images=len(files),
               num_registers=model.num_registers, num_entries=E,
               images=[str(f) for f in files], register_entries=result['labels'])
    return out
