"""Pictures of the emergence run: training curves, sample views and part maps (matplotlib
Agg, one PNG each, so a run on a remote machine returns few files)."""
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..data.images import IMAGENET_MEAN, IMAGENET_STD
from ..analysis.training_curves import finish_panel
from ..data.palette import register_palette

__all__ = ['CURVE_PANELS', 'render_curves', 'render_part_maps', 'render_views']

# (title, keys, y label): one panel per row of the history
CURVE_PANELS = (
    ('DINO loss', ('loss',), 'loss'),
    ('teacher targets', ('teacher_entropy_ratio', 'teacher_batch_entropy_ratio'),
     'entropy / ln K'),
    ('k-NN top-1 (objects)', ('knn_top1', 'knn_top1_student'), 'top-1'),
    ('last block, register attention', ('register_last_block_communicate_entropy',
                                        'register_last_block_compress_entropy',
                                        'register_last_block_broadcast_entropy'),
     'entropy / ln(size)'),
    ('registers of one head', ('register_last_block_compress_map_similarity',
                               'register_within_head_similarity'), 'cosine'),
    ('teacher embeddings of different images', ('embedding_cosine',), 'mean cosine'),
    ('last block: registers / [CLS] stream, values', ('stream_norm_last_block',
                                                      'value_norm_last_block'), 'norm'),
    ('last block: largest attention logit', ('max_logit_last_block',), 'logit'),
)


def _figure(width, height):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def render_curves(histories, path):
    """Curves of every measured figure against the images seen, one colour per model.

    Args:
        histories (dict[str, list[dict]]): Model name -> measurement points, each with
            ``images_seen`` and any of the keys in ``CURVE_PANELS``.
        path (str): PNG to write.

    Returns:
        str: ``path``.
    """
    cols = 4
    rows = -(-len(CURVE_PANELS) // cols)
    fig = _figure(4.2 * cols, 3.4 * rows)
    styles = ('-', '--', ':')
    for col, (title, keys, ylabel) in enumerate(CURVE_PANELS):
        ax = fig.add_subplot(rows, cols, col + 1)
        for i, (name, points) in enumerate(histories.items()):
            colour = f'C{i}'
            for style, key in zip(styles, keys):
                xy = [(p['images_seen'], p[key]) for p in points
                      if p.get(key) is not None]
                if xy:
                    xs, ys = zip(*xy)
                    ax.plot(xs, ys, style, color=colour, marker='o', ms=3,
                            label=f'{name}: {key.replace("register_last_block_", "")}')
        finish_panel(ax, title, 'images seen', ylabel, legend_size=5, title_size=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _to_rgb(view):
    """(3, H, W) normalised tensor -> (H, W, 3) float array in [0, 1]."""
    mean = view.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = view.new_tensor(IMAGENET_STD).view(3, 1, 1)
    return (view.float() * std + mean).clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def render_views(views, path, num_images=4):
    """The multi-crop views of the first images of a batch, one row per image.

    Args:
        views (list[Tensor]): Crop-major (B, 3, s, s) normalised views.
        path (str): PNG to write.
        num_images (int): Rows.

    Returns:
        str: ``path``.
    """
    rows = min(num_images, views[0].shape[0])
    fig = _figure(1.3 * len(views), 1.3 * rows)
    for r in range(rows):
        for c, view in enumerate(views):
            ax = fig.add_subplot(rows, len(views), r * len(views) + c + 1)
            ax.imshow(_to_rgb(view[r]))
            ax.set_axis_off()
            if r == 0:
                ax.set_title('global' if c < 2 else 'local', fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def render_part_maps(images, maps, path, num_segments):
    """Images and their patch labellings side by side, one row per image.

    Args:
        images (list[np.ndarray]): (H, W, 3) uint8 images.
        maps (dict[str, list[Tensor]]): Column title -> per image (h, w) int labels.
        path (str): PNG to write.
        num_segments (int): Colours needed.

    Returns:
        str: ``path``.
    """
    palette = register_palette(num_segments)
    cols = 1 + len(maps)
    fig = _figure(1.6 * cols, 1.6 * len(images))
    for r, image in enumerate(images):
        panels = [('image', image)]
        for title, labels in maps.items():
            lab = torch.as_tensor(labels[r]).long().clamp(0, num_segments - 1).numpy()
            colour = palette[lab].astype(np.float32)                       # (h, w, 3)
            panels.append((title, colour.astype(np.uint8)))
        for c, (title, picture) in enumerate(panels):
            ax = fig.add_subplot(len(images), cols, r * cols + c + 1)
            ax.imshow(picture, interpolation='nearest')
            ax.set_axis_off()
            if r == 0:
                ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
