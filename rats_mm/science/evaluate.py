"""The emergence run's final evaluation of the trained teachers and of their random inits:
part mIoU (registers by cosine and by broadcast against k-means on the ViT's patch tokens
with K = number of registers, Hungarian matching) on the held-out objects and scenes,
CorLoc on the scenes, and the part-map picture. All of it is ``rats_mm.analysis``, the code
``tools/analysis/part_eval.py`` and ``object_discovery.py`` run."""
import os

import numpy as np
import torch

from ..analysis.discovery.boxes import corloc_hits, read_coco_boxes
from ..analysis.discovery.objects import discover_objects
from ..analysis.io import features, load_image, prepare_image
from ..analysis.parts.maps import render_similarity_map
from ..analysis.parts.part_eval import cluster_patches, evaluate_parts, patch_labels
from .figures import render_part_maps

__all__ = ['evaluate_corloc', 'evaluate_part_maps', 'evaluate_parts_all', 'evaluate_pretrained',
           'evaluate_similarity_maps']


def evaluate_pretrained(models, random_inits, part_sets, scenes, image_size, num_clusters,
                        max_images=None, metrics=('miou',), lost=('vit',), vis_dir=None):
    """The evaluation of pretrained backbones that the science run and ``make demo`` share:
    part figures of the registers (cosine and broadcast) against k-means on the ViT's patch
    tokens, CorLoc of the registers (and LOST) with the whole-image box as the floor, and the
    same part figures and register CorLoc of the networks at their init as references.

    Args:
        models (dict): ``{name: RatsViT}`` trained backbones (eval mode, on their device):
            RATS variants (register attention; e.g. ``'rats'``, ``'rats_competition'``) and
            optionally a plain ViT under ``'vit'`` (k-means, LOST).
        random_inits (dict): ``{name: RatsViT}`` the same networks at their init (any subset
            of ``models``; the references).
        part_sets (dict): ``{key suffix: dataset root}`` part-evaluation sets (the science
            run: objects ``''`` and scenes ``'_scenes'``; the demo: its scenes ``''``).
        scenes (str): Dataset with ``instances_validation.json`` for CorLoc.
        image_size (int): Side of the (square) scenes, for the whole-image box.
        num_clusters (int): K of the ViT's k-means (the RATS's register count).
        max_images (int | None): First images of each validation split only.
        metrics (Sequence[str]): ``evaluate_parts`` figures written (``miou``, ``nmi``,
            ``ari``).
        lost (Sequence[str]): Names of ``models`` also scored by LOST (``corloc_<name>_lost``).
        vis_dir (str | None): Drawn boxes of the first images, ``vis_dir/<corloc name>/``.

    Returns:
        tuple[dict, dict]: The figures (``evaluate_parts_all`` keys, the references with
        ``random_init_`` after the metric; ``corloc_<rats>_registers``,
        ``corloc_<rats>_registers_random_init``, ``corloc_<name>_lost``,
        ``corloc_whole_image``) and the full results behind them (``part_<key>`` ->
        ``evaluate_parts`` result, ``corloc_<name>`` -> ``discover_objects`` result).
    """
    rats = {k: m for k, m in models.items() if m.attn_mode == 'rats'}
    details = {}
    out = evaluate_parts_all(rats, models.get('vit'), part_sets, num_clusters, max_images,
                             metrics=metrics, details=details)
    out.update(evaluate_parts_all(
        {k: random_inits[k] for k in rats if k in random_inits}, random_inits.get('vit'),
        part_sets, num_clusters, max_images, prefix='random_init_', metrics=metrics,
        details=details))
    discovery = []
    for name, model in rats.items():
        discovery.append((f'{name}_registers', model, 'registers'))
        if name in random_inits:
            discovery.append((f'{name}_registers_random_init', random_inits[name], 'registers'))
    discovery += [(f'{name}_lost', models[name], 'lost') for name in lost if name in models]
    out.update(evaluate_corloc(discovery, scenes, image_size, max_images, details=details,
                               vis_dir=vis_dir))
    return out, details


