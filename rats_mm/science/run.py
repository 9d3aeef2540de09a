"""The emergence run: RATS variants (the paper's, competition in the compress step, cosine
logits) and a plain ViT trained with DINO for the same time each on the same device-resident
data, measured as they train and evaluated for parts at the end (``tools/science.py``;
docs/findings.md, "Emergence at GPU scale").

Everything lands in ``out_dir``: ``summary.json`` (rewritten at every measurement point, so
a run killed at its time limit still leaves its figures), ``backbone_<variant>.pth`` for
each trained variant (teacher backbones with their options and read-out recorded,
written as soon as each model is trained; ``configs/science/`` describes them to the analysis
tools, with the read-out as ``global_pool`` and the RATS overrides that the summary's
``configs`` names), ``curves.png``,
``views.png`` (sample multi-crop views), ``parts.png`` (part maps), ``similarity.png`` and
``similarity_<variant>.png`` (every register's similarity map on one scene) and ``log.txt``.
"""
import json
import math
import os
import platform
import time
import traceback
from dataclasses import replace

import torch

from ..analysis.parts.part_eval import single_segment_miou
from ..files import write_json
from ..models import RatsViT, enable_tf32
from ..models.embedding import embedding_dim, embedding_of
from ..models.weights import backbone_options, save_backbone
from ..ssl.collapse import early_signs
from ..ssl.device_multicrop import DeviceMultiCrop
from .rendering import prepare_eval_sets, render_training_images
from .evaluate import evaluate_part_maps, evaluate_pretrained, evaluate_similarity_maps
from .figures import render_curves, render_views
from .measure import KNNSet, eval_view_of
from .recipe import RATS_CONFIG, VIT_CONFIG, Recipe, train_flops_per_image  # noqa: F401
from .end_probes import probe_teachers
from .presets import (PRESET_DEFAULTS, PRESETS, demo_recipe, smoke_recipe,  # noqa: F401
                      testbed_recipe)
from .train import train_model
from .variants import (DEFAULT_VARIANTS, RATS_VARIANT_OPTIONS, READOUT_VARIANTS,  # noqa: F401
                       VARIANTS, display_name, preset_settings, variant_configs)

__all__ = ['ASSUMED_TFLOPS', 'DEFAULT_VARIANTS', 'PRESETS', 'PRESET_DEFAULTS', 'READOUT_VARIANTS',
           'SUMMARY_KEYS', 'VARIANTS', 'demo_recipe', 'display_name', 'preset_settings',
           'run_science', 'smoke_recipe', 'testbed_recipe']

# A sustained bf16 rate of one H200 (its measured peak is about 790): the summary's
# expected_images_at_250_tflops_<variant> is what a model's FLOPs would allow at this rate.
ASSUMED_TFLOPS = 250.0
SUMMARY_KEYS = (
    'device', 'images_seen_rats', 'images_seen_vit', 'images_per_second_rats',
    'images_per_second_vit', 'knn_top1_rats', 'knn_top1_vit', 'knn_top1_random_init',
    'part_miou_rats', 'part_miou_rats_broadcast', 'part_miou_vit_kmeans',
    'register_last_block_communicate_entropy', 'register_within_head_similarity',
    'registers_in_use', 'part_miou_rats_competition',
    'register_within_head_similarity_rats_competition')


class Run:
    """The output folder: summary, log and files."""

    def __init__(self, out_dir):
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir = out_dir
        self.summary = dict.fromkeys(SUMMARY_KEYS)

    def path(self, name):
        return os.path.join(self.out_dir, name)

    def log(self, message):
        line = f'[{time.strftime("%H:%M:%S")}] {message}'
        print(line, flush=True)
        with open(self.path('log.txt'), 'a') as f:  # a few lines a minute: no file kept open
            f.write(line + '\n')

    def write(self, **figures):
        """Update the summary and rewrite summary.json atomically (NaN and infinities as
        null)."""
        self.summary.update(figures)
        write_json(self.path('summary.json'), _finite(self.summary), indent=1, default=float)


