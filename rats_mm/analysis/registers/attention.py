"""What the three steps of register attention do, block by block: are the registers reading
different things yet?

For each block, from the weights of compress (registers over patches), communicate
(registers over their head's registers) and broadcast (patches over a head's registers):

- ``compress_entropy``: mean entropy of a register's weights over the L patches, / ln L
  (1.0: it reads every patch alike);
- ``compress_peak``: mean of a register's largest weight x L (1.0: uniform);
- ``compress_map_similarity``: mean cosine similarity between the centred compress maps of
  two registers of one head (near 1: they all read the same places; None when n = 1);
- ``communicate_entropy``: the same entropy over the head's n registers, / ln n (1.0: every
  register of a head receives the mean of their compressed vectors, the same message);
- ``communicate_self_weight``: mean weight a register gives itself, x n (1.0: uniform; n:
  each keeps its own vector);
- ``broadcast_entropy``: mean entropy of a patch's weights over a head's registers, / ln n.

Registers can only specialise once compress reads distinct places and communicate stops
averaging them. docs/parts.md ("Reading the register diagnostics") says how to read them;
docs/findings.md gives the measured figures.
"""
import math

import torch
import torch.nn.functional as F

__all__ = ['STEP_STATISTICS', 'AttentionProfile', 'step_statistics',
           'register_attention_profile']

STEP_STATISTICS = ('compress_entropy', 'compress_peak', 'compress_map_similarity',
                   'communicate_entropy', 'communicate_self_weight', 'broadcast_entropy')


def _entropy_ratio(weights):
    """Mean entropy of the rows of ``weights`` (..., K) over ln K; None when K == 1."""
    k = weights.shape[-1]
    if k == 1:
        return None
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(dim=-1)
    return entropy.mean().item() / math.log(k)


def _map_similarity(compress):
    """Mean cosine between the centred compress maps of two registers of one head.

    Args:
        compress (Tensor): (B, H, n, L) weights.

    Returns:
        float | None: None when n == 1.
    """
    n, L = compress.shape[-2:]
    if n == 1:
        return None
    maps = F.normalize(compress - 1.0 / L, dim=-1)                  # (B, H, n, L)
    cos = maps @ maps.transpose(-2, -1)                              # (B, H, n, n)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=cos.device)
    return cos[..., off_diagonal].mean().item()


def step_statistics(weights):
    """The figures of the module docstring for one block's weights.

    Args:
        weights (dict): ``compress`` (B, H, n, L), ``communicate`` (B, H, n, n) and
            ``broadcast`` (B, H, L, n), as :meth:`RegisterAttention.step_weights` returns.

    Returns:
        dict: one float (or None) per name in ``STEP_STATISTICS``.
    """
    compress, communicate = weights['compress'], weights['communicate']
    n, L = compress.shape[-2:]
    self_weight = communicate.diagonal(dim1=-2, dim2=-1)            # (B, H, n)
    return {
        'compress_entropy': _entropy_ratio(compress),
        'compress_peak': (compress.amax(dim=-1) * L).mean().item(),
        'compress_map_similarity': _map_similarity(compress),
        'communicate_entropy': _entropy_ratio(communicate),
        'communicate_self_weight': (self_weight * n).mean().item(),
        'broadcast_entropy': _entropy_ratio(weights['broadcast']),
    }


class AttentionProfile:
    """Running per-block means of :func:`step_statistics`, fed one batch at a time (so a
    dataset never has to be held in memory)."""

    def __init__(self):
        self.sums, self.count = None, 0

    def add(self, model, images):
        """Accumulate the figures of one (B, 3, H, W) normalised batch of a RATS ``model``."""
        stats = [step_statistics(w) for w in model.register_step_weights(images)]
        if self.sums is None:
            self.sums = [dict.fromkeys(STEP_STATISTICS, 0.0) for _ in stats]
        for total, block in zip(self.sums, stats):
            for key, value in block.items():
                total[key] = None if value is None else total[key] + value * images.shape[0]
        self.count += images.shape[0]

    def result(self):
        """list[dict]: per block, each statistic's mean over the images added (None where it
        is undefined, n = 1)."""
        if not self.count:
            raise ValueError('register_attention_profile needs at least one image')
        return [{k: None if v is None else v / self.count for k, v in block.items()}
                for block in self.sums]


def register_attention_profile(model, images):
    """``step_statistics`` of every block, averaged over images.

    Args:
        model (RatsViT): A RATS backbone (``attn_mode='rats'``), eval mode.
        images (Iterable[Tensor]): (B, 3, H, W) normalised batches (any sizes that are
            multiples of the patch size).

    Returns:
        list[dict]: per block, each statistic's mean over the batches weighted by their size
        (None where it is undefined, n = 1).
    """
    profile = AttentionProfile()
    for batch in images:
        profile.add(model, batch)
    return profile.result()
