"""Patch labellings: by the most similar register, by k-means, and upsampled to pixels.

``register_assignment`` is how RATS segments without training anything: every patch goes to
the register it resembles most. ``kmeans_assignment`` is the usual baseline for models without
part tokens (DINO, DINOv2, ...): cluster patch features jointly over a set of images so that a
cluster id means the same thing in every image, as the registers do.
"""
import torch
import torch.nn.functional as F

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


def _nearest(x, centroids, x_sq=None):
    """Nearest centroid of each point.

    Args:
        x (Tensor): (M, D) points.
        centroids (Tensor): (K, D) centroids.
        x_sq (Tensor | None): (M,) squared norms of ``x`` if already known.

    Returns:
        tuple[Tensor, Tensor]: (M,) int64 nearest centroid, (M,) squared distance to it.
    """
    x_sq = (x * x).sum(1) if x_sq is None else x_sq                         # (M,)
    c_sq = (centroids * centroids).sum(1)                                   # (K,)
    labels, dists = [], []
    for start in range(0, x.shape[0], _CHUNK):
        block = x[start:start + _CHUNK]                                     # (m, D)
        d = torch.addmm(c_sq.unsqueeze(0), block, centroids.T, alpha=-2.0)  # (m, K)
        dist, lab = d.min(dim=1)
        labels.append(lab)
        dists.append((dist + x_sq[start:start + _CHUNK]).clamp_(min=0))
    return torch.cat(labels), torch.cat(dists)


def _kmeans_pp(x, k, gen, x_sq):
    """k-means++ seeding: each next centre drawn with probability ~ squared distance."""
    M = x.shape[0]
    first = int(torch.randint(M, (1,), generator=gen))
    chosen = [first]
    dist = _nearest(x, x[first:first + 1], x_sq)[1]                        # (M,)
    for _ in range(1, k):
        total = float(dist.sum())
        if total > 0:
            idx = int(torch.multinomial(dist / total, 1, generator=gen))
        else:  # fewer distinct points than k: any point will do
            idx = int(torch.randint(M, (1,), generator=gen))
        chosen.append(idx)
        dist = torch.minimum(dist, _nearest(x, x[idx:idx + 1], x_sq)[1])
    return x[chosen].clone()                                                # (k, D)


def kmeans(features, num_clusters, seed=0, iters=50):
    """Lloyd's k-means with k-means++ seeding on L2-normalised features (Euclidean).

    Deterministic for a given ``seed`` (a private ``torch.Generator``; the global RNG is left
    alone). A cluster that empties is re-seeded at the point farthest from its centre.

    Args:
        features (Tensor): (M, D) points (normalised here).
        num_clusters (int): K, at most M.
        seed (int): Seed of the k-means++ draws.
        iters (int): Maximum Lloyd iterations (stops earlier once labels stop changing).

    Returns:
        tuple[Tensor, Tensor]: (K, D) float32 centroids (means of normalised points, not
        renormalised) and (M,) int64 labels, each point labelled with its nearest centroid.
    """
    x = F.normalize(torch.as_tensor(features).detach().float().cpu(), dim=-1)
    if x.dim() != 2:
        raise ValueError(f'expected (M, D) features, got {tuple(x.shape)}')
    if not 1 <= num_clusters <= x.shape[0]:
        raise ValueError(f'num_clusters={num_clusters} must lie in [1, {x.shape[0]}] points')
    gen = torch.Generator(device='cpu').manual_seed(int(seed))
    x_sq = (x * x).sum(1)                                                   # (M,)
    centroids = _kmeans_pp(x, num_clusters, gen, x_sq)
    labels, dist = _nearest(x, centroids, x_sq)
    for _ in range(iters):
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)        # (K, D)
        counts = torch.bincount(labels, minlength=num_clusters)            # (K,)
        centroids = sums / counts.clamp(min=1).unsqueeze(1).float()
        for k in torch.nonzero(counts == 0).flatten().tolist():
            far = int(dist.argmax())
            centroids[k] = x[far]
            dist[far] = 0
        new_labels, dist = _nearest(x, centroids, x_sq)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return centroids, labels


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
        labels = _nearest(F.normalize(flat.float().cpu(), dim=-1), centroids)[0]
    labels = labels.reshape(B, L).to(tokens.device)                         # (B, L)
    return (labels, centroids) if return_centroids else labels


def upsample_labels(labels, grid_size, out_size):
    """Nearest-neighbour upsampling of patch labels to pixels.

    Output pixel (y, x) takes patch (floor(y * h / H), floor(x * w / W)), the rule of
    ``F.interpolate(mode='nearest')``, computed with integers so labels stay exact.

    Args:
        labels (Tensor): (B, L) integer labels, L = h * w in row-major patch order.
        grid_size (tuple[int, int]): Patch grid (h, w).
        out_size (tuple[int, int]): Output (H, W).

    Returns:
        Tensor: (B, H, W) labels, same dtype and device.
    """
    labels = torch.as_tensor(labels)
    h, w = grid_size
    H, W = out_size
    if labels.dim() != 2 or labels.shape[1] != h * w:
        raise ValueError(f'labels {tuple(labels.shape)} do not fill a {h}x{w} grid')
    grid = labels.reshape(labels.shape[0], h, w)                            # (B, h, w)
    rows = torch.clamp(torch.arange(H, device=labels.device) * h // H, max=h - 1)
    cols = torch.clamp(torch.arange(W, device=labels.device) * w // W, max=w - 1)
    return grid[:, rows][:, :, cols]                                        # (B, H, W)
