"""`make demo`: the project's main job on the embedded default (generated data, no downloads).

Steps (each a project tool run as a user would run it; finished steps are reused, so a second
`make demo` resumes instead of starting over):
  1. generate the synthetic data if absent: scenes, and isolated objects (one per image);
  2. DINO-pretrain the demo RATS and, with the same recipe, a plain ViT on the isolated
     objects; export both teachers (work_dirs/demo/backbone.pth, backbone_vit.pth); k-NN of a
     randomly initialised network as the reference; training curves of both runs;
  3. fine-tune Mask2Former with register queries from the RATS backbone on the synthetic
     ADE20K-style (semantic) and COCO-style (instance) data, and the baseline arm (the ViT
     with learned queries, same recipe and seed), and test all four;
  4. the evaluation protocol the GPU run shares (rats_mm.science.evaluate_pretrained) on
     the validation scenes: part mIoU of the RATS registers vs k-means on the ViT's patches,
     CorLoc and the whole-image floor, each against the network at init; the one-segment
     floor, similarity maps, probes (k-NN, linear) on the isolated objects, register usage;
  5. the same part and k-NN figures for the GPU-trained references (results/science/);
and write the measured figures to work_dirs/demo/summary.json.
"""
import json
import os
import time

import torch

from rats_mm.analysis import read_scalars, render_training_curves, single_segment_miou
from rats_mm.analysis.io import write_json
from rats_mm.analysis.parts.maps import write_similarity_maps
from rats_mm.analysis.registers.usage import register_usage
from rats_mm.pretrain.hooks import random_init_knn
from rats_mm.runtime.backbones import backbone_from_config, load_backbone
from rats_mm.runtime.probe_cli import probe_backbone
from rats_mm.runtime.steps import (finetune_and_test, last_checkpoint, mean_scalar,
                                   run_tool, train_or_resume)
from rats_mm.science.rendering import load_labelled_images
from rats_mm.science.evaluate import evaluate_parts_all, evaluate_pretrained
from rats_mm.science.measure import KNNSet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, 'work_dirs', 'demo')
DATA = os.path.join(ROOT, 'data', 'synthetic')             # scenes: fine-tuning, evaluation
OBJECTS = os.path.join(ROOT, 'data', 'synthetic_objects')  # isolated objects: pretraining
SIZE = 96                                                  # generated image side (px)
RATS, VIT = 'configs/demo/dino_rats_synthetic.py', 'configs/demo/dino_vit_synthetic.py'
GPU_REFERENCE = os.path.join(ROOT, 'results', 'science', 'h200_2026-11-30')  # science.py
USAGE = ('effective_registers_per_image', 'registers_used_per_image', 'registers_per_object',
         'dead_registers')  # and the last block's entropies (1.0: uniform, the image mean):
LAST_BLOCK = ('compress_entropy', 'compress_map_similarity', 'communicate_entropy',
              'broadcast_entropy')


def at_root(*parts):  # a path in the repository
    return os.path.join(ROOT, *parts)


def pretrain(config, arm, backbone):
    """Pretrain (resuming whatever is there), export the teacher; summary figures."""
    work_dir = os.path.join('work_dirs', 'demo', f'pretrain_{arm}')
    seconds = train_or_resume(ROOT, 'tools/pretrain.py', config, work_dir)
    run_tool(ROOT, 'tools/export_backbone.py', last_checkpoint(at_root(work_dir)),
             os.path.join(WORK, backbone))
    with open(at_root(work_dir, 'knn.json')) as f:
        knn = json.load(f)[-1]
    return {f'knn_top1_{arm}': knn['knn_top1'],
            f'knn_top1_student_{arm}': knn.get('knn_top1_student'),
            f'pretrain_images_per_s_{arm}': mean_scalar(at_root(work_dir), 'images_per_s'),
            f'pretrain_seconds_{arm}': seconds}