def _model_figures(name, result):
    """Summary keys of one trained model: what its head reads (``embedding_<name>``, the
    ``model(x)`` its k-NN reads, and its width), the last measurement point and the speed
    (the register figures unsuffixed for ``'rats'``, suffixed ``_<name>`` for another RATS
    variant)."""
    last = result.history[-1]
    backbone = result.dino.teacher['backbone']
    embedding = embedding_of(backbone)
    out = {f'embedding_{name}': embedding,
           f'embedding_width_{name}': embedding_dim(backbone, embedding),
           f'images_seen_{name}': result.figures['images_seen'],
           f'images_per_second_{name}': result.figures['images_per_second'],
           f'knn_top1_{name}': last.get('knn_top1'),
           f'knn_top1_student_{name}': last.get('knn_top1_student'),
           f'loss_{name}': last.get('loss'),
           f'teacher_entropy_ratio_{name}': last.get('teacher_entropy_ratio'),
           f'teacher_batch_entropy_ratio_{name}': last.get('teacher_batch_entropy_ratio'),
           f'train_{name}': result.figures,
           f'collapse_{name}': last.get('collapse'),
           f'early_signs_{name}': early_signs(result.history)}
    if 'attention_by_block' in last:
        tag = _suffix(name)
        out.update({k + tag: v for k, v in last.items() if k.startswith('register')})
        out['register_attention_by_block' + tag] = last['attention_by_block']
        # step 0, before any training: was the symmetry of the registers broken at init?
        out['register_attention_by_block_at_init' + tag] = \
            result.history[0]['attention_by_block']
    return out


def _suffix(name):
    """Summary-key and file-name suffix of a RATS variant ('' for 'rats')."""
    return '' if name == 'rats' else f'_{name}'


def _export(result, path):
    """The teacher backbone as a plain float32 state dict."""
    backbone = result.dino.teacher['backbone']
    state = {k: v.detach().float().cpu() for k, v in backbone.state_dict().items()}
    save_backbone(state, path, backbone_options(backbone))
    return path


def _prepare(run, recipe, cache_dir, device, configs, seconds_per_model):
    """Data on the device, k-NN set, FLOPs; returns (images, knn, attention images, sets)."""
    start = time.perf_counter()
    sets = prepare_eval_sets(cache_dir, recipe.num_eval_objects, recipe.num_eval_scenes,
                             recipe.image_size, log=run.log)
    if recipe.train_images == 'objects':
        images = sets.bank[0]
        run.log(f'training images: the {len(images)} of {sets.objects} (training split)')
    else:
        images, _ = render_training_images(cache_dir, recipe.num_train_images,
                                           recipe.image_size, log=run.log)
    knn = KNNSet(sets.bank, sets.query, device)
    attention_images = sets.query[0][:64].to(device)
    flops = {name: train_flops_per_image(cfg, recipe) for name, cfg in configs.items()}
    run.write(data_seconds=round(time.perf_counter() - start, 1),
              num_train_images=len(images),
              **{f'train_gflops_per_image_{k}': v / 1e9 for k, v in flops.items()},
              **{f'expected_images_at_{ASSUMED_TFLOPS:.0f}_tflops_{k}':
                 ASSUMED_TFLOPS * 1e12 * seconds_per_model / v
                 for k, v in flops.items()})
    return images.to(device), knn, attention_images, sets


def _register_variants(models):
    """The names of ``models`` whose backbone is RATS (register attention), in order."""
    return [k for k, m in models.items() if m.attn_mode == 'rats']


def _final_evaluation(run, *args):
    """:func:`_evaluate`, its failure logged and written to the summary (the weights are
    written: the tools can evaluate them later)."""
    try:
        _evaluate(run, *args)
    except Exception as e:
        run.log(f'final evaluation failed ({type(e).__name__}: {e}); the trained backbones '
                'are in backbone_<variant>.pth:\n' + traceback.format_exc())
        run.write(evaluation_error=f'{type(e).__name__}: {e}')
        raise


