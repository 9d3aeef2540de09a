"""Both compress steps under the probe signal and under the demo's DINO recipe, over seeds:
the table of docs/parts.md ("Registers that merge"), reproduced with the project's tools.

    python tools/analysis/compress_study.py --work-dir work_dirs/compress_study
        [--seeds 0 1 2] [--probe-iters 800] [--skip-dino] [--jobs-log]

Per compress step ('attention': configs/demo/dino_rats_synthetic.py, 'competition':
configs/demo/dino_rats_competition_synthetic.py) and seed it runs
tools/analysis/attention_probe.py (cross-entropy on the categories of
data/synthetic_objects; the trained backbone kept; its last-block attention statistics on the
first 64 of its 128 held-out objects), and, unless --skip-dino, the demo DINO pretraining
(tools/pretrain.py, randomness.seed=SEED; k-NN top-1 as its accuracy) exported with
tools/export_backbone.py and measured with tools/analysis/register_usage.py (last block,
64 held-out objects). Every backbone is scored with tools/analysis/part_eval.py (part
mIoU, registers by cosine, 64 px, first --max-images held-out images of the demo scenes
data/synthetic and objects
data/synthetic_objects). Writes WORK/compress_study.json (every
figure per run) and WORK/compress_study.md (mean +- std over seeds). Needs the demo data
(make demo, or tools/make_synthetic.py as the demo configs say). Runs already in
WORK/compress_study.json are not run again.
"""
import argparse
import json
import os
import subprocess
import sys

from rats_mm.analysis.runs import mean_std

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = {'attention': 'configs/demo/dino_rats_synthetic.py',
           'competition': 'configs/demo/dino_rats_competition_synthetic.py'}
OBJECTS, SCENES = 'data/synthetic_objects', 'data/synthetic'
COLUMNS = ('val_acc', 'compress_entropy', 'compress_peak', 'compress_map_similarity',
           'communicate_entropy', 'communicate_self_weight', 'broadcast_entropy',
           'part_miou_scenes', 'part_miou_objects')


def tool(*args):
    """Run a project tool from the repository root; stop with its output on failure."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f'{" ".join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}')
    return proc.stdout


def attention(config, backbone, work):
    """Last-block attention statistics on 64 held-out objects (register_usage.py)."""
    usage_dir = os.path.join(work, 'usage')
    tool('tools/analysis/register_usage.py', config, backbone, '--data-root', OBJECTS,
         '--split', 'validation', '--max-images', '64', '--size', '64', '--out-dir', usage_dir)
    with open(os.path.join(usage_dir, 'register_usage.json')) as f:
        return dict(json.load(f)['attention_by_block'][-1])


def part_mious(config, backbone, work, max_images):
    """Part mIoU (registers by cosine) on the first held-out scenes and objects."""
    figures = {}
    for name, root in (('scenes', SCENES), ('objects', OBJECTS)):
        out = os.path.join(work, f'parts_{name}.json')
        tool('tools/analysis/part_eval.py', config, backbone, '--data-root', root,
             '--split', 'validation', '--method', 'registers', '--size', '64',
             '--max-images', str(max_images), '--out', out)
        with open(out) as f:
            figures[f'part_miou_{name}'] = json.load(f)['miou']
    return figures


def probe_run(step, seed, iters, work, max_images):
    """The probe signal: figures of one compress step and seed (the attention statistics the
    probe measured at its end on the first 64 of its 128 held-out objects)."""
    out, backbone = os.path.join(work, 'probe.json'), os.path.join(work, 'probe.pth')
    tool('tools/analysis/attention_probe.py', CONFIGS[step], '--data-root', OBJECTS,
         '--iters', str(iters), '--seed', str(seed), '--out', out, '--save-backbone', backbone)
    with open(out) as f:
        final = json.load(f)['final']
    return {'val_acc': final['val_acc'], **final['attention_by_block'][-1],
            **part_mious(CONFIGS[step], backbone, work, max_images)}


def dino_run(step, seed, work, max_images):
    """The demo DINO recipe: figures of one compress step and seed (k-NN as val_acc)."""
    run_dir = os.path.join(work, 'pretrain')
    tool('tools/pretrain.py', CONFIGS[step], '--work-dir', run_dir,
         '--cfg-options', f'randomness.seed={seed}')
    with open(os.path.join(run_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    backbone = os.path.join(work, 'backbone.pth')
    tool('tools/export_backbone.py', last, backbone)
    knn = os.path.join(run_dir, 'knn.json')
    val_acc = None
    if os.path.isfile(knn):  # the k-NN monitor's records; the last is after training
        with open(knn) as f:
            val_acc = json.load(f)[-1].get('knn_top1')
    return {'val_acc': val_acc, **attention(CONFIGS[step], backbone, work),
            **part_mious(CONFIGS[step], backbone, work, max_images)}


def table(runs):
    """Markdown: one row per (signal, compress step), mean +- std over seeds."""
    lines = ['| signal | compress | seeds | ' + ' | '.join(COLUMNS) + ' |',
             '| --- ' * (len(COLUMNS) + 3) + '|']
    keys = sorted({(r['signal'], r['compress']) for r in runs})
    for signal, step in keys:
        rows = [r for r in runs if (r['signal'], r['compress']) == (signal, step)]
        cells = []
        for col in COLUMNS:
            values = [float(r[col]) for r in rows if r.get(col) is not None]
            mean, std = mean_std(values) if values else (None, None)
            cells.append('-' if mean is None else f'{mean:.3f} +- {std or 0:.3f}')
        lines.append(f'| {signal} | {step} | {len(rows)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--work-dir', default='work_dirs/compress_study')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--probe-iters', type=int, default=800)
    p.add_argument('--skip-dino', action='store_true')
    p.add_argument('--max-images', type=int, default=200,
                   help='held-out images of each part set scored')
    args = p.parse_args(argv)
    runs, result_file = [], os.path.join(args.work_dir, 'compress_study.json')
    if os.path.isfile(result_file):  # a stopped study goes on where it stopped
        with open(result_file) as f:
            runs = json.load(f)
    done = {(r['signal'], r['compress'], r['seed']) for r in runs}
    signals = ['probe'] + ([] if args.skip_dino else ['dino'])
    for seed in args.seeds:  # seed by seed: a stopped study still compares like with like
        for signal in signals:
            for step in CONFIGS:
                if (signal, step, seed) in done:
                    continue
                work = os.path.join(args.work_dir, f'{signal}_{step}_{seed}')
                figures = (probe_run(step, seed, args.probe_iters, work, args.max_images)
                           if signal == 'probe' else
                           dino_run(step, seed, work, args.max_images))
                runs.append({'signal': signal, 'compress': step, 'seed': seed, **figures})
                print(json.dumps(runs[-1]), flush=True)
                os.makedirs(args.work_dir, exist_ok=True)
                with open(result_file, 'w') as f:
                    json.dump(runs, f, indent=1)
    with open(os.path.join(args.work_dir, 'compress_study.md'), 'w') as f:
        f.write(table(runs))
    print(table(runs))


if __name__ == '__main__':
    main()
