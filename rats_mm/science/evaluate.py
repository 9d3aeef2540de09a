"""The emergence run's final evaluation of the trained teachers and of their random inits:
part mIoU (registers by cosine and by broadcast against k-means on the ViT's patch tokens
with K = number of registers, Hungarian matching) on the held-out objects and scenes,
CorLoc on the scenes, and the part-map picture. All of it is ``rats_mm.analysis``, the code
``tools/analysis/part_eval.py`` and ``object_discovery.py`` run."""
import os

import numpy as np
import torch

from ..analysis.boxes import corloc_hits, read_coco_boxes
from ..analysis.discovery import discover_objects
from ..analysis.io import features, load_image, prepare_image
from ..analysis.part_eval import evaluate_parts
from ..analysis.segment import kmeans, register_assignment
from ..analysis.similarity import (register_patch_similarity, render_similarity_grid,
                                   similarity_maps)
from .figures import render_part_maps

__all__ = ['evaluate_corloc', 'evaluate_part_maps', 'evaluate_parts_all',
           'evaluate_similarity_maps']


def evaluate_parts_all(rats, vit, sets, max_images=None, prefix=''):
    """Part mIoU of RATS (cosine and broadcast) and ViT k-means on objects and scenes.

    Args:
        rats (RatsViT | None): RATS backbone (eval mode, on its device); None skips it.
        vit (RatsViT | None): Plain ViT backbone; None skips it.
        sets (EvalSets): Held-out sets.
        max_images (int | None): First images of each validation split only.
        prefix (str): Inserted in the keys (``'random_init_'`` for the references).

    Returns:
        dict: ``part_miou_{prefix}rats``, ``..._rats_broadcast``, ``..._vit_kmeans`` on the
        objects and the same with ``_scenes`` on the scenes (fractions in [0, 1]).
    """
    out = {}
    common = dict(split='validation', max_images=max_images or None)
    runs = []
    if rats is not None:
        runs += [('rats', rats, dict(method='registers')),
                 ('rats_broadcast', rats, dict(method='registers', assignment='broadcast'))]
    if vit is not None:  # K = the RATS register count (the config's, when RATS is skipped)
        clusters = rats.num_registers if rats is not None else vit.kmeans_clusters
        runs.append(('vit_kmeans', vit, dict(method='kmeans', num_clusters=clusters)))
    for root, tag in ((sets.objects, ''), (sets.scenes, '_scenes')):
        for key, model, kwargs in runs:
            result = evaluate_parts(model, root, **common, **kwargs)
            out[f'part_miou_{prefix}{key}{tag}'] = result['miou']
    return out


def evaluate_corloc(named_models, sets, image_size, max_images=None):
    """CorLoc on the held-out scenes for ``(name, model, method)`` triples, plus the floor of
    the whole-image box.

    Args:
        named_models (list[tuple]): ``(name, RatsViT, 'lost' | 'registers')``.
        sets (EvalSets): Held-out sets.
        image_size (int): Side of the (square) scenes, for the whole-image box.
        max_images (int | None): First images only.

    Returns:
        dict: ``corloc_<name>`` per model and ``corloc_whole_image``.
    """
    ann = os.path.join(sets.scenes, 'instances_validation.json')
    out = {}
    for name, model, method in named_models:
        result = discover_objects(model, sets.scenes, ann, method=method,
                                  img_dir='images/validation', max_images=max_images or None)
        out[f'corloc_{name}'] = result['corloc']
    gts = [item['boxes'] for item in read_coco_boxes(ann)[:max_images or None]]
    whole = np.array([[0, 0, image_size, image_size]] * len(gts), dtype=np.float32)
    out['corloc_whole_image'] = float(np.mean(corloc_hits(whole, gts)))
    return out


@torch.no_grad()
def evaluate_part_maps(rats, vit, paths, path):
    """PNG of images with the RATS register labels (cosine, broadcast) and the ViT k-means
    labels (K = registers, fitted on these images jointly).

    Args:
        rats (RatsViT): RATS backbone.
        vit (RatsViT): Plain ViT backbone.
        paths (list[str]): Image files.
        path (str): PNG to write.

    Returns:
        str: ``path``.
    """
    device = next(rats.parameters()).device
    images, cosine, broadcast, vit_tokens, grids = [], [], [], [], []
    for file in paths:
        image = prepare_image(file, rats.patch_size)
        images.append(load_image(file))
        out = features(rats, image)
        grid = out['grid_size']
        grids.append(grid)
        cosine.append(register_assignment(out['x_norm_patchtokens'],
                                          out['x_norm_regtokens'])[0].view(grid))
        bcast = rats.last_broadcast_weights(image.to(device))[0].argmax(-1).cpu()
        broadcast.append(bcast.view(grid))
        vit_tokens.append(features(vit, image)['x_norm_patchtokens'][0])
    _, assign = kmeans(torch.cat(vit_tokens), rats.num_registers)
    vit_maps = [a.view(g) for a, g in
                zip(torch.split(assign, [t.shape[0] for t in vit_tokens]), grids)]
    return render_part_maps(images, {'RATS registers (cosine)': cosine,
                                     'RATS broadcast': broadcast,
                                     'ViT k-means': vit_maps}, path, rats.num_registers)


@torch.no_grad()
def evaluate_similarity_maps(rats, image_path, path):
    """PNG of one image and the similarity map of every RATS register (cosine of the final
    register with each final patch token), as ``tools/analysis/similarity_maps.py`` draws.

    Args:
        rats (RatsViT): RATS backbone.
        image_path (str): Image file.
        path (str): PNG to write.

    Returns:
        str: ``path``.
    """
    out = features(rats, prepare_image(image_path, rats.patch_size))
    sim = register_patch_similarity(out['x_norm_patchtokens'], out['x_norm_regtokens'])
    maps = similarity_maps(sim, out['grid_size'], out['grid_size'])[0]     # (N, h, w)
    render_similarity_grid(load_image(image_path), maps, path)
    return path
