"""Training curves of pretraining runs: read the logged scalars, draw loss, entropies, k-NN.

The scalars are the JSON lines mmengine's ``LocalVisBackend`` writes
(``WORK_DIR/<timestamp>/vis_data/scalars.json``); a resumed run adds a timestamped folder, and
all of them are read in order. Only the file format is used: nothing here imports mmengine.
"""
import glob
import json
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ['finish_panel', 'read_scalars', 'render_training_curves']

# (panel title, keys drawn in it, y label); the entropies are fractions of ln K
_PANELS = (
    ('DINO loss', ('loss',), 'nats'),
    ('teacher target entropy / ln K', ('teacher_entropy_ratio', 'teacher_batch_entropy_ratio'),
     'fraction of ln K'),
    ('k-NN top-1 (object category)', ('knn_top1', 'knn_top1_student'), 'accuracy'),
)


def read_scalars(work_dir):
    """All logged scalar records of a run, by iteration.

    The k-NN accuracies are taken from ``WORK_DIR/knn.json`` when it exists (it holds every
    evaluation, the one after the last iteration included; the scalars repeat the latest
    value at each logging step).

    Args:
        work_dir (str): The run's work dir.

    Returns:
        dict[str, list[tuple[int, float]]]: For each key, (iteration, value) pairs sorted by
        iteration (a resumed iteration keeps its latest value).
    """
    files = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir!r}')
    series = {}
    for path in files:
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f'{path}:{lineno}: not a JSON record ({err})') from None
                step = int(record.get('iter', record.get('step', 0)))
                for key, value in record.items():
                    if isinstance(value, (int, float)) and key not in ('iter', 'step'):
                        series.setdefault(key, {})[step] = float(value)
    knn_path = os.path.join(work_dir, 'knn.json')
    if os.path.isfile(knn_path):
        with open(knn_path) as f:
            records = json.load(f)
        for key in {k for r in records for k in r if k.startswith('knn_top1')}:
            series[key] = {int(r['iter']): float(r[key]) for r in records if key in r}
    return {k: sorted(v.items()) for k, v in series.items()}


def render_training_curves(runs, path):
    """Draw loss, teacher entropies and k-NN accuracy of several runs side by side.

    Args:
        runs (dict[str, dict]): Run name -> :func:`read_scalars` output.
        path (str): PNG file to write.

    Returns:
        str: ``path``.
    """
    fig = Figure(figsize=(5 * len(_PANELS), 3.6))
    FigureCanvasAgg(fig)
    styles = ('-', '--')
    for col, (title, keys, ylabel) in enumerate(_PANELS):
        ax = fig.add_subplot(1, len(_PANELS), col + 1)
        for colour, (name, series) in zip(('C0', 'C1', 'C2', 'C3'), runs.items()):
            for style, key in zip(styles, keys):
                points = series.get(key) or []
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, style, color=colour, marker='o' if len(xs) < 10 else None,
                            label=f'{name}: {key}')
        if col == 0:
            k = next((s for s in runs.values() if s.get('teacher_entropy')), None)
            if k:  # ln K = entropy / ratio at any logged step
                (_, ent), (_, ratio) = k['teacher_entropy'][-1], k['teacher_entropy_ratio'][-1]
                if ratio > 0:
                    ax.axhline(ent / ratio, color='grey', lw=0.8, ls=':', label='ln K')
        finish_panel(ax, title, 'iteration', ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def finish_panel(ax, title, xlabel, ylabel, legend_size=6, title_size=None):
    """Title, axis labels, legend and a light grid of one curve panel."""
    ax.set_title(title, fontsize=title_size)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=legend_size)
    ax.grid(alpha=0.3)
