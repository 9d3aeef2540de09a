"""Register attention's variants under the probe signal and under the demo's DINO recipe, over
seeds: the tables of docs/findings.md ("Registers that merge: the compress step", "Registers
that break their symmetry: cosine logits"), reproduced with the project's tools.

    python tools/analysis/compress_study.py --work-dir work_dirs/compress_study
        [--seeds 0 1 2] [--signals probe dino] [--compress attention competition]
        [--logits dot cosine] [--embedding pooled registers] [--probe-iters 800]
        [--max-images 200] [--no-vit]

Cells: every combination of the compress step (``attention``, the paper's; ``competition``),
the logits (``dot``, the paper's; ``cosine``) and the head input (``pooled``, the register
mean; ``registers``, every register), each a child of configs/demo/dino_rats_synthetic.py
written into WORK/configs/, plus the plain ViT (configs/demo/dino_vit_synthetic.py) under the
probe with k-means (K = the RATS's registers) as the part baseline. Per cell and seed:

- ``probe``: tools/analysis/attention_probe.py (cross-entropy on the categories of
  data/synthetic_objects, --probe-iters iterations; attention statistics at its end on the
  first 64 of its 128 held-out objects; ``val_acc`` its accuracy);
- ``dino``: the demo DINO pretraining (tools/pretrain.py, randomness.seed=SEED,
  model.embedding=...), exported with tools/export_backbone.py, attention statistics from
  tools/analysis/register_usage.py on 64 held-out objects; ``val_acc`` the teacher's k-NN.

Every backbone is measured with tools/analysis/register_usage.py (registers in use, within-head
similarity, on 64 held-out objects) and scored with tools/analysis/part_eval.py (part mIoU of
the registers, cosine and broadcast assignment, on the first --max-images held-out scenes
(data/synthetic) and objects at 64 px); ``floor_*`` is the one-segment floor (k-means with
K = 1) on the same images. Writes WORK/compress_study.json (every figure per run, each block's
attention) and WORK/compress_study.md (mean +- std over seeds, last block). Needs the demo data
(make demo, or tools/make_synthetic.py as the demo configs say). Runs already in
WORK/compress_study.json are not run again; runs recorded before the logits and the head
input were options count as ``dot`` and ``pooled``.
"""
import argparse
import itertools
import json
import os

from rats_mm.analysis.runs import format_stat, grouped_stats
from rats_mm.files import write_json
from rats_mm.runtime.steps import last_checkpoint, run_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RATS_CONFIG = os.path.join(ROOT, 'configs', 'demo', 'dino_rats_synthetic.py')
VIT_CONFIG = 'configs/demo/dino_vit_synthetic.py'
OBJECTS, SCENES = 'data/synthetic_objects', 'data/synthetic'
DEFAULTS = {'compress': 'attention', 'logits': 'dot', 'embedding': 'pooled'}
CELL_KEYS = ('signal', 'model', 'compress', 'logits', 'embedding')
COLUMNS = ('val_acc', 'compress_entropy', 'compress_peak', 'compress_map_similarity',
           'communicate_entropy', 'communicate_self_weight', 'broadcast_entropy',
           'registers_in_use', 'within_head_similarity', 'part_miou_scenes',
           'part_miou_scenes_broadcast', 'part_miou_objects', 'part_miou_objects_broadcast')
INIT = ('compress_entropy', 'compress_map_similarity', 'communicate_entropy',
        'broadcast_entropy')
COLUMNS += tuple(f'init_{k}' for k in INIT)  # step 0, before any training
PART_SETS = (('scenes', SCENES), ('objects', OBJECTS))


def tool(*args):
    """Run a project tool from the repository root (raises naming it when it fails)."""
    run_tool(ROOT, *args)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def cell_config(work_dir, compress, logits):
    """A child of the demo RATS config with this compress step and these logits."""
    folder = os.path.join(work_dir, 'configs')
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f'dino_rats_{compress}_{logits}_synthetic.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{RATS_CONFIG!r}]\n'
                f'model = dict(backbone=dict(compress={compress!r}, logits={logits!r}))\n')
    return path


