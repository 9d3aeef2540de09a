"""`make demo`: the project's main job on the embedded default (generated data, no downloads).

Steps (each a project tool run as a user would run it; finished steps are reused, so a second
`make demo` resumes instead of starting over):
  1. generate the synthetic parts data if absent: scenes (data/synthetic) and isolated
     objects (data/synthetic_objects: one centred object on a plain background);
  2. DINO-pretrain the demo RATS and, with the same recipe, a plain ViT on the isolated
     objects; export both teachers (work_dirs/demo/backbone.pth, backbone_vit.pth); k-NN of a
     randomly initialised network as the reference; training curves of both runs;
  3. fine-tune Mask2Former with register queries from the RATS backbone on the synthetic
     ADE20K-style (semantic) and COCO-style (instance) data, and the baseline arm (the ViT
     with learned queries, same recipe and seed), and test all four;
  4. unsupervised part segmentation of the validation images: RATS registers vs k-means on
     the plain ViT's patches (Hungarian-matched part mIoU), and similarity maps;
  5. frozen-feature probes (k-NN, linear) of both backbones on the isolated objects, object
     discovery (CorLoc: RATS registers, RATS LOST, ViT LOST) on the validation scenes, and
     the RATS register usage (docs/evaluation.md);
  6. the same part and k-NN figures for the reference backbones trained on a GPU by
     tools/science.py (results/science/);
and write the measured figures to work_dirs/demo/summary.json.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join('work_dirs', 'demo')
DATA = os.path.join('data', 'synthetic')              # scenes: fine-tuning and part eval
OBJECTS = os.path.join('data', 'synthetic_objects')   # isolated objects: DINO pretraining
SIZE = 96                                             # generated image side (px)


def tool(*args):
    """Run a project tool from the repo root; stop the demo if it fails."""
    cmd = [sys.executable, *args]
    print('$', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def last_checkpoint(work_dir):
    with open(os.path.join(ROOT, work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train_or_resume(train_tool, config, work_dir):
    """Train with --resume, unless the run already reached its last iteration (resuming a
    finished run would make mmengine replay the whole data loader for nothing).

    Returns:
        float: Seconds the training took (recorded in WORK_DIR/demo_timing.json, so a
        reused run reports the time it took when it ran).
    """
    from mmengine.config import Config
    final = f'iter_{Config.fromfile(os.path.join(ROOT, config)).train_cfg.max_iters}.pth'
    timing = os.path.join(ROOT, work_dir, 'demo_timing.json')
    marker = os.path.join(ROOT, work_dir, 'last_checkpoint')
    if (os.path.isfile(marker) and last_checkpoint(work_dir).endswith(final)
            and os.path.isfile(timing)):
        print(f'{work_dir}: already trained ({final})', flush=True)
        with open(timing) as f:
            return json.load(f)['train_seconds']
    start = time.time()
    tool(train_tool, config, '--work-dir', work_dir, '--resume')
    seconds = round(time.time() - start, 1)
    with open(timing, 'w') as f:
        json.dump({'train_seconds': seconds}, f)
    return seconds


def pretrain(config, work_dir, backbone_out):
    """Pretrain (resuming whatever is there), export the teacher; return figures."""
    seconds = train_or_resume('tools/pretrain.py', config, work_dir)
    tool('tools/export_backbone.py', last_checkpoint(work_dir), backbone_out)
    with open(os.path.join(ROOT, work_dir, 'knn.json')) as f:
        knn = json.load(f)[-1]
    return {'knn_top1': knn['knn_top1'], 'knn_top1_student': knn.get('knn_top1_student'),
            'images_per_s': mean_scalar(work_dir, 'images_per_s'), 'seconds': seconds}


def random_init_knn(config):
    """k-NN top-1 of the config's network at initialisation (seed 0), with the same k-NN
    monitor settings and data as its training run: the chance level to beat."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DATASETS, MODELS

    from rats_mm.pretrain.hooks import knn_top1
    cfg = Config.fromfile(os.path.join(ROOT, config))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    monitor = next(h for h in cfg.custom_hooks if h['type'] == 'KNNMonitorHook')
    root = os.path.join(ROOT, cfg.train_dataloader.dataset.data_root)
    bank, query = (DATASETS.build(dict({'data_root': root}, **monitor[key]))
                   for key in ('bank', 'query'))
    return knn_top1(model.teacher['backbone'].eval(), bank, query, k=monitor.get('k', 20),
                    batch_size=monitor.get('batch_size', 64), num_workers=0)


def training_curves(runs):
    """PNG of loss, teacher entropies and k-NN of the pretraining runs (name -> work dir)."""
    from rats_mm.analysis import read_scalars, render_training_curves
    path = os.path.join(ROOT, WORK, 'training_curves.png')
    render_training_curves({name: read_scalars(os.path.join(ROOT, wd))
                            for name, wd in runs.items()}, path)
    return os.path.relpath(path, ROOT)


