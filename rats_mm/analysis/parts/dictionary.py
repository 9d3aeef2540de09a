"""The register dictionary: dataset-wide clusters of per-image register embeddings.

Every (image, register) pair gives one embedding (a register's final normed token in that
image). Clustering all of them gives dictionary entries; an entry that collects, say,
register 5 from birds and from planes is a part shared across categories ("wing"), and the
paper's "Part Entries" panel and cross-category figure read off this structure.
"""
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .segment import kmeans

__all__ = ['build_register_dictionary', 'render_dictionary_heatmap']


def _categories(categories, M, num_categories):
    """(M,) int64 category per image (all 0 when None) and the number of categories."""
    if categories is None:
        return np.zeros(M, dtype=np.int64), 1 if num_categories is None else num_categories
    cats = np.asarray(torch.as_tensor(categories).cpu(), dtype=np.int64).reshape(-1)
    if cats.shape[0] != M:
        raise ValueError(f'{cats.shape[0]} categories for {M} images')
    if cats.size and cats.min() < 0:
        raise ValueError(f'category {int(cats.min())} is negative')
    top = int(cats.max(initial=-1)) + 1
    if num_categories is not None and top > num_categories:
        raise ValueError(f'category {top - 1} >= num_categories={num_categories}')
    return cats, top if num_categories is None else num_categories


def _category_means(x, cats, num_categories):
    """(M, N, D) normalised embeddings -> (C, N, D) per-category mean of each register."""
    M, N, D = x.shape
    sums = torch.zeros(num_categories, N, D, dtype=x.dtype)
    sums.index_add_(0, torch.as_tensor(cats), x)                           # (C, N, D)
    counts = torch.as_tensor(np.bincount(cats, minlength=num_categories), dtype=x.dtype)
    return sums / counts.clamp(min=1).view(-1, 1, 1), counts


def _proximity(x, cats, num_categories):
    """Register-wise cross-category proximity, (C, C), nan for categories without images."""
    means, counts = _category_means(x, cats, num_categories)               # (C, N, D)
    means = F.normalize(means, dim=-1)
    prox = torch.einsum('cnd,end->cen', means, means).mean(-1).numpy()     # (C, C)
    absent = (counts == 0).numpy()
    prox[absent, :] = np.nan
    prox[:, absent] = np.nan
    return prox.astype(np.float64)


def build_register_dictionary(register_embeddings, categories, num_entries, seed=0,
                              num_categories=None, iters=100):
    """Cluster all (image, register) embeddings into a dictionary of part entries.

    Definitions (C categories, E entries, N registers):

    - ``entry_category_counts[e, c]``: embeddings of images of category c in entry e;
      ``entry_category[e, c]`` = that count / all embeddings of category c, i.e. the share of
      category c's registers that entry e holds (columns sum to 1; 0 for a category without
      images). Normalising per category keeps large categories from dominating.
    - ``cross_category_proximity[c, c']``: mean over registers r of the cosine similarity of
      m(c, r) and m(c', r), where m(c, r) is the mean normalised embedding of register r over
      the images of category c. Since a register settles on one kind of part, high values
      mean the two categories' parts look alike register by register (diagonal 1; nan rows
      and columns for categories without images).
    - ``category_entry_overlap[c, c']``: cosine similarity of the columns c and c' of
      ``entry_category``, i.e. how much the two categories use the same entries.

    Args:
        register_embeddings (Tensor | np.ndarray): (M, N, D) registers of M images.
        categories (Sequence[int] | np.ndarray | Tensor | None): (M,) category per image, or
            None (one category, 0; entries then carry empty ``categories`` dicts).
        num_entries (int): Dictionary size E (k-means clusters), at most M * N.
        seed (int): k-means++ seed (deterministic).
        num_categories (int | None): C; default max category + 1.
        iters (int): Maximum k-means iterations.

    Returns:
        dict: ``entries`` (list of dicts ``id``, ``size``, ``registers`` {register: count},
        ``categories`` {category: count}, ``mean_similarity`` (mean cosine of members to the
        normalised centroid)), ``entry_category`` ((E, C) float64), ``entry_category_counts``
        ((E, C) int64), ``cross_category_proximity`` ((C, C) float64),
        ``category_entry_overlap`` ((C, C) float64), ``labels`` ((M, N) int64 entry of each
        image's register), ``centroids`` ((E, D) float32).
    """
    emb = torch.as_tensor(register_embeddings).detach().float().cpu()
    if emb.dim() != 3:
        raise ValueError(f'expected (M, N, D) register embeddings, got {tuple(emb.shape)}')
    M, N, D = emb.shape
    cats, C = _categories(categories, M, num_categories)
    x = F.normalize(emb, dim=-1)                                            # (M, N, D)
    centroids, labels = kmeans(x.reshape(M * N, D), num_entries, seed=seed, iters=iters)
    sims = (x.reshape(M * N, D) * F.normalize(centroids, dim=-1)[labels]).sum(-1)  # (M*N,)
    cat_idx = np.repeat(cats, N)                                           # (M*N,) category
    counts = np.zeros((num_entries, C), dtype=np.int64)
    np.add.at(counts, (labels.numpy(), cat_idx), 1)
    per_cat = counts.sum(0, keepdims=True)
    freq = np.divide(counts, per_cat, out=np.zeros(counts.shape), where=per_cat > 0)
    profiles = F.normalize(torch.as_tensor(freq.T), dim=-1)                # (C, E)
    return {
        'entries': _entries(labels.numpy(), sims.numpy(), N,
                            None if categories is None else cat_idx, num_entries),
        'entry_category': freq,
        'entry_category_counts': counts,
        'cross_category_proximity': _proximity(x, cats, C),
        'category_entry_overlap': (profiles @ profiles.T).numpy(),
        'labels': labels.reshape(M, N),
        'centroids': centroids,
    }