def usage(config, backbone, work):
    """register_usage.py on 64 held-out objects: its figures and every block's attention."""
    usage_dir = os.path.join(work, 'usage')
    tool('tools/analysis/register_usage.py', config, backbone, '--data-root', OBJECTS,
         '--split', 'validation', '--max-images', '64', '--size', '64', '--out-dir', usage_dir)
    return read_json(os.path.join(usage_dir, 'register_usage.json'))


def part_mious(config, backbone, work, max_images, method='registers'):
    """Part mIoU on the first held-out scenes and objects (registers: cosine and broadcast
    assignment; kmeans: K = 12, the demo RATS's registers)."""
    figures = {}
    runs = ([('', ['--method', 'registers']),
             ('_broadcast', ['--method', 'registers', '--assignment', 'broadcast'])]
            if method == 'registers' else [('', ['--method', 'kmeans', '--num-clusters', '12'])])
    for (name, root), (tag, extra) in itertools.product(PART_SETS, runs):
        out = os.path.join(work, f'parts_{name}{tag}.json')
        tool('tools/analysis/part_eval.py', config, backbone, '--data-root', root,
             '--split', 'validation', '--size', '64', '--max-images', str(max_images),
             '--out', out, *extra)
        figures[f'part_miou_{name}{tag}'] = read_json(out)['miou']
    return figures


def at_init(block):
    """``init_<statistic>`` of the last block at step 0 ({} for a ViT)."""
    return {f'init_{k}': block[k] for k in INIT} if block else {}


def measured(config, backbone, work, max_images, attention=None):
    """Register usage and part figures of a trained RATS backbone; ``attention`` (per block)
    from the signal's own measurement, else from register_usage."""
    used = usage(config, backbone, work)
    blocks = attention or used['attention_by_block']
    return {'attention_by_block': blocks, **blocks[-1],
            'registers_in_use': used['registers_used_per_image'],
            'within_head_similarity': used.get('within_head'),
            **part_mious(config, backbone, work, max_images)}


def probe_run(config, embedding, seed, args, work, is_vit=False):
    """The probe signal: figures of one cell and seed."""
    out, backbone = os.path.join(work, 'probe.json'), os.path.join(work, 'probe.pth')
    tool('tools/analysis/attention_probe.py', config, '--data-root', OBJECTS,
         '--iters', str(args.probe_iters), '--seed', str(seed), '--embedding', embedding,
         '--out', out, '--save-backbone', backbone)
    result = read_json(out)
    figures = {'val_acc': result['final']['val_acc'],
               **at_init((result['history'][0].get('attention_by_block') or [None])[-1])}
    if is_vit:
        return {**figures, **part_mious(config, backbone, work, args.max_images, 'kmeans')}
    return {**figures, **measured(config, backbone, work, args.max_images,
                                  result['attention_by_block'])}


def dino_run(config, embedding, seed, args, work):
    """The demo DINO recipe: figures of one cell and seed (the teacher's k-NN as val_acc)."""
    run_dir = os.path.join(work, 'pretrain')
    tool('tools/pretrain.py', config, '--work-dir', run_dir, '--cfg-options',
         f'randomness.seed={seed}', f'model.embedding={embedding}')
    last = last_checkpoint(run_dir)
    backbone = os.path.join(work, 'backbone.pth')
    tool('tools/export_backbone.py', last, backbone)
    knn = os.path.join(run_dir, 'knn.json')
    val_acc = read_json(knn)[-1].get('knn_top1') if os.path.isfile(knn) else None
    attention = os.path.join(run_dir, 'register_attention.json')  # iteration 0 first
    init = read_json(attention)[0]['blocks'][-1] if os.path.isfile(attention) else None
    return {'val_acc': val_acc, **at_init(init),
            **measured(config, backbone, work, args.max_images)}


def floors(work_dir, max_images):
    """The one-segment floor of part mIoU on the scored images (k-means with K = 1 on a
    random ViT: every patch in one segment, whatever the features)."""
    out = os.path.join(work_dir, 'floor')
    os.makedirs(out, exist_ok=True)
    backbone = os.path.join(out, 'random_vit.pth')
    if not os.path.isfile(backbone):
        tool('-c', 'import torch; from rats_mm.runtime.backbones import backbone_from_config; '
             f'torch.save(backbone_from_config({VIT_CONFIG!r}).state_dict(), {backbone!r})')
    figures = {}
    for name, root in PART_SETS:
        path = os.path.join(out, f'{name}.json')
        tool('tools/analysis/part_eval.py', VIT_CONFIG, backbone, '--data-root', root,
             '--split', 'validation', '--size', '64', '--max-images', str(max_images),
             '--method', 'kmeans', '--num-clusters', '1', '--out', path)
        figures[f'floor_{name}'] = read_json(path)['miou']
    return figures


