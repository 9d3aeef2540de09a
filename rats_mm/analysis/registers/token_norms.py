"""High-norm patch tokens per layer (the artifacts of Darcet et al., "ViTs need registers").

Darcet et al. call a token an outlier when its norm exceeds 150 in DINOv2 ViT-g, the valley
of a bimodal norm histogram; that number belongs to one model's scale. Here the rule is
relative: a token of layer l is an outlier when its norm exceeds ``outlier_factor`` times
the median token norm of layer l (default 2.0; an absolute ``threshold`` can be given
instead). A median is not moved by a few percent of outliers, the ratio does not depend on
the model's width or depth, and, unlike median + k * MAD, a very tight norm distribution
(LayerNorm-ed tokens of a model without artifacts) does not turn small deviations into
"outliers". In Darcet et al.'s plots normal tokens sit well under half the outlier norm, so
2x separates the two modes.
"""
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from tqdm import tqdm

from ..io import prepare_image

__all__ = ['dataset_token_norms', 'patch_token_norms', 'render_norm_histograms',
           'render_outlier_fractions', 'token_norm_stats']


@torch.no_grad()
def patch_token_norms(model, images, layers=None, norm=False):
    """L2 norms of the patch tokens after each chosen block of a ``RatsViT``-like model.

    Args:
        model (nn.Module): A model with timm's ``forward_intermediates(x, indices, norm=...,
            output_fmt=..., intermediates_only=...)`` and ``blocks``.
        images (Tensor): (B, 3, H, W) batch.
        layers (Sequence[int] | None): Block indices; None takes every block.
        norm (bool): Take norms after the final LayerNorm (False: the raw residual stream,
            where Darcet et al.'s artifacts show).

    Returns:
        list[Tensor]: One (B, L) float tensor per chosen block, in block order.
    """
    indices = list(range(len(model.blocks))) if layers is None else list(layers)
    outs = model.forward_intermediates(images, indices=indices, norm=norm, output_fmt='NLC',
                                       intermediates_only=True)            # [(B, L, D)]
    return [o.float().norm(dim=-1) for o in outs]


def _flat(norms, layer):
    """Norms of one layer (any shape, tensor or array) -> 1-D float64 array."""
    if isinstance(norms, torch.Tensor):
        norms = norms.detach().cpu().numpy()
    flat = np.asarray(norms, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        raise ValueError(f'layer {layer}: no norms')
    if not np.isfinite(flat).all() or flat.min() < 0:
        raise ValueError(f'layer {layer}: norms must be finite and non-negative')
    return flat


def token_norm_stats(norms_per_layer, outlier_factor=2.0, threshold=None, bins=50):
    """Per-layer norm statistics and outlier fractions.

    Args:
        norms_per_layer (Sequence[Tensor | np.ndarray]): Per layer, (B, L) patch-token norms.
        outlier_factor (float): A token is an outlier when its norm > outlier_factor x the
            median norm of its layer (see the module docstring).
        threshold (float | None): An absolute norm threshold for every layer instead (e.g.
            150 to reproduce Darcet et al. on DINOv2 ViT-g).
        bins (int): Histogram bins, shared edges from 0 to the largest norm of all layers.

    Returns:
        dict: ``layers``: list of per-layer dicts ``layer``, ``mean``, ``std``, ``median``,
        ``max``, ``threshold``, ``outlier_fraction``, ``num_outliers``, ``num_tokens``,
        ``hist`` ((bins,) int64 counts); ``bin_edges`` ((bins + 1,) float64); ``rule`` (str).
    """
    if outlier_factor <= 0:
        raise ValueError(f'outlier_factor={outlier_factor} must be positive')
    flats = [_flat(n, i) for i, n in enumerate(norms_per_layer)]
    if not flats:
        raise ValueError('no layers given')
    top = max(f.max() for f in flats)
    edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)
    layers = []
    for i, f in enumerate(flats):
        median = float(np.median(f))
        thr = float(threshold) if threshold is not None else outlier_factor * median
        outliers = int((f > thr).sum())
        layers.append({
            'layer': i, 'mean': float(f.mean()), 'std': float(f.std()), 'median': median,
            'max': float(f.max()), 'threshold': thr, 'num_outliers': outliers,
            'num_tokens': int(f.size), 'outlier_fraction': outliers / f.size,
            'hist': np.histogram(f, bins=edges)[0].astype(np.int64),
        })
    rule = (f'norm > {threshold}' if threshold is not None
            else f'norm > {outlier_factor} x layer median')
    return {'layers': layers, 'bin_edges': edges, 'rule': rule}


def render_norm_histograms(stats, path, ncols=4):
    """Save a PNG of one norm histogram per layer (log counts, outlier threshold in red).

    Args:
        stats (dict): Output of ``token_norm_stats``.
        path (str | Path): Output PNG file.
        ncols (int): Panels per row.

    Returns:
        str: ``path``.
    """
    layers, edges = stats['layers'], stats['bin_edges']
    ncols = max(1, min(ncols, len(layers)))
    nrows = -(-len(layers) // ncols)
    fig = Figure(figsize=(3.0 * ncols, 2.2 * nrows), dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax in axes[len(layers):]:
        ax.set_axis_off()
    for ax, s in zip(axes, layers):
        ax.hist(edges[:-1], bins=edges, weights=s['hist'], log=True, color='#1f77b4')
        ax.axvline(s['threshold'], color='#d62728', lw=1)
        ax.set_title(f"layer {s['layer']}: {100 * s['outlier_fraction']:.2f}% outliers",
                     fontsize=8)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(which='both', labelsize=6)
    fig.suptitle(f"patch-token norms ({stats['rule']})", fontsize=9)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(str(path), dpi=fig.dpi)
    return str(path)


@torch.no_grad()
def dataset_token_norms(model, files, size=None, device='cpu'):
    """Per block, the patch-token norms of all images (images may differ in size).

    Args:
        model (RatsViT): The backbone (eval mode).
        files (Sequence[str]): Image files.
        size (int | None): Resize the short side to this before cropping to the patch grid.
        device (str | torch.device): Where the model runs.

    Returns:
        list[Tensor]: One 1-D tensor per block: the norms of every patch of every image.
    """
    per_layer = [[] for _ in model.blocks]
    for path in tqdm(files, desc='token norms', unit='image', leave=False, disable=None):
        norms = patch_token_norms(model, prepare_image(path, model.patch_size, size).to(device))
        for acc, n in zip(per_layer, norms):
            acc.append(n.reshape(-1).cpu())
    return [torch.cat(acc) for acc in per_layer]


def render_outlier_fractions(results, path):
    """Save a PNG: outlier fraction per layer, one line per model.

    Args:
        results (dict): Model label -> :func:`token_norm_stats` result.
        path (str): PNG file to write.
    """
    fig = Figure(figsize=(5.0, 3.2), dpi=100)
    ax = fig.subplots()
    for label, r in results.items():
        fr = [100 * s['outlier_fraction'] for s in r['layers']]
        ax.plot(range(len(fr)), fr, marker='o', label=label)
    ax.set(xlabel='block', ylabel='% high-norm patch tokens')
    ax.legend(fontsize=7)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=fig.dpi)