def _entries(labels, sims, N, cat_idx, num_entries):
    """Per-entry summaries from flat (M*N,) entry labels, similarities and categories."""
    reg_idx = np.arange(labels.shape[0]) % N                               # (M*N,) register
    entries = []
    for e in range(num_entries):
        member = labels == e
        entries.append({
            'id': e, 'size': int(member.sum()),
            'registers': dict(sorted(Counter(reg_idx[member].tolist()).items())),
            'categories': ({} if cat_idx is None
                           else dict(sorted(Counter(cat_idx[member].tolist()).items()))),
            'mean_similarity': float(sims[member].mean()) if member.any() else float('nan'),
        })
    return entries


def render_dictionary_heatmap(result, category_names, path):
    """Save a PNG: entry x category frequencies, and the cross-category proximity matrix.

    Args:
        result (dict): Output of ``build_register_dictionary``.
        category_names (Sequence[str] | None): Name of each category (length C); None uses
            the indices.
        path (str | Path): Output PNG file.

    Returns:
        str: ``path``.
    """
    freq, prox = result['entry_category'], result['cross_category_proximity']
    E, C = freq.shape
    names = [str(c) for c in range(C)] if category_names is None else list(category_names)
    if len(names) != C:
        raise ValueError(f'{len(names)} category names for {C} categories')
    width = 2.0 + 0.35 * C
    fig = Figure(figsize=(2 * width + 1.0, 1.5 + 0.25 * max(E, C)), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    im = ax1.imshow(freq, aspect='auto', cmap='viridis', vmin=0.0)
    ax1.set_title('entry share of each category', fontsize=9)
    ax1.set(xlabel='category', ylabel='entry')
    ax1.set_xticks(range(C), names, rotation=90, fontsize=7)
    ax1.set_yticks(range(E), [str(e) for e in range(E)], fontsize=6)
    fig.colorbar(im, ax=ax1, fraction=0.046)
    im = ax2.imshow(np.nan_to_num(prox, nan=0.0), cmap='magma', vmin=-1.0, vmax=1.0)
    ax2.set_title('cross-category proximity', fontsize=9)
    ax2.set_xticks(range(C), names, rotation=90, fontsize=7)
    ax2.set_yticks(range(C), names, fontsize=7)
    fig.colorbar(im, ax=ax2, fraction=0.046)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(str(path), dpi=fig.dpi)
    return str(path)