def table(runs, floor=None):
    """Markdown: one row per cell, ``mean ± std (n=k)`` over seeds (last block's attention;
    n counts the runs that have the figure: runs recorded before it was measured lack it)."""
    lines = ['| ' + ' | '.join(CELL_KEYS) + ' | seeds | ' + ' | '.join(COLUMNS) + ' |',
             '| --- ' * (len(COLUMNS) + len(CELL_KEYS) + 1) + '|']
    for cell, count, stats in grouped_stats(runs, CELL_KEYS, COLUMNS):
        cells = [format_stat(stats.get(c), digits=3) for c in COLUMNS]
        lines.append('| ' + ' | '.join(cell) + f' | {count} | ' + ' | '.join(cells) + ' |')
    if floor:
        lines.append('\nOne-segment floor: ' + ', '.join(f'{k} {v:.3f}' for k, v in floor.items()))
    return '\n'.join(lines) + '\n'


def cells(args):
    """(signal, model, compress, logits, embedding) of every run asked for, in run order."""
    rats = itertools.product(args.signals, ['rats'], args.compress, args.logits, args.embedding)
    vit = [('probe', 'vit', '-', '-', 'pooled')] if 'probe' in args.signals and args.vit else []
    return list(rats) + vit


def load_runs(result_file):
    """Runs recorded so far (older records get the defaults of the options they predate)."""
    if not os.path.isfile(result_file):
        return []
    runs = read_json(result_file)
    for r in runs:
        r.setdefault('model', 'rats')
        for key, value in DEFAULTS.items():
            r.setdefault(key, value)
    return runs


def run_cell(cell, seed, args):
    """Figures of one (cell, seed)."""
    signal, model, compress, logits, embedding = cell
    work = os.path.join(args.work_dir, '_'.join((*cell, str(seed))))
    if model == 'vit':
        return probe_run(VIT_CONFIG, embedding, seed, args, work, is_vit=True)
    config = cell_config(args.work_dir, compress, logits)
    if signal == 'probe':
        return probe_run(config, embedding, seed, args, work)
    return dino_run(config, embedding, seed, args, work)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--work-dir', default='work_dirs/compress_study')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--signals', nargs='+', default=['probe', 'dino'], choices=['probe', 'dino'])
    p.add_argument('--compress', nargs='+', default=['attention', 'competition'],
                   choices=['attention', 'competition'])
    p.add_argument('--logits', nargs='+', default=['dot', 'cosine'], choices=['dot', 'cosine'])
    p.add_argument('--embedding', nargs='+', default=['pooled', 'registers'],
                   choices=['pooled', 'registers'])
    p.add_argument('--no-vit', dest='vit', action='store_false',
                   help='leave out the plain ViT under the probe')
    p.add_argument('--probe-iters', type=int, default=800)
    p.add_argument('--max-images', type=int, default=200,
                   help='held-out images of each part set scored')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    result_file = os.path.join(args.work_dir, 'compress_study.json')
    runs = load_runs(result_file)
    done = {(*(r[k] for k in CELL_KEYS), r['seed']) for r in runs}
    floor = floors(args.work_dir, args.max_images)
    # the probe's cells first, then DINO's; seed by seed: a stopped study still compares like
    # with like
    order = [(seed, cell) for signal in args.signals for seed in args.seeds
             for cell in cells(args) if cell[0] == signal]
    for seed, cell in order:
        if (*cell, seed) in done:
            continue
        figures = run_cell(cell, seed, args)
        runs.append({**dict(zip(CELL_KEYS, cell)), 'seed': seed, **figures})
        print(json.dumps({k: v for k, v in runs[-1].items() if k != 'attention_by_block'}),
              flush=True)
        write_json(result_file, runs, indent=1)
    with open(os.path.join(args.work_dir, 'compress_study.md'), 'w') as f:
        f.write(table(runs, floor))
    print(table(runs, floor))


if __name__ == '__main__':
    main()
