"""Training one model of the emergence run for a fixed time on the device.

Images live on the device as uint8; every step draws a batch with an on-device permutation,
makes the multi-crop views with :class:`~rats_mm.ssl.DeviceMultiCrop` and runs
:func:`~rats_mm.ssl.distill.train_step`: no DataLoader, no per-image Python, no host
synchronisation between two measurement points. A short probe times the step first, and the
schedules (warm-up, cosine learning rate, weight decay, teacher momentum) are sized so that
they end when the time does.
"""
import math
import time

import torch

from ..models import RatsViT
from ..ssl.device_multicrop import DeviceMultiCrop
from ..ssl.distill import DINODistillation, StepSettings, build_optimizer, train_step
from .measure import measure_point
from .recipe import plan_steps, step_settings

__all__ = ['BatchSampler', 'TrainResult', 'train_model']

PROBE_WARMUP, PROBE_STEPS = 3, 8


class BatchSampler:
    """Batches of indices without replacement within an epoch, drawn on the device."""

    def __init__(self, num_items, batch_size, generator, device):
        if batch_size > num_items:
            raise ValueError(f'batch_size={batch_size} exceeds the {num_items} training images')
        self.num_items, self.batch_size = num_items, batch_size
        self.generator, self.device = generator, device
        self.perm, self.pos = None, num_items

    def next(self):
        """(batch_size,) int64 indices on the device."""
        if self.pos + self.batch_size > self.num_items:
            self.perm = torch.randperm(self.num_items, generator=self.generator,
                                       device=self.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx


class TrainResult:
    """What :func:`train_model` returns: the model, its history and its figures."""

    def __init__(self, dist, history, figures):
        self.dist, self.history, self.figures = dist, history, figures


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _probe(dist, optimizer, draw, device, autocast_dtype):
    """Seconds per step, timed on real batches with a zero learning rate and a frozen
    teacher (nothing learns; the optimizer's moments are reset afterwards)."""
    frozen = StepSettings(lr=0.0, weight_decay=0.0, momentum=1.0, teacher_temp=0.04)
    for i in range(PROBE_WARMUP + PROBE_STEPS):
        if i == PROBE_WARMUP:
            _sync(device)
            start = time.perf_counter()
        train_step(dist, optimizer, draw(), frozen, autocast_dtype)
    _sync(device)
    optimizer.state.clear()
    return (time.perf_counter() - start) / PROBE_STEPS


def _build(backbone_kwargs, recipe, device, seed):
    """The model, its optimizer and the device augmentation."""
    torch.manual_seed(seed)
    backbone = RatsViT(**backbone_kwargs)
    embedding = recipe.embedding if backbone.attn_mode == 'rats' else 'pooled'
    dist = DINODistillation(backbone, head=recipe.head, loss=dict(centering=recipe.centering),
                            embedding=embedding).to(device).train()
    optimizer = build_optimizer(dist.student, recipe.lr, recipe.weight_decay[0])
    aug = DeviceMultiCrop(**recipe.multicrop_kwargs())
    return dist, optimizer, aug


def train_model(name, backbone_kwargs, images, knn, attention_images, recipe, seconds,
                device, seed=0, autocast_dtype=None, on_point=None, log=print, max_steps=None):
    """Train one backbone with DINO for ``seconds`` (probe and measurements included).

    Args:
        name (str): For the log.
        backbone_kwargs (dict): ``RatsViT`` arguments.
        images (Tensor): (M, 3, S, S) uint8 training images on ``device``.
        knn (KNNSet): k-NN data on the device.
        attention_images (Tensor): uint8 images for the register figures.
        recipe (Recipe): The recipe.
        seconds (float): Time budget.
        device (torch.device): Where it runs.
        seed (int): Seed of the init, the batches and the crops.
        autocast_dtype (torch.dtype | None): bf16 on a GPU.
        on_point (callable | None): Called with the history after every measurement.
        log (callable): Progress messages.
        max_steps (int | None): Cap on the planned steps.

    Returns:
        TrainResult: The trained model, its measurement points and its figures
        (``images_seen``, ``images_per_second``, ``steps``, ``step_seconds``, ...).
    """
    start = time.perf_counter()
    dist, optimizer, aug = _build(backbone_kwargs, recipe, device, seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    sampler = BatchSampler(images.shape[0], recipe.batch_size, gen, device)

    def draw():
        return aug(images[sampler.next()], generator=gen)

    history = []

    def record(step, total, loss_sum=None, count=0, grad_max=None):
        t0 = time.perf_counter()
        point = {'step': step, 'images_seen': step * recipe.batch_size,
                 'seconds': round(t0 - start, 2)}
        if count:  # one sync for both
            loss_mean, grad = torch.stack([loss_sum / count, grad_max]).tolist()
            point.update(loss=loss_mean, grad_norm_max=grad)
        point.update(measure_point(dist, knn, attention_images, recipe, autocast_dtype))
        history.append(point)
        log(f'[{name}] step {step}/{total}: ' + ', '.join(
            f'{k} {v:.4g}' for k, v in point.items() if isinstance(v, float)))
        if on_point:
            on_point(history)
        return time.perf_counter() - t0

    record(0, '?')
    step_seconds = _probe(dist, optimizer, draw, device, autocast_dtype)
    t0 = time.perf_counter()  # a measurement's cost once warm (the first one pays the start)
    measure_point(dist, knn, attention_images, recipe, autocast_dtype)
    measure_seconds = time.perf_counter() - t0
    left = seconds - (time.perf_counter() - start)
    total = plan_steps(left, step_seconds, measure_seconds, recipe.num_measurements, 1)
    total = min(total, max_steps or total)
    every = max(1, math.ceil(total / recipe.num_measurements))
    log(f'[{name}] {step_seconds * 1000:.1f} ms per step of {recipe.batch_size} images '
        f'({recipe.batch_size / step_seconds:.0f} images/s); {total} steps planned, '
        f'measured every {every}')
    loss_sum, grad_max, count, step, train_seconds, stopped = None, None, 0, 0, 0.0, None
    while step < total:
        t0 = time.perf_counter()
        loss, grad_norm = train_step(dist, optimizer, draw(),
                                     StepSettings(**step_settings(step, total, recipe)),
                                     autocast_dtype)
        loss_sum = loss if loss_sum is None else loss_sum + loss
        grad_max = grad_norm if grad_max is None else torch.maximum(grad_max, grad_norm)
        count, step = count + 1, step + 1
        if step % every == 0 or step == total:
            _sync(device)
            train_seconds += time.perf_counter() - t0
            record(step, total, loss_sum, count, grad_max)
            if not math.isfinite(history[-1]['loss']):
                stopped = f'non-finite DINO loss at step {step}'
                log(f'[{name}] stopping: {stopped}')
                break
            loss_sum, grad_max, count = None, None, 0
            if step < total and time.perf_counter() - start > 1.15 * seconds:
                stopped = f'time budget exceeded at step {step} of {total}'
                log(f'[{name}] stopping: {stopped}')
                break
        else:
            train_seconds += time.perf_counter() - t0
    figures = {'steps': step, 'steps_planned': total, 'images_seen': step * recipe.batch_size,
               'step_seconds_probe': step_seconds,
               'images_per_second': step * recipe.batch_size / max(train_seconds, 1e-9),
               'seconds': round(time.perf_counter() - start, 1), 'stopped_early': stopped}
    return TrainResult(dist, history, figures)
