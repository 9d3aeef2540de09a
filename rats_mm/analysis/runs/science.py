"""Tables of ``tools/science.py`` runs: one row per trained model of each run folder, and
the same grouped over seeds (mean ± sample std), read from the runs' ``summary.json``.

Pure Python (no torch): what ``tools/analysis/compare_runs.py`` writes into a results
folder's README.
"""
import json
import os
import runpy

from . import format_stat, grouped_stats

__all__ = ['RUN_COLUMNS', 'read_science_runs', 'science_tables']

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
# (record key, column title, digits) of the tables, in order.
RUN_COLUMNS = (
    ('width', 'width', 0), ('knn_init', 'k-NN init', 3), ('knn_end', 'k-NN end', 3),
    ('knn_gain', 'gain', 3), ('knn_student', 'student', 3), ('linear_init', 'linear init', 3),
    ('linear_end', 'linear end', 3), ('knn_register_mean', 'k-NN reg. mean', 3),
    ('knn_registers', 'k-NN registers', 3), ('knn_patches', 'k-NN patches', 3),
    ('loss', 'loss', 2), ('teacher_entropy', 'target entropy', 2),
    ('within_head', 'within-head sim.', 2), ('compress', 'compress H', 2),
    ('communicate', 'communicate H', 2), ('broadcast', 'broadcast H', 2),
    ('miou_registers', 'mIoU regs %', 2), ('miou_broadcast', 'mIoU bcast %', 2),
    ('miou_vit_kmeans', 'mIoU ViT k-means %', 2), ('miou_floor', 'mIoU 1 segment %', 2),
    ('miou_registers_scenes', 'scenes regs %', 2), ('miou_vit_kmeans_scenes',
                                                    'scenes ViT k-means %', 2),
    ('miou_floor_scenes', 'scenes 1 segment %', 2))
# what, besides the model and the seed, makes two runs the same arm
ARM_SETTINGS = ('config', 'recipe', 'local_crops', 'overrides')


def _recipe_text(recipe):
    """The recipe fields a testbed study varies, compactly (the whole recipe is in the
    run's summary.json)."""
    momentum = recipe.get('momentum') or (None, None)
    head = recipe.get('head') or {}
    return (f"b{recipe.get('batch_size')} lr{recipe.get('base_lr')} "
            f"T{recipe.get('teacher_temp')} wu{recipe.get('warmup_fraction')} "
            f"m{momentum[0]}-{momentum[1]} K{head.get('out_dim')}"
            + ('' if recipe.get('centering', 'centering') == 'centering' else ' SK'))


def _width(summary, name, embedding):
    """The embedding's width: recorded by the run, else from the science config it names
    (``configs/science/<file>``: D, or N * D for every register)."""
    if summary.get(f'embedding_width_{name}') is not None:
        return summary[f'embedding_width_{name}']
    path = (summary.get('configs') or {}).get(name, '').split(' with ')[0]
    local = os.path.join(ROOT, 'configs', 'science', os.path.basename(path))
    if not path or not os.path.isfile(local):
        return None
    backbone = runpy.run_path(local)['model']['backbone']
    factor = {'registers': backbone['num_registers'],
              'registers_avg': backbone['num_registers'] + 1}.get(embedding.split()[0], 1)
    return factor * backbone['embed_dim']


def _percent(value):
    return None if value is None else 100.0 * value


