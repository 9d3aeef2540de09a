"""Patch grids to pixels: the one rule every part map uses to leave the patch grid (a module
of its own, so segmentation and similarity pictures both use it without importing each
other)."""
import torch

__all__ = ['upsample_labels']


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
