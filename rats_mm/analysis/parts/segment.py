"""Patch labellings: by the most similar register, by k-means, and upsampled to pixels.

``register_assignment`` is how RATS segments without training anything: every patch goes to
the register it resembles most. ``kmeans_assignment`` is the usual baseline for models without
part tokens (DINO, DINOv2, ...): cluster patch features jointly over a set of images so that a
cluster id means the same thing in every image, as the registers do.
"""
import warnings

import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning

from .grid import upsample_labels  # noqa: F401  (re-exported: the segmentation API)
from .similarity import register_patch_similarity

__all__ = ['register_assignment', 'kmeans', 'kmeans_assignment', 'upsample_labels']

_CHUNK = 65536  # rows per distance block, bounds memory to _CHUNK x K floats


def register_assignment(patch_tokens, register_tokens, background_threshold=None):
    """Give each patch to its most similar register (cosine similarity).

    Args:
        patch_tokens (Tensor): (B, L, D) patch embeddings.
        register_tokens (Tensor): (B, N, D) register embeddings of the same images.
        background_threshold (float | None): Patches whose best similarity is below this get
            the background label N; None gives every patch a register.

    Returns:
        Tensor: (B, L) int64 labels in [0, N] (N only with a threshold).
    """
    sim = register_patch_similarity(patch_tokens, register_tokens)         # (B, N, L)
    best, labels = sim.max(dim=1)                                           # (B, L)
    if background_threshold is not None:
        labels = torch.where(best < background_threshold,
                             torch.full_like(labels, sim.shape[1]), labels)
    return labels.long()


def _nearest(x, centroids):
    """(M,) int64 index of each point's nearest centroid (Euclidean), in memory-bound blocks.

    Args:
        x (Tensor): (M, D) points.
        centroids (Tensor): (K, D) centroids.
    """
    return torch.cat([torch.cdist(x[start:start + _CHUNK], centroids).argmin(dim=1)
                      for start in range(0, x.shape[0], _CHUNK)])


def kmeans(features, num_clusters, seed=0, iters=50):
    """k-means (scikit-learn's ``KMeans``, k-means++ seeding) on L2-normalised features.

    Deterministic for a given ``seed`` (``random_state``; torch's global RNG is left alone).

    Args:
        features (Tensor): (M, D) points (normalised here).
        num_clusters (int): K, at most M.
        seed (int): ``random_state`` of the seeding.
        iters (int): Maximum Lloyd iterations.

    Returns:
        tuple[Tensor, Tensor]: (K, D) float32 centroids (means of normalised points, not
        renormalised) and (M,) int64 labels, each point labelled with its nearest centroid.
    """
    from sklearn.cluster import KMeans
    x = F.normalize(torch.as_tensor(features).detach().float().cpu(), dim=-1)
    if x.dim() != 2:
        raise ValueError(f'expected (M, D) features, got {tuple(x.shape)}')
    if not 1 <= num_clusters <= x.shape[0]:
        raise ValueError(f'num_clusters={num_clusters} must lie in [1, {x.shape[0]}] points')
    with warnings.catch_warnings():  # fewer distinct points than K: sklearn warns, still fits
        warnings.simplefilter('ignore', ConvergenceWarning)
        fit = KMeans(num_clusters, init='k-means++', n_init=1, max_iter=iters,
                     random_state=int(seed)).fit(x.numpy())
    centroids = torch.from_numpy(fit.cluster_centers_).float()
    return centroids, torch.from_numpy(fit.labels_).long()


def kmeans_assignment(patch_tokens, num_clusters, seed=0, iters=50, centroids=None,
                      return_centroids=False):
    """Cluster patches of all given images jointly (or apply given centroids).

    Args:
        patch_tokens (Tensor): (B, L, D) patch embeddings.
        num_clusters (int): Number of clusters K (ignored when ``centroids`` is given).
        seed (int): k-means++ seed.
        iters (int): Maximum Lloyd iterations.
        centroids (Tensor | None): (K, D) centroids of an earlier fit (e.g. on a training
            set) to assign with instead of fitting.
        return_centroids (bool): Also return the centroids.

    Returns:
        Tensor | tuple[Tensor, Tensor]: (B, L) int64 labels in [0, K); with
        ``return_centroids`` also the (K, D) centroids.
    """
    tokens = torch.as_tensor(patch_tokens).detach()
    if tokens.dim() != 3:
        raise ValueError(f'expected (B, L, D) patch tokens, got {tuple(tokens.shape)}')
    B, L, D = tokens.shape
    flat = tokens.reshape(B * L, D)                                         # (B*L, D)
    if centroids is None:
        centroids, labels = kmeans(flat, num_clusters, seed=seed, iters=iters)
    else:
        centroids = torch.as_tensor(centroids).detach().float().cpu()
        if centroids.dim() != 2 or centroids.shape[1] != D:
            raise ValueError(f'centroids {tuple(centroids.shape)} do not match width {D}')
        labels = _nearest(F.normalize(flat.float().cpu(), dim=-1), centroids)
    labels = labels.reshape(B, L).to(tokens.device)                         # (B, L)
    return (labels, centroids) if return_centroids else labels
