"""The emergence run's recipe: models from ``configs/science/``, crops, optimisation, the
FLOPs of one training image and the schedules sized from a measured step time.

The config files are plain Python (no ``_base_``), read here with ``runpy`` so the run needs
no mmengine; ``rats_mm.runtime.backbones`` reads the same files with mmengine for the
analysis tools.
"""
import math
import os
import runpy
from dataclasses import asdict, dataclass, field

from ..models import RatsViT
from ..models.complexity import model_macs
from ..models.embedding import embedding_dim, embedding_of
from ..ssl.schedules import cosine_schedule

__all__ = ['Recipe', 'backbone_config', 'head_embedding', 'plan_steps', 'step_settings',
           'train_flops_per_image']

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RATS_CONFIG = os.path.join(ROOT, 'configs', 'science', 'rats_science.py')
VIT_CONFIG = os.path.join(ROOT, 'configs', 'science', 'vit_science.py')


def backbone_config(path):
    """``model['backbone']`` of a plain-Python config file, as ``RatsViT`` arguments.

    Args:
        path (str): Config file (no ``_base_``: the science configs are self-contained).

    Returns:
        dict: The backbone arguments.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'config file {path} does not exist')
    namespace = runpy.run_path(path)
    if '_base_' in namespace:
        raise ValueError(f'{path}: science configs must be self-contained (no _base_), so the '
                         'run can read them without mmengine')
    backbone = dict((namespace.get('model') or {}).get('backbone') or {})
    if not backbone:
        raise KeyError(f'{path}: no model.backbone in the config')
    backbone.pop('type', None)
    try:
        RatsViT(**backbone)
    except TypeError as e:
        raise ValueError(f'{path}: model.backbone is not RatsViT arguments: {e}') from None
    return backbone


def head_embedding(model):
    """What the DINO head of ``model`` reads: what ``model(x)`` returns (its
    ``global_pool``: the run builds a RATS with ``recipe.embedding``'s pool unless its
    variant names another)."""
    return embedding_of(model)


@dataclass
class Recipe:
    """Everything that decides a run besides the models and the time.

    Defaults are the GPU run's: the demo's photometric choices (grayscale views, no jitter,
    blur or solarisation, which avoid the collapse on these images: docs/architecture.md
    section 6) with DINO's multi-crop (2 x 64 px global, 4 x 32 px local views) and DINO's
    ViT-S optimisation (AdamW, lr 5e-4 x batch / 256, warm-up 10 %, cosine, weight decay
    0.04 -> 0.4, teacher temperature 0.04, momentum 0.996 -> 1, per-parameter clipping 3,
    last layer frozen for the first 1 % of the steps).
    """
    batch_size: int = 1024
    image_size: int = 96
    num_train_images: int = 65536
    global_crop_size: int = 64
    local_crop_size: int = 32
    local_crops_number: int = 4
    global_crops_scale: tuple = (0.4, 1.0)
    local_crops_scale: tuple = (0.1, 0.4)
    augmentation: dict = field(default_factory=lambda: dict(
        grayscale_p=1.0, color_jitter_p=0.0, blur_p=(0.0, 0.0, 0.0), solarize_p=0.0))
    head: dict = field(default_factory=lambda: dict(out_dim=8192, hidden_dim=2048,
                                                    bottleneck_dim=256))
    centering: str = 'centering'
    embedding: str = 'pooled'       # what a RATS head reads (models.embedding.EMBEDDINGS)
    compile: bool = False           # torch.compile the backbones (student and teacher)
    base_lr: float = 5e-4          # per 256 images
    min_lr: float = 1e-6
    warmup_fraction: float = 0.1
    weight_decay: tuple = (0.04, 0.4)
    teacher_temp: float = 0.04
    momentum: tuple = (0.996, 1.0)
    clip_grad: float = 3.0
    freeze_last_layer_fraction: float = 0.01
    num_measurements: int = 10
    eval_max_images: int = 0        # 0: every held-out image
    num_eval_objects: int = 2000
    num_eval_scenes: int = 1000
    train_images: str = 'rendered'  # or 'objects': the held-out objects' training split

    @property
    def lr(self):
        return self.base_lr * self.batch_size / 256

    def to_dict(self):
        return asdict(self)

    def multicrop_kwargs(self):
        """``DeviceMultiCrop`` (and ``MultiCropAugmentation``) arguments of the recipe."""
        return dict(global_crops_scale=self.global_crops_scale,
                    local_crops_scale=self.local_crops_scale,
                    local_crops_number=self.local_crops_number,
                    global_crop_size=self.global_crop_size,
                    local_crop_size=self.local_crop_size, **self.augmentation)


def train_flops_per_image(backbone_kwargs, recipe):
    """FLOPs (2 x multiply-accumulates) of one training image: the student's forward and
    backward (3 x forward) on every view plus the teacher's forward on the global views,
    backbone and head, matrix products only.

    Args:
        backbone_kwargs (dict): ``RatsViT`` arguments.
        recipe (Recipe): Crops and head.

    Returns:
        float: FLOPs per image.
    """
    model = RatsViT(**backbone_kwargs)
    head = recipe.head
    in_dim = embedding_dim(model, head_embedding(model))
    head_macs = (in_dim * head['hidden_dim'] + head['hidden_dim'] ** 2
                 + head['hidden_dim'] * head['bottleneck_dim']
                 + head['bottleneck_dim'] * head['out_dim'])
    g, s = recipe.global_crop_size, recipe.local_crop_size
    global_macs = model_macs(model, g, g) + head_macs
    local_macs = model_macs(model, s, s) + head_macs
    student = 3 * (2 * global_macs + recipe.local_crops_number * local_macs)
    teacher = 2 * global_macs
    return 2.0 * (student + teacher)


def plan_steps(seconds_left, step_seconds, measure_seconds, num_measurements, min_steps=1):
    """Training steps that fit the time left, measurements included.

    Args:
        seconds_left (float): Training time still available.
        step_seconds (float): Measured seconds per step.
        measure_seconds (float): Measured seconds per measurement point.
        num_measurements (int): Measurement points still to come.
        min_steps (int): Floor of the answer.

    Returns:
        int: Number of steps.
    """
    usable = seconds_left - measure_seconds * num_measurements
    return max(min_steps, int(usable / max(step_seconds, 1e-9)))


def step_settings(step, total_steps, recipe):
    """The scheduled values of one step (DINO's schedules, sized to ``total_steps``).

    Args:
        step (int): Step index, 0-based.
        total_steps (int): Length of the run.
        recipe (Recipe): The recipe.

    Returns:
        dict: ``lr``, ``weight_decay``, ``momentum``, ``teacher_temp``, ``clip_grad``,
        ``freeze_last_layer`` (``StepSettings`` fields).
    """
    warmup = int(math.ceil(recipe.warmup_fraction * total_steps))
    frozen = int(math.ceil(recipe.freeze_last_layer_fraction * total_steps))
    return dict(
        lr=cosine_schedule(step, total_steps, recipe.lr, recipe.min_lr, warmup),
        weight_decay=cosine_schedule(step, total_steps, *recipe.weight_decay),
        momentum=cosine_schedule(step, total_steps, *recipe.momentum),
        teacher_temp=recipe.teacher_temp, clip_grad=recipe.clip_grad,
        freeze_last_layer=step < frozen)