def _model_record(folder, summary, name):
    """One trained model of a run folder as a flat record."""
    history = summary['history'][name]
    first, last = history[0], history[-1]
    is_rats = name != 'vit'
    embedding = summary.get(f'embedding_{name}')
    head = summary.get('recipe', {}).get('embedding', 'pooled') if is_rats else 'pooled'
    if embedding is None:  # a run that recorded none: model(x) was the pooled embedding
        embedding = 'pooled' if head == 'pooled' else f'pooled (head: {head})'
    probe = summary.get(f'probe_{name}') or {}
    probe_init = summary.get(f'probe_random_init_{name}') or {}
    knn_probe = probe.get('knn_top1', {})
    train = summary.get(f'train_{name}') or {}
    recipe = summary.get('recipe', {})
    overrides = {**summary.get('backbone_overrides', {}),
                 **(summary.get('rats_overrides', {}) if is_rats else {})}
    config = os.path.basename((summary.get('configs') or {}).get(name, '').split(' with ')[0])
    record = dict(
        run=os.path.basename(os.path.normpath(folder)), model=name, embedding=embedding,
        seed=summary.get('seed'), local_crops=recipe.get('local_crops_number'),
        overrides=', '.join(f'{k}={v}' for k, v in sorted(overrides.items())) or '-',
        config=config or '-', recipe=_recipe_text(recipe),
        steps=f"{train.get('steps')}/{train.get('steps_planned')}",
        full=bool(train) and not train.get('stopped_early')
        and train.get('steps') == train.get('steps_planned')
        and train.get('steps_planned') >= (train.get('steps_asked') or 0),
        width=_width(summary, name, embedding),
        knn_init=first.get('knn_top1'), knn_end=last.get('knn_top1'),
        knn_student=last.get('knn_top1_student'),
        linear_init=probe_init.get('linear_top1', {}).get('embedding'),
        linear_end=probe.get('linear_top1', {}).get('embedding'),
        knn_register_mean=knn_probe.get('register_mean', knn_probe.get('embedding')
                                        if is_rats and embedding == 'pooled' else None),
        knn_registers=knn_probe.get('registers', knn_probe.get('embedding')
                                    if embedding == 'registers' else None),
        knn_patches=knn_probe.get('patches'),
        loss=last.get('loss'), teacher_entropy=last.get('teacher_entropy_ratio'),
        within_head=last.get('register_within_head_similarity'),
        compress=last.get('register_last_block_compress_entropy'),
        communicate=last.get('register_last_block_communicate_entropy'),
        broadcast=last.get('register_last_block_broadcast_entropy'),
        miou_registers=_percent(summary.get(f'part_miou_{name}') if is_rats else None),
        miou_broadcast=_percent(summary.get(f'part_miou_{name}_broadcast')
                                if is_rats else None),
        miou_vit_kmeans=_percent(summary.get('part_miou_vit_kmeans') if not is_rats else None),
        miou_floor=_percent(summary.get('part_miou_single_segment')),
        miou_registers_scenes=_percent(summary.get(f'part_miou_{name}_scenes')
                                       if is_rats else None),
        miou_vit_kmeans_scenes=_percent(summary.get('part_miou_vit_kmeans_scenes')
                                        if not is_rats else None),
        miou_floor_scenes=_percent(summary.get('part_miou_single_segment_scenes')))
    if record['knn_init'] is not None and record['knn_end'] is not None:
        record['knn_gain'] = record['knn_end'] - record['knn_init']
    return record


def read_science_runs(folders):
    """Records of every trained model of every run folder.

    Args:
        folders (Sequence[str]): ``tools/science.py`` output folders (``summary.json``).

    Returns:
        list[dict]: One record per (folder, model with a history), in the order given.
    """
    records = []
    for folder in folders:
        path = os.path.join(folder, 'summary.json')
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{folder}: no summary.json (not a tools/science.py run)')
        with open(path) as f:
            summary = json.load(f)
        for name in (summary.get('history') or {}):
            if summary.get(f'train_{name}') is not None:  # trained to the end
                records.append(_model_record(folder, summary, name))
    return records


def _cell(value, digits):
    if value is None:
        return '-'
    return f'{value:.{digits}f}' if isinstance(value, float) else str(value)


def science_tables(records):
    """Markdown: every run's row, then each arm (model, embedding and settings) over seeds.

    Args:
        records (Sequence[dict]): :func:`read_science_runs`'s records.

    Returns:
        str: Two tables; a row whose time budget cut its steps is marked and left out of
        the grouped table.
    """
    titles = [title for _, title, _ in RUN_COLUMNS]
    lines = ['| run | model | embedding | seed | crops | recipe | settings | steps | '
             + ' | '.join(titles) + ' |', '| --- ' * (len(titles) + 8) + '|']
    for r in records:
        steps = r['steps'] + ('' if r['full'] else ' (cut)')
        lines.append(f"| {r['run']} | {r['model']} | {r['embedding']} | {r['seed']} | "
                     f"{r['local_crops']} | {r['recipe']} | {r['overrides']} | {steps} | "
                     + ' | '.join(
                         _cell(r.get(k), d) for k, _, d in RUN_COLUMNS) + ' |')
    keys = ('model', 'embedding', *ARM_SETTINGS)
    metrics = [k for k, _, _ in RUN_COLUMNS]
    digits = {k: d for k, _, d in RUN_COLUMNS}
    lines += ['', '| model | embedding | crops | recipe | settings | runs | '
              + ' | '.join(titles) + ' |', '| --- ' * (len(titles) + 6) + '|']
    for group, count, stats in grouped_stats([r for r in records if r['full']], keys,
                                             metrics):
        arm = dict(zip(keys, group))
        lines.append(f"| {arm['model']} | {arm['embedding']} | {arm['local_crops']} | "
                     f"{arm['recipe']} | {arm['overrides']} | {count} | " + ' | '.join(
                         format_stat(stats.get(m), max(digits[m], 1)).replace(' (n=', ' (')
                         if stats.get(m) else '-' for m in metrics) + ' |')
    return '\n'.join(lines) + '\n'