def mean_scalar(work_dir, key):
    """Mean of a logged training scalar over every run in ``work_dir`` (a resumed run logs
    into a new timestamped folder; mmengine's LocalVisBackend writes vis_data/scalars.json)."""
    values = []
    for run in sorted(os.listdir(os.path.join(ROOT, work_dir))):
        path = os.path.join(ROOT, work_dir, run, 'vis_data', 'scalars.json')
        if os.path.isfile(path):
            with open(path) as f:
                values += [r[key] for r in map(json.loads, f) if key in r]
    return sum(values) / len(values) if values else None


def finetune_and_test(config, work_dir):
    """Fine-tune a downstream demo config (resuming), test its last checkpoint; metrics."""
    seconds = train_or_resume('tools/train.py', config, work_dir)
    tool('tools/test.py', config, last_checkpoint(work_dir), '--work-dir', work_dir)
    with open(os.path.join(ROOT, work_dir, 'test_metrics.json')) as f:
        metrics = json.load(f)
    metrics['seconds'] = seconds
    return metrics


def part_eval(config, backbone, method, out, **options):
    """Part evaluation on the validation scenes (``rats_mm.analysis.evaluate_parts``, what
    tools/analysis/part_eval.py runs), written to ``out``; the result."""
    from rats_mm.analysis import evaluate_parts
    from rats_mm.analysis.io import write_json
    from rats_mm.runtime.backbones import load_backbone
    model = load_backbone(os.path.join(ROOT, config), os.path.join(ROOT, backbone))
    result = evaluate_parts(model, os.path.join(ROOT, DATA), method=method, split='validation',
                            **options)
    result.update(config=config, checkpoint=backbone)
    write_json(os.path.join(ROOT, out), result)
    print(f"part eval {config} ({method}, {options or 'defaults'}): mIoU "
          f"{100 * result['miou']:.2f}", flush=True)
    return result


def single_segment_miou():
    """Part mIoU of the trivial prediction "every pixel one segment" on the validation split:
    the floor any part method must clear (it scores the background class alone)."""
    import numpy as np

    from rats_mm.analysis import part_miou
    from rats_mm.analysis.io import part_items, prepare_labels
    items, _ = part_items(os.path.join(ROOT, DATA), 'validation')
    masks = [prepare_labels(item['parts'], 8) for item in items]
    num_gt = max(int(m[m != 255].max(initial=0)) for m in masks) + 1
    return part_miou((np.zeros_like(m) for m in masks), masks, 1, num_gt)['miou']


def analyse_parts():
    """Part mIoU of RATS registers and of k-means on the plain ViT (as many clusters as the
    RATS has registers); similarity maps."""
    from mmengine.config import Config
    num_registers = Config.fromfile(
        os.path.join(ROOT, 'configs/demo/dino_rats_synthetic.py')).model.backbone.num_registers
    rats = part_eval('configs/demo/dino_rats_synthetic.py', os.path.join(WORK, 'backbone.pth'),
                     'registers', os.path.join(WORK, 'part_eval_rats.json'))
    rats_bc = part_eval('configs/demo/dino_rats_synthetic.py',
                        os.path.join(WORK, 'backbone.pth'), 'registers',
                        os.path.join(WORK, 'part_eval_rats_broadcast.json'),
                        assignment='broadcast')
    vit = part_eval('configs/demo/dino_vit_synthetic.py',
                    os.path.join(WORK, 'backbone_vit.pth'), 'kmeans',
                    os.path.join(WORK, 'part_eval_vit_kmeans.json'),
                    num_clusters=num_registers)
    images = [os.path.join(DATA, 'images', 'validation', f'{i:06d}.jpg')
              for i in range(800, 804)]
    from rats_mm.runtime.backbones import load_backbone
    from rats_mm.analysis.parts.maps import write_similarity_maps
    model = load_backbone(os.path.join(ROOT, 'configs/demo/dino_rats_synthetic.py'),
                          os.path.join(ROOT, WORK, 'backbone.pth'))
    write_similarity_maps(model, [os.path.join(ROOT, p) for p in images],
                          os.path.join(ROOT, WORK, 'similarity'))
    return {'part_num_segments': num_registers,
            'part_miou_single_segment': single_segment_miou(),
            'part_num_gt_classes': rats['num_gt'],
            'part_miou_rats': rats['miou'], 'part_nmi_rats': rats['nmi'],
            'part_ari_rats': rats['ari'], 'part_miou_rats_broadcast': rats_bc['miou'],
            'part_nmi_rats_broadcast': rats_bc['nmi'], 'part_miou_vit_kmeans': vit['miou'],
            'part_nmi_vit_kmeans': vit['nmi'], 'part_ari_vit_kmeans': vit['ari']}