def evaluate_parts_all(register_models, vit, part_sets, num_clusters, max_images=None,
                       prefix='', metrics=('miou',), details=None):
    """Part figures of RATS variants (cosine and broadcast) and ViT k-means on each set.

    Args:
        register_models (dict): ``{name: RatsViT}`` RATS backbones (eval mode, on their
            device), e.g. ``'rats'``, ``'rats_competition'``; may be empty.
        vit (RatsViT | None): Plain ViT backbone; None skips it.
        part_sets (dict): ``{key suffix: dataset root}`` (generic part layout).
        num_clusters (int): K of the ViT's k-means (the RATS config's register count).
        max_images (int | None): First images of each validation split only.
        prefix (str): Inserted in the keys (``'random_init_'`` for the references).
        metrics (Sequence[str]): ``evaluate_parts`` figures to return.
        details (dict | None): Filled with ``part_<prefix><key><suffix>`` -> the whole
            ``evaluate_parts`` result.

    Returns:
        dict: ``part_<metric>_{prefix}{name}``, ``..._{name}_broadcast`` per RATS model,
        ``..._vit_kmeans``, each with the set's suffix (fractions in [0, 1]).
    """
    out = {}
    common = dict(split='validation', max_images=max_images or None)
    runs = []
    for name, model in register_models.items():
        runs += [(name, model, dict(method='registers')),
                 (f'{name}_broadcast', model, dict(method='registers', assignment='broadcast'))]
    if vit is not None:
        runs.append(('vit_kmeans', vit, dict(method='kmeans', num_clusters=num_clusters)))
    for tag, root in part_sets.items():
        for key, model, kwargs in runs:
            result = evaluate_parts(model, root, **common, **kwargs)
            out.update({f'part_{m}_{prefix}{key}{tag}': result[m] for m in metrics})
            if details is not None:
                details[f'part_{prefix}{key}{tag}'] = result
    return out


def evaluate_corloc(named_models, scenes, image_size, max_images=None, details=None,
                    vis_dir=None):
    """CorLoc on the held-out scenes for ``(name, model, method)`` triples, plus the floor of
    the whole-image box.

    Args:
        named_models (list[tuple]): ``(name, RatsViT, 'lost' | 'registers')``.
        scenes (str): Dataset root with ``instances_validation.json``.
        image_size (int): Side of the (square) scenes, for the whole-image box.
        max_images (int | None): First images only.
        details (dict | None): Filled with ``corloc_<name>`` -> the whole
            ``discover_objects`` result.
        vis_dir (str | None): Drawn boxes of the first images, ``vis_dir/<name>/``.

    Returns:
        dict: ``corloc_<name>`` per model and ``corloc_whole_image``.
    """
    ann = os.path.join(scenes, 'instances_validation.json')
    out = {}
    for name, model, method in named_models:
        result = discover_objects(model, scenes, ann, method=method,
                                  img_dir='images/validation', max_images=max_images or None,
                                  vis_dir=vis_dir and os.path.join(vis_dir, name))
        out[f'corloc_{name}'] = result['corloc']
        if details is not None:
            details[f'corloc_{name}'] = result
    gts = [item['boxes'] for item in read_coco_boxes(ann)[:max_images or None]]
    whole = np.array([[0, 0, image_size, image_size]] * len(gts), dtype=np.float32)
    out['corloc_whole_image'] = float(np.mean(corloc_hits(whole, gts)))
    return out


@torch.no_grad()
def _label_rows(rows, paths):
    """Rows of the part-map picture (``analysis.parts`` labelling, as the part evaluation
    does it): ``{row name: (model, method, assignment, K)}`` -> ``{row name: [(h, w)
    labels]}``;
    k-means rows are fitted on these images jointly."""
    out = {}
    for name, (model, method, assignment, num_clusters) in rows.items():
        images = [prepare_image(f, model.patch_size) for f in paths]
        feats = [features(model, image) for image in images]
        labels = [patch_labels(model, image, f, method, assignment)
                  for image, f in zip(images, feats)]
        if method == 'kmeans':
            labels, _ = cluster_patches(labels, None, num_clusters)
        out[name] = [lab.view(f['grid_size']) for lab, f in zip(labels, feats)]
    return out


def evaluate_part_maps(register_models, vit, paths, path, num_clusters):
    """PNG of images with each RATS model's register labels (cosine, broadcast) and the ViT
    k-means labels (K = ``num_clusters``, fitted on these images jointly).

    Args:
        register_models (dict): ``{display name: RatsViT}`` RATS backbones.
        vit (RatsViT): Plain ViT backbone.
        paths (list[str]): Image files.
        path (str): PNG to write.
        num_clusters (int): K of the k-means (and of the colour map).

    Returns:
        str: ``path``.
    """
    rows = {}
    for name, model in register_models.items():
        rows[f'{name} registers (cosine)'] = (model, 'registers', 'cosine', None)
        rows[f'{name} broadcast'] = (model, 'registers', 'broadcast', None)
    rows['ViT k-means'] = (vit, 'kmeans', None, num_clusters)
    images = [load_image(f) for f in paths]
    return render_part_maps(images, _label_rows(rows, paths), path, num_clusters)


def evaluate_similarity_maps(rats, image_path, path):
    """PNG of one image and the similarity map of every RATS register (cosine of the final
    register with each final patch token), as ``tools/analysis/similarity_maps.py`` draws
    it (``rats_mm.analysis.parts.maps.render_similarity_map``).

    Args:
        rats (RatsViT): RATS backbone.
        image_path (str): Image file.
        path (str): PNG to write.

    Returns:
        str: ``path``.
    """
    render_similarity_map(rats, image_path, path)
    return path
