"""Register-patch similarity maps and their pictures.

A register's similarity map is the cosine similarity between that register's final (normed)
embedding and every patch embedding of the same image, laid out on the patch grid; in a
trained RATS each map lights up one part (the "Register similarity maps" of the teaser
figure). Pictures are drawn with matplotlib's object API on an Agg canvas (no pyplot state),
so they work headless and from several threads.
"""
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ...data.palette import register_palette
from .grid import upsample_labels

__all__ = ['register_patch_similarity', 'similarity_maps', 'render_similarity_grid',
           'render_part_overlay', 'register_palette']


def register_patch_similarity(patch_tokens, register_tokens):
    """Cosine similarity of every register with every patch of the same image.

    Args:
        patch_tokens (Tensor): (B, L, D) patch embeddings.
        register_tokens (Tensor): (B, N, D) register embeddings.

    Returns:
        Tensor: (B, N, L) float32 similarities in [-1, 1].
    """
    patches, registers = torch.as_tensor(patch_tokens), torch.as_tensor(register_tokens)
    if patches.dim() != 3 or registers.dim() != 3:
        raise ValueError(f'expected (B, L, D) patches and (B, N, D) registers, got '
                         f'{tuple(patches.shape)} and {tuple(registers.shape)}')
    if patches.shape[0] != registers.shape[0] or patches.shape[2] != registers.shape[2]:
        raise ValueError(f'batch or width mismatch: patches {tuple(patches.shape)}, '
                         f'registers {tuple(registers.shape)}')
    patches = F.normalize(patches.float(), dim=-1)
    registers = F.normalize(registers.float(), dim=-1)
    sim = torch.einsum('bnd,bld->bnl', registers, patches)                  # (B, N, L)
    return sim.clamp_(-1.0, 1.0)


def similarity_maps(sim, grid_size, out_size):
    """Lay similarities out on the patch grid and resize them bilinearly.

    Args:
        sim (Tensor): (B, N, L) similarities, L = h * w in row-major patch order.
        grid_size (tuple[int, int]): Patch grid (h, w).
        out_size (tuple[int, int]): Output (H, W), usually the image size.

    Returns:
        Tensor: (B, N, H, W) maps; values stay within the input range (bilinear weights are
        convex).
    """
    sim = torch.as_tensor(sim).float()
    h, w = grid_size
    B, N, L = sim.shape
    if L != h * w:
        raise ValueError(f'{L} patches do not fill a {h}x{w} grid')
    maps = sim.reshape(B, N, h, w)                                          # (B, N, h, w)
    return F.interpolate(maps, size=tuple(out_size), mode='bilinear', align_corners=False)


def _image_array(image):
    """(H, W, 3) uint8 array from an ndarray / PIL image / (3, H, W) or (H, W, 3) tensor."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dim() == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
            image = image.permute(1, 2, 0)                                  # (H, W, C)
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)                     # (H, W, 3)
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f'expected an (H, W, 3) image, got shape {image.shape}')
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.dtype != np.uint8:
        scale = 255.0 if image.max() <= 1.0 else 1.0
        image = np.clip(image.astype(np.float64) * scale, 0, 255).astype(np.uint8)
    return image


def _save(fig, path):
    FigureCanvasAgg(fig)
    fig.savefig(str(path), dpi=fig.dpi)


def render_similarity_grid(image, maps, path, ncols=8):
    """Save a PNG: the image, then one heat map per register over the darkened image.

    Each map is min-max scaled on its own so its strongest region stands out.

    Args:
        image (array | Tensor | PIL.Image): One image, (H, W, 3) uint8 (or floats in [0, 1],
            or a (3, H, W) tensor).
        maps (array | Tensor): (N, h, w) similarity maps of that image (any size: each is
            stretched over the image).
        path (str | Path): Output PNG file.
        ncols (int): Panels per row.

    Returns:
        str: ``path``.
    """
    image = _image_array(image)
    maps = torch.as_tensor(maps).detach().cpu().float().numpy()
    if maps.ndim != 3:
        raise ValueError(f'expected (N, h, w) maps, got shape {maps.shape}')
    H, W = image.shape[:2]
    panels = maps.shape[0] + 1
    ncols = max(1, min(ncols, panels))
    nrows = -(-panels // ncols)
    fig = Figure(figsize=(2.0 * ncols, 2.0 * nrows * H / W + 0.3 * nrows), dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax in axes:
        ax.set_axis_off()
    axes[0].imshow(image)
    axes[0].set_title('image', fontsize=8)
    extent = (-0.5, W - 0.5, H - 0.5, -0.5)
    for r, m in enumerate(maps):
        lo, hi = float(m.min()), float(m.max())
        axes[r + 1].imshow((image * 0.35).astype(np.uint8))
        axes[r + 1].imshow((m - lo) / max(hi - lo, 1e-8), cmap='inferno', alpha=0.65,
                           vmin=0.0, vmax=1.0, extent=extent, interpolation='bilinear')
        axes[r + 1].set_title(f'register {r} ({lo:.2f}..{hi:.2f})', fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return str(path)


def _resize_nearest(labels, size):
    """(h, w) integer labels -> (H, W) by nearest neighbour (``upsample_labels``' rule)."""
    flat = torch.from_numpy(labels).reshape(1, -1)                          # (1, h*w)
    return upsample_labels(flat, labels.shape, size)[0].numpy()             # (H, W)


def render_part_overlay(image, labels_hw, path, num_registers, alpha=0.5):
    """Save a PNG of the image with each pixel tinted by its register's colour.

    Args:
        image (array | Tensor | PIL.Image): One (H, W, 3) image (see ``render_similarity_grid``).
        labels_hw (array | Tensor): (H, W) register labels in [0, num_registers]; the value
            ``num_registers`` is background (left untinted). A label grid of another size
            (e.g. the patch grid) is resized by nearest neighbour.
        path (str | Path): Output PNG file.
        num_registers (int): Number of registers N (the legend's colours are fixed by it).
        alpha (float): Tint strength in [0, 1].

    Returns:
        str: ``path``.
    """
    image = _image_array(image)
    labels = torch.as_tensor(labels_hw).detach().cpu().numpy().astype(np.int64)
    if labels.ndim != 2:
        raise ValueError(f'expected (H, W) labels, got shape {labels.shape}')
    if labels.min() < 0 or labels.max() > num_registers:
        raise ValueError(f'labels must lie in [0, {num_registers}], got '
                         f'{labels.min()}..{labels.max()}')
    if labels.shape != image.shape[:2]:
        labels = _resize_nearest(labels, image.shape[:2])
    palette = register_palette(num_registers).astype(np.float64)
    out = image.astype(np.float64)
    fg = labels < num_registers
    out[fg] = (1 - alpha) * out[fg] + alpha * palette[labels[fg]]
    H, W = image.shape[:2]
    fig = Figure(figsize=(4.0 + 1.4, 4.0 * H / W), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 4.0 / 5.4, 1.0))
    ax.imshow(out.astype(np.uint8))
    ax.set_axis_off()
    shown = np.unique(labels[fg])
    handles = [Patch(color=palette[r] / 255.0, label=f'register {r}') for r in shown]
    if (~fg).any():
        handles.append(Patch(facecolor='white', edgecolor='black', label='background'))
    fig.legend(handles=handles, loc='center right', fontsize=7, frameon=False)
    _save(fig, path)
    return str(path)