def probes(config, backbone, features='embedding'):
    """k-NN and linear probe of a backbone on the isolated objects (train -> validation),
    as tools/eval_knn.py and tools/eval_linear.py run them, from one feature extraction."""
    from rats_mm.analysis.probes.features import FrozenEmbedding, extract_features
    from rats_mm.analysis.probes.classifiers import knn_probe, linear_probe
    from rats_mm.runtime.backbones import load_backbone
    from rats_mm.runtime.probes import eval_transform, probe_dataset
    transform = eval_transform(os.path.join(ROOT, config))
    root = os.path.join(ROOT, OBJECTS)
    network = FrozenEmbedding(load_backbone(os.path.join(ROOT, config),
                                            os.path.join(ROOT, backbone)), features)
    (train_x, train_y), (val_x, val_y) = (
        extract_features(network, probe_dataset(root, f'labels/{split}.txt', transform),
                         num_workers=0)
        for split in ('training', 'validation'))
    return {'knn': knn_probe(train_x, train_y, val_x, val_y)['top1'],
            'linear': linear_probe(train_x, train_y, val_x, val_y)['top1']}


def evaluate_backbones():
    """Probes, CorLoc on the validation scenes (and the whole-image box as the floor), and
    the RATS register usage; figures for the summary."""
    import numpy as np
    import torch

    from rats_mm.analysis.discovery.boxes import corloc_hits, read_coco_boxes
    from rats_mm.analysis.discovery.objects import discover_objects
    from rats_mm.analysis.io import write_json
    from rats_mm.analysis.registers.usage import register_usage
    from rats_mm.runtime.backbones import backbone_from_config, load_backbone
    rats_cfg = 'configs/demo/dino_rats_synthetic.py'
    vit_cfg = 'configs/demo/dino_vit_synthetic.py'
    rats, vit = os.path.join(WORK, 'backbone.pth'), os.path.join(WORK, 'backbone_vit.pth')
    out = {}
    for name, cfg, ckpt, feats in (('rats', rats_cfg, rats, 'embedding'),
                                   ('rats_registers', rats_cfg, rats, 'registers'),
                                   ('vit', vit_cfg, vit, 'embedding')):
        result = probes(cfg, ckpt, feats)
        out[f'probe_knn_top1_{name}'], out[f'probe_linear_top1_{name}'] = (
            result['knn'], result['linear'])
    ann = os.path.join(ROOT, DATA, 'instances_validation.json')
    for name, cfg, ckpt, method in (('rats_registers', rats_cfg, rats, 'registers'),
                                    ('rats_registers_random_init', rats_cfg, None, 'registers'),
                                    ('rats_lost', rats_cfg, rats, 'lost'),
                                    ('vit_lost', vit_cfg, vit, 'lost')):
        torch.manual_seed(0)  # the random-init reference
        model = (load_backbone(os.path.join(ROOT, cfg), os.path.join(ROOT, ckpt)) if ckpt
                 else backbone_from_config(os.path.join(ROOT, cfg)).eval())
        result = discover_objects(model, os.path.join(ROOT, DATA), ann, method=method,
                                  img_dir='images/validation', vis_dir=os.path.join(
                                      ROOT, WORK, 'discovery', name))
        write_json(os.path.join(ROOT, WORK, 'discovery', f'{name}.json'), result)
        out[f'corloc_{name}'] = result['corloc']
    gts = [item['boxes'] for item in read_coco_boxes(ann)]
    whole = [[0, 0, SIZE, SIZE]] * len(gts)
    out['corloc_whole_image'] = float(np.mean(corloc_hits(whole, gts)))
    model = load_backbone(os.path.join(ROOT, rats_cfg), os.path.join(ROOT, rats))
    usage = register_usage(model, os.path.join(ROOT, DATA), split='validation')
    write_json(os.path.join(ROOT, WORK, 'register_usage.json'), usage)
    out.update({f'register_{k}': usage[k] for k in (
        'effective_registers_per_image', 'registers_used_per_image', 'registers_per_object',
        'dead_registers')})
    last = usage['attention_by_block'][-1]  # 1.0: uniform, the registers carry the image mean
    out.update({f'register_last_block_{k}': last[k] for k in (
        'compress_entropy', 'compress_map_similarity', 'communicate_entropy',
        'broadcast_entropy')})
    print('evaluation:', json.dumps(out), flush=True)
    return out


GPU_REFERENCE = os.path.join('results', 'science', 'h200_2026-11-30')  # tools/science.py


