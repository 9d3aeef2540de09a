"""`make demo`: the project's main job on the embedded default (generated data, no downloads).

Steps (each a project tool run as a user would run it; finished steps are reused, so a second
`make demo` resumes instead of starting over):
  1. generate the synthetic parts data (data/synthetic) if absent;
  2. DINO-pretrain the demo RATS (configs/demo/dino_rats_synthetic.py);
  3. export the teacher backbone to work_dirs/demo/backbone.pth;
and write the measured figures to work_dirs/demo/summary.json.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join('work_dirs', 'demo')
DATA = os.path.join('data', 'synthetic')


def tool(*args):
    """Run a project tool from the repo root; stop the demo if it fails."""
    cmd = [sys.executable, *args]
    print('$', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def last_checkpoint(work_dir):
    with open(os.path.join(ROOT, work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def pretrain(config, work_dir, backbone_out):
    """Pretrain (resuming whatever is there), export the teacher; return figures."""
    start = time.time()
    tool('tools/pretrain.py', config, '--work-dir', work_dir, '--resume')
    seconds = time.time() - start
    tool('tools/export_backbone.py', last_checkpoint(work_dir), backbone_out)
    with open(os.path.join(ROOT, work_dir, 'knn.json')) as f:
        knn = json.load(f)[-1]['knn_top1']
    return {'knn_top1': knn, 'images_per_s': mean_scalar(work_dir, 'images_per_s'),
            'seconds': round(seconds, 1)}


def mean_scalar(work_dir, key):
    """Mean of a logged training scalar over the latest run (mmengine LocalVisBackend)."""
    runs = sorted(d for d in os.listdir(os.path.join(ROOT, work_dir))
                  if os.path.isfile(os.path.join(ROOT, work_dir, d, 'vis_data', 'scalars.json')))
    values = []
    with open(os.path.join(ROOT, work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        for line in f:
            record = json.loads(line)
            if key in record:
                values.append(record[key])
    return sum(values) / len(values) if values else None


def main():
    os.makedirs(os.path.join(ROOT, WORK), exist_ok=True)
    start = time.time()
    tool('tools/make_synthetic.py', DATA, '--num-images', '1000', '--size', '96', '--seed', '0')
    rats = pretrain('configs/demo/dino_rats_synthetic.py', os.path.join(WORK, 'pretrain_rats'),
                    os.path.join(WORK, 'backbone.pth'))
    summary = {'knn_top1_rats': rats['knn_top1'],
               'pretrain_images_per_s_rats': rats['images_per_s'],
               'pretrain_seconds_rats': rats['seconds'],
               'demo_seconds': round(time.time() - start, 1)}
    with open(os.path.join(ROOT, WORK, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == '__main__':
    main()