def _evaluate(run, trained, configs, sets, recipe, seed, knn):
    """Feature probes, part mIoU, CorLoc and pictures of the trained models and their random
    inits."""
    teachers = {k: r.dino.teacher['backbone'].eval() for k, r in trained.items()}
    device = next(next(iter(teachers.values())).parameters()).device
    randoms = {}
    for name in teachers:
        torch.manual_seed(seed)  # the trained model's own init
        randoms[name] = RatsViT(**configs[name]).to(device).eval()
    figures, line = probe_teachers(teachers, randoms, knn, *eval_view_of(recipe))
    run.write(**figures)
    run.log(line)
    registers = {k: teachers[k] for k in _register_variants(teachers)}
    vit = teachers.get('vit')
    clusters = configs['rats']['num_registers']  # ViT k-means: K = the RATS register count
    figures, _ = evaluate_pretrained(
        teachers, randoms, {'': sets.objects, '_scenes': sets.scenes}, sets.scenes,
        recipe.image_size, clusters, recipe.eval_max_images)
    run.write(**figures, **{
        f'part_miou_single_segment{tag}': single_segment_miou(
            root, max_images=recipe.eval_max_images)
        for tag, root in (('', sets.objects), ('_scenes', sets.scenes))})
    run.log('part mIoU: ' + json.dumps({k: round(v, 4) for k, v in run.summary.items()
                                        if k.startswith('part_miou') and v is not None}))
    scenes = _validation_images(sets.scenes, 4)
    if registers and vit is not None:
        paths = _validation_images(sets.objects, 4) + scenes
        evaluate_part_maps({display_name(k): m for k, m in registers.items()}, vit, paths,
                           run.path('parts.png'), clusters)
    for name, model in registers.items():
        evaluate_similarity_maps(model, scenes[0], run.path(f'similarity{_suffix(name)}.png'))


def _validation_images(root, count):
    """The first ``count`` validation image files of a generated set."""
    folder = os.path.join(root, 'images', 'validation')
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))[:count]]


def run_science(out_dir, minutes=None, device='cuda', preset='gpu', seed=0, cache_dir=None,
                rats_config=None, vit_config=None, recipe=None, max_steps=None,
                variants=None, overrides=None, backbone_overrides=None, rats_overrides=None):
    """Train the RATS variants and the plain ViT for an equal share of ``minutes`` each,
    measure and evaluate them.

    Args:
        out_dir (str): Output folder (see the module docstring).
        minutes (float | None): Training time of all variants together, a cap (None: the
            preset's, else 7; 0.5 for ``'smoke'``).
        device (str): ``'cuda'`` or ``'cpu'``.
        preset (str): Recipe when ``recipe`` is None (:data:`PRESETS`): ``'gpu'``, ``'smoke'``
            (every stage in seconds), ``'demo'`` or ``'testbed'`` (:data:`PRESET_DEFAULTS`
            also choose its configs, variants and steps).
        seed (int): Seed of every variant's init, batches and crops.
        cache_dir (str | None): Where the rendered data are kept (default data/science).
        rats_config (str | None): Config of the RATS backbone (None: the preset's, else
            ``configs/science/rats_science.py``).
        vit_config (str | None): Config of the ViT backbone (None: likewise).
        recipe (Recipe | None): Replaces the preset's recipe.
        max_steps (int | None): Cap on each model's steps (None: the preset's, if any).
        variants (Sequence[str] | None): Which of ``VARIANTS`` to train, each for an equal
            share of ``minutes`` (None: the preset's, else ``DEFAULT_VARIANTS``).
        overrides (dict | None): :class:`Recipe` fields replaced in the preset.
        backbone_overrides (dict | None): ``RatsViT`` arguments of every model (e.g.
            ``{'init_values': 1e-5}``, LayerScale).
        rats_overrides (dict | None): ``RatsViT`` arguments of the RATS variants only (e.g.
            ``{'num_registers': 24}``, a wider bottleneck).

    Returns:
        dict: The summary (also in ``out_dir/summary.json``).
    """
    device = _setup_device(device)
    minutes, variants, rats_config, vit_config, max_steps = preset_settings(
        preset, minutes, variants, rats_config, vit_config, max_steps)
    recipe = _resolve_recipe(recipe, preset, overrides)
    configs, described = variant_configs(
        rats_config, vit_config, backbone_overrides, rats_overrides, recipe.embedding)
    seconds_per_model = 60.0 * minutes / len(variants)
    run = _start_run(out_dir, device, recipe, dict(
        seed=seed, minutes=minutes, preset=preset, seconds_per_model=seconds_per_model,
        configs=described, variants=variants, backbone_overrides=backbone_overrides or {},
        rats_overrides=rats_overrides or {}))
    images, knn, attention_images, sets = _prepare(
        run, recipe, cache_dir or os.path.join('data', 'science'), device,
        {k: configs[k] for k in variants}, seconds_per_model)
    _views_and_chance(run, recipe, images, knn, configs['rats'], seed)
    trained = _train_variants(run, variants, configs, (images, knn, attention_images), recipe,
                              dict(seconds=seconds_per_model, device=device, seed=seed,
                                   max_steps=max_steps, autocast_dtype=torch.bfloat16
                                   if device.type == 'cuda' else None))
    if trained:
        _final_evaluation(run, trained, configs, sets, recipe, seed, knn)
    run.log('summary: ' + json.dumps({k: run.summary.get(k) for k in SUMMARY_KEYS}))
    return run.summary