def gpu_reference_backbones():
    """The reference weights trained by tools/science.py on a GPU (docs/parts.md, "Emergence
    at GPU scale"), scored as the CPU-trained backbones are: part mIoU on the validation
    scenes (RATS registers; ViT k-means with K = the RATS registers) and k-NN top-1 on the
    isolated objects (teacher embedding, grayscale 64 px view, as in training)."""
    from rats_mm.analysis import evaluate_parts
    from rats_mm.runtime.backbones import load_backbone
    from rats_mm.science.data import load_labelled_images
    from rats_mm.science.measure import KNNSet
    objects = os.path.join(ROOT, OBJECTS)
    knn = KNNSet(load_labelled_images(objects, 'training'),
                 load_labelled_images(objects, 'validation'), 'cpu')
    models = {name: load_backbone(os.path.join(ROOT, 'configs', 'science', f'{name}_science.py'),
                                  os.path.join(ROOT, GPU_REFERENCE, f'backbone_{name}.pth'))
              for name in ('rats', 'vit')}
    scenes = os.path.join(ROOT, DATA)
    rats_parts = evaluate_parts(models['rats'], scenes, method='registers', split='validation')
    vit_parts = evaluate_parts(models['vit'], scenes, method='kmeans', split='validation',
                               num_clusters=models['rats'].num_registers)
    return {'gpu_reference_knn_top1_rats': knn.top1(models['rats'], 64, True),
            'gpu_reference_knn_top1_vit': knn.top1(models['vit'], 64, True),
            'gpu_reference_part_miou_rats': rats_parts['miou'],
            'gpu_reference_part_miou_vit_kmeans': vit_parts['miou']}


def main():
    os.makedirs(os.path.join(ROOT, WORK), exist_ok=True)
    start = time.time()
    tool('tools/make_synthetic.py', DATA, '--num-images', '1000', '--size', str(SIZE),
         '--seed', '0')
    tool('tools/make_synthetic.py', OBJECTS, '--num-images', '2000', '--size', str(SIZE),
         '--seed', '0', '--layout', 'isolated')
    rats = pretrain('configs/demo/dino_rats_synthetic.py', os.path.join(WORK, 'pretrain_rats'),
                    os.path.join(WORK, 'backbone.pth'))
    vit = pretrain('configs/demo/dino_vit_synthetic.py', os.path.join(WORK, 'pretrain_vit'),
                   os.path.join(WORK, 'backbone_vit.pth'))
    seg = finetune_and_test('configs/demo/m2f_rats_synthetic_seg.py',
                            os.path.join(WORK, 'm2f_seg'))
    ins = finetune_and_test('configs/demo/m2f_rats_synthetic_ins.py',
                            os.path.join(WORK, 'm2f_ins'))
    # the baseline arm: the ViT with learned queries, same recipe and seed
    seg_vit = finetune_and_test('configs/demo/m2f_vit_synthetic_seg.py',
                                os.path.join(WORK, 'm2f_seg_vit'))
    ins_vit = finetune_and_test('configs/demo/m2f_vit_synthetic_ins.py',
                                os.path.join(WORK, 'm2f_ins_vit'))
    summary = {'knn_top1_rats': rats['knn_top1'], 'knn_top1_vit': vit['knn_top1'],
               'knn_top1_random_init': random_init_knn('configs/demo/dino_rats_synthetic.py'),
               'knn_top1_random_init_vit': random_init_knn('configs/demo/dino_vit_synthetic.py'),
               'knn_top1_student_rats': rats['knn_top1_student'],
               'knn_top1_student_vit': vit['knn_top1_student'],
               'training_curves': training_curves({
                   'RATS': os.path.join(WORK, 'pretrain_rats'),
                   'ViT': os.path.join(WORK, 'pretrain_vit')}),
               'pretrain_images_per_s_rats': rats['images_per_s'],
               'pretrain_images_per_s_vit': vit['images_per_s'],
               'pretrain_seconds_rats': rats['seconds'], 'pretrain_seconds_vit': vit['seconds'],
               'seg_miou': seg['mIoU'], 'seg_seconds': seg['seconds'],
               'ins_segm_map': ins['coco/segm_mAP'], 'ins_seconds': ins['seconds'],
               'seg_miou_vit': seg_vit['mIoU'], 'seg_seconds_vit': seg_vit['seconds'],
               'ins_segm_map_vit': ins_vit['coco/segm_mAP'],
               'ins_seconds_vit': ins_vit['seconds']}
    summary.update(analyse_parts())
    summary.update(evaluate_backbones())
    summary.update(gpu_reference_backbones())
    summary['this_run_seconds'] = round(time.time() - start, 1)  # reused steps excluded
    with open(os.path.join(ROOT, WORK, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == '__main__':
    main()