def evaluate():
    """The shared protocol, the part floor, similarity maps, probes and register usage."""
    rats = load_backbone(at_root(RATS), os.path.join(WORK, 'backbone.pth'))
    vit = load_backbone(at_root(VIT), os.path.join(WORK, 'backbone_vit.pth'))
    torch.manual_seed(0)  # the random-init reference
    random_rats = backbone_from_config(at_root(RATS)).eval()
    out, details = evaluate_pretrained(
        {'rats': rats, 'vit': vit}, {'rats': random_rats}, {'': DATA}, DATA, SIZE,
        rats.num_registers, metrics=('miou', 'nmi', 'ari'), lost=('rats', 'vit'),
        vis_dir=os.path.join(WORK, 'discovery'))
    for key, result in details.items():
        kind, name = key.split('_', 1)
        write_json(os.path.join(WORK, *(('discovery', f'{name}.json') if kind == 'corloc'
                                        else (f'part_eval_{name}.json',))), result)
    out.update(part_num_segments=rats.num_registers, part_num_gt_classes=details[
        'part_rats']['num_gt'], part_miou_single_segment=single_segment_miou(DATA))
    write_similarity_maps(rats, [os.path.join(DATA, 'images', 'validation', f'{i:06d}.jpg')
                                 for i in range(800, 804)], os.path.join(WORK, 'similarity'))
    for name, config, backbone, embedding in (
            ('rats', RATS, 'backbone.pth', 'pooled'),
            ('rats_registers', RATS, 'backbone.pth', 'registers'),
            ('vit', VIT, 'backbone_vit.pth', 'pooled')):
        probe = probe_backbone(at_root(config), os.path.join(WORK, backbone), OBJECTS,
                               embedding)
        out[f'probe_knn_top1_{name}'], out[f'probe_linear_top1_{name}'] = (
            probe['knn'], probe['linear'])
    usage = register_usage(rats, DATA, split='validation')
    write_json(os.path.join(WORK, 'register_usage.json'), usage)
    out.update({f'register_{k}': usage[k] for k in USAGE})
    out.update({f'register_last_block_{k}': usage['attention_by_block'][-1][k]
                for k in LAST_BLOCK})
    print('evaluation:', json.dumps(out), flush=True)
    return out


def gpu_reference_backbones():
    """The reference weights trained by tools/science.py on a GPU (docs/findings.md, "Emergence
    at GPU scale"), scored as the CPU-trained backbones are: part mIoU on the validation
    scenes and k-NN top-1 on the isolated objects (grayscale 64 px view, as in training)."""
    knn = KNNSet(load_labelled_images(OBJECTS, 'training'),
                 load_labelled_images(OBJECTS, 'validation'), 'cpu')
    models = {name: load_backbone(at_root('configs', 'science', f'{name}_science.py'),
                                  os.path.join(GPU_REFERENCE, f'backbone_{name}.pth'))
              for name in ('rats', 'vit')}
    parts = evaluate_parts_all({'rats': models['rats']}, models['vit'], {'': DATA},
                               models['rats'].num_registers)
    return {'gpu_reference_knn_top1_rats': knn.top1(models['rats'], 64, True),
            'gpu_reference_knn_top1_vit': knn.top1(models['vit'], 64, True),
            'gpu_reference_part_miou_rats': parts['part_miou_rats'],
            'gpu_reference_part_miou_vit_kmeans': parts['part_miou_vit_kmeans']}


def main():
    os.makedirs(WORK, exist_ok=True)
    start = time.time()
    for folder, count, layout in ((DATA, 1000, 'scene'), (OBJECTS, 2000, 'isolated')):
        run_tool(ROOT, 'tools/make_synthetic.py', os.path.relpath(folder, ROOT), '--num-images',
                 str(count), '--size', str(SIZE), '--seed', '0', '--layout', layout)
    summary = {'knn_top1_random_init': random_init_knn(at_root(RATS), ROOT),
               'knn_top1_random_init_vit': random_init_knn(at_root(VIT), ROOT)}
    for arm, config, backbone in (('rats', RATS, 'backbone.pth'),
                                  ('vit', VIT, 'backbone_vit.pth')):
        summary.update(pretrain(config, arm, backbone))
    path = os.path.join(WORK, 'training_curves.png')
    render_training_curves({name: read_scalars(os.path.join(WORK, f'pretrain_{name.lower()}'))
                            for name in ('RATS', 'ViT')}, path)
    summary['training_curves'] = os.path.relpath(path, ROOT)
    for arm, tag in (('rats', ''), ('vit', '_vit')):  # the baseline: ViT, learned queries
        for task, key, metric in (('seg', 'seg_miou', 'mIoU'),
                                  ('ins', 'ins_segm_map', 'coco/segm_mAP')):
            result = finetune_and_test(ROOT, f'configs/demo/m2f_{arm}_synthetic_{task}.py',
                                       os.path.join('work_dirs', 'demo', f'm2f_{task}{tag}'))
            summary[key + tag] = result[metric]
            summary[f'{task}_seconds{tag}'] = result['seconds']
    summary.update(evaluate())
    summary.update(gpu_reference_backbones())
    summary['this_run_seconds'] = round(time.time() - start, 1)  # reused steps excluded
    write_json(os.path.join(WORK, 'summary.json'), summary)
    print(json.dumps(summary, indent=1))


if __name__ == '__main__':
    main()