def _start_run(out_dir, device, recipe, settings):
    """The output folder with the run's settings written; a note when the GPU recipe is
    run on a CPU."""
    run = Run(out_dir)
    run.write(device=_describe_device(device), torch=torch.__version__,
              recipe=recipe.to_dict(), **settings)
    if device.type == 'cpu' and settings['preset'] == 'gpu' and recipe.batch_size >= 256:
        run.log(f'note: the GPU recipe (batch {recipe.batch_size}) on a CPU takes a few '
                'seconds per step and plans few steps; --preset testbed is sized for two '
                'CPU cores')
    return run


def _train_variants(run, variants, configs, data, recipe, options):
    """Train each variant in turn; write its figures, export its teacher and redraw the
    curves as soon as it is trained.

    Args:
        run (Run): The output folder.
        variants (list[str]): Names to train, in order.
        configs (dict): ``{name: RatsViT kwargs}``.
        data (tuple): Training images, :class:`KNNSet` and attention images, on the device.
        recipe (Recipe): The recipe.
        options (dict): ``seconds`` (per model), ``device``, ``seed``, ``autocast_dtype``,
            ``max_steps``.

    Returns:
        dict: ``{name: TrainResult}`` of the models that did not diverge.
    """
    images, knn, attention_images = data
    trained, histories = {}, {}
    for name in variants:
        def on_point(history, name=name):
            histories[name] = history
            run.write(history={**run.summary.get('history', {}), name: history})
        result = train_model(
            name, configs[name], images, knn, attention_images, recipe, options['seconds'],
            options['device'], options['seed'], options['autocast_dtype'], on_point, run.log,
            options['max_steps'])
        run.write(**_model_figures(name, result))
        if _diverged(result):  # NaN weights: nothing to export or evaluate
            run.log(f'[{name}] diverged (loss {result.history[-1].get("loss")} at step '
                    f'{result.figures["steps"]}): not exported, left out of the final '
                    'evaluation')
            continue
        trained[name] = result
        _export(result, run.path(f'backbone_{name}.pth'))
        render_curves({display_name(k): v for k, v in histories.items()},
                      run.path('curves.png'))
    return trained


def _views_and_chance(run, recipe, images, knn, rats_kwargs, seed):
    """``views.png`` (the multi-crop views of the first images) and the k-NN top-1 of the
    RATS at its init (``knn_top1_random_init``, the chance level to beat)."""
    device = images.device
    views = DeviceMultiCrop(**recipe.multicrop_kwargs())(
        images[:4], generator=torch.Generator(device=device).manual_seed(seed))
    render_views(views, run.path('views.png'))
    torch.manual_seed(seed)
    random_rats = RatsViT(**rats_kwargs).to(device).eval()
    run.write(knn_top1_random_init=knn.top1(random_rats, recipe.global_crop_size,
                                            recipe.augmentation.get('grayscale_p', 0) >= 1))


def _describe_device(device):
    """The device's name for the summary (a GPU's model; a CPU's processor and threads)."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)'


def _diverged(result):
    """Whether a model stopped on a non-finite loss (its last point's)."""
    return bool(result.figures.get('diverged'))


def _finite(obj):
    """``obj`` with every NaN / infinite float replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _setup_device(device):
    """The torch device; on CUDA, TF32 matrix products for what runs outside autocast."""
    device = torch.device(device)
    if device.type == 'cuda':
        if not enable_tf32():
            raise RuntimeError('--device cuda: no CUDA device is visible; use --device cpu')
    return device


def _resolve_recipe(recipe, preset, overrides):
    """The preset's recipe (unless one is given) with the overrides."""
    if recipe is None:
        if preset not in PRESETS:
            raise ValueError(f'preset={preset!r} is not one of {sorted(PRESETS)}')
        recipe = PRESETS[preset]()
    return replace(recipe, **(overrides or {}))
