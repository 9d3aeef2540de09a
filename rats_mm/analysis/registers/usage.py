"""How a RATS uses its registers over a dataset: the measurement the choice of N needs.

Every patch goes to the register most similar to it (cosine, as the part segmentation).
Per register and per head: the fraction of all patches it wins; per image: the entropy of
the share of patches each register wins and its exponential, the effective number of
registers (N when all win equally, 1 when one wins all); per object (from part masks): how
many registers win its foreground patches; registers that never win (dead); similarity
between registers of one head and of different heads; for a RATS, what its compress,
communicate and broadcast steps do in every block (``registers.attention``).
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from ..io import features, part_items, prepare_image, prepare_labels
from .attention import AttentionProfile
from .stats import register_similarity, registers_in_use
from ..parts.segment import register_assignment

__all__ = ['assignment_statistics', 'register_usage', 'render_register_usage']


def assignment_statistics(labels, num_registers, num_heads, min_fraction=0.05):
    """Usage figures of a set of patch assignments.

    Args:
        labels (Tensor): (B, L) register index of each patch of B images.
        num_registers (int): N.
        num_heads (int): H (register r belongs to head r // (N / H)).
        min_fraction (float): Share of an image's patches a register must win to count as
            used in ``registers_used_per_image``.

    Returns:
        dict: ``win_fraction`` (N,), ``head_win_fraction`` (H,), ``entropy_per_image`` and
        ``effective_registers_per_image`` (means over images), ``dataset_entropy``,
        ``effective_registers_dataset``, ``registers_used_per_image``, ``dead_registers``.
    """
    counts = F.one_hot(labels.long(), num_registers).sum(dim=1).float()     # (B, N)
    share = counts / labels.shape[1]
    entropy = -(share * share.clamp_min(1e-12).log()).sum(dim=1)            # (B,)
    total = counts.sum(dim=0) / counts.sum()                                # (N,)
    dataset_entropy = float(-(total * total.clamp_min(1e-12).log()).sum())
    per_head = total.view(num_heads, num_registers // num_heads).sum(dim=1)  # (H,)
    return {'win_fraction': total.tolist(), 'head_win_fraction': per_head.tolist(),
            'entropy_per_image': entropy.mean().item(),
            'effective_registers_per_image': entropy.exp().mean().item(),
            'dataset_entropy': dataset_entropy,
            'effective_registers_dataset': math.exp(dataset_entropy),
            'registers_used_per_image': registers_in_use(labels, num_registers, min_fraction),
            'dead_registers': [int(r) for r in torch.nonzero(total == 0).flatten()]}


def _object_registers(labels, mask, grid, patch_size):
    """Distinct registers winning the foreground patches (any part id > 0, not 255) of one
    image, or None when it has no foreground patch."""
    h, w = grid
    fg = (mask > 0) & (mask != 255)                                         # (H, W)
    fg = fg[:h * patch_size, :w * patch_size].reshape(h, patch_size, w, patch_size)
    fg_patches = fg.mean(axis=(1, 3)).reshape(-1) >= 0.5                    # (L,)
    return len(np.unique(labels[fg_patches].numpy())) if fg_patches.any() else None


def register_usage(model, data_root, split=None, max_images=None, size=None):
    """Register usage of a model with registers over a dataset (see the module docstring).

    Args:
        model (RatsViT): The backbone (eval mode), ``num_registers`` > 0.
        data_root (str): Images under ``D/images/**``; part masks under ``D/parts/**`` are
            used for the per-object figure when present.
        split (str | None): Sub-folder of ``images``.
        max_images (int | None): Use the first ``max_images``.
        size (int | None): Resize the short side to this first.

    Returns:
        dict: ``assignment_statistics`` of all images plus ``num_images``,
        ``registers_per_object`` (mean, None without masks), ``within_head`` /
        ``across_heads`` register similarity, ``num_registers``, ``num_heads`` and, for a
        RATS, ``attention_by_block`` (:func:`~.attention.register_attention_profile`).
    """
    if not model.num_registers:
        raise ValueError('register usage needs a model with registers (num_registers=0)')
    items, count = part_items(data_root, split, max_images)
    if count == 0:
        raise FileNotFoundError(f'no images with part masks under {data_root} '
                                f'(split {split!r})')
    from tqdm import tqdm
    labels, registers, per_object = [], [], []
    profile = AttentionProfile() if model.attn_mode == 'rats' else None
    for item in tqdm(items, total=count, desc='register usage', leave=False, disable=None):
        image = prepare_image(item['image'], model.patch_size, size)
        out = features(model, image)
        if profile is not None:
            profile.add(model, image)
        lab = register_assignment(out['x_norm_patchtokens'], out['x_norm_regtokens'])[0]
        labels.append(lab)
        registers.append(out['x_norm_regtokens'])
        mask = prepare_labels(item['parts'], model.patch_size, size)
        per_object.append(_object_registers(lab, mask, out['grid_size'], model.patch_size))
    if len({lab.numel() for lab in labels}) > 1:
        raise ValueError('images of different sizes: pass --size to resize them alike')
    result = assignment_statistics(torch.stack(labels), model.num_registers, model.num_heads)
    result.update(register_similarity(torch.cat(registers), model.num_heads))
    if profile is not None:
        result['attention_by_block'] = profile.result()
    objects = [n for n in per_object if n is not None]
    result.update(num_images=count, num_registers=model.num_registers,
                  num_heads=model.num_heads,
                  registers_per_object=float(np.mean(objects)) if objects else None)
    return result


def render_register_usage(result, path):
    """PNG: the share of patches each register wins, coloured by head."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n, heads = result['num_registers'], result['num_heads']
    head = np.arange(n) // (n // heads)
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * n), 3))
    ax.bar(np.arange(n), result['win_fraction'], color=plt.cm.tab10(head % 10))
    ax.set_xlabel('register (colour: head)')
    ax.set_ylabel('share of patches won')
    ax.set_title(f"effective registers per image {result['effective_registers_per_image']:.2f}"
                 f" of {n}; dead: {len(result['dead_registers'])}")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
