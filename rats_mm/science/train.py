"""Training one model of the emergence run for a fixed time on the device.

Images live on the device as uint8; every step draws a batch with an on-device permutation,
makes the multi-crop views with :class:`~rats_mm.ssl.DeviceMultiCrop` and runs
:func:`~rats_mm.ssl.distill.train_step`: no DataLoader, no per-image Python, no host
synchronisation between two measurement points. A short probe times the step first, and the
schedules (warm-up, cosine learning rate, weight decay, teacher momentum) are sized so that
they end when the time does.
"""
import math
import statistics
import time

import torch

from ..models import RatsViT, compile_static
from ..ssl.collapse import COLLAPSE_ADVICE, collapse_state, first_sign
from ..ssl.device_multicrop import DeviceMultiCrop
from ..ssl.distill import DINODistillation, StepSettings, build_optimizer, train_step
from .measure import measure_point
from .recipe import head_embedding, plan_steps, step_settings

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


def _first_sign_sentence(history):
    """'; <the diagnostic that moved first>' of a history, or '' when none moved."""
    sign = first_sign(history)
    return f'; {sign}' if sign else ''


class TrainResult:
    """What :func:`train_model` returns: the model, its history and its figures."""

    def __init__(self, dino, history, figures):
        self.dino, self.history, self.figures = dino, history, figures


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _probe(dino, optimizer, draw, device, autocast_dtype):
    """Seconds per step: the median of single steps timed on real batches with a zero
    learning rate and a frozen teacher (the median, so that a stalled step does not set the
    plan: on two shared cores a mean of 2.85 s planned 286 steps where ~2.2 s steps ran). Nothing
    learns: student and teacher keep their weights, and the DINO centre, the loss's last
    targets, the gradients and the optimizer's state are put back as they were (the
    probe's batches would otherwise have moved the centre before step 0)."""
    frozen = StepSettings(lr=0.0, weight_decay=0.0, momentum=1.0, teacher_temp=0.04)
    criterion = {k: v.clone() for k, v in dino.criterion.state_dict().items()}
    last_targets = dino.criterion._last_targets
    times = []
    for i in range(PROBE_WARMUP + PROBE_STEPS):
        _sync(device)
        start = time.perf_counter()
        train_step(dino, optimizer, draw(), frozen, autocast_dtype)
        _sync(device)
        if i >= PROBE_WARMUP:
            times.append(time.perf_counter() - start)
    optimizer.state.clear()
    optimizer.zero_grad(set_to_none=True)
    dino.criterion.load_state_dict(criterion)
    dino.criterion._last_targets = last_targets
    return statistics.median(times)


def _build(backbone_kwargs, recipe, device, seed):
    """The model, its optimizer and the device augmentation."""
    torch.manual_seed(seed)
    backbone = RatsViT(**backbone_kwargs)
    dino = DINODistillation(backbone, head=recipe.head, loss=dict(centering=recipe.centering),
                            embedding=head_embedding(backbone)).to(device).train()
    if recipe.compile:  # forward_blocks, which both embeddings go through; same names
        for branch in (dino.student, dino.teacher):
            compile_static(branch['backbone'])
    optimizer = build_optimizer(dino.student, recipe.lr, recipe.weight_decay[0])
    aug = DeviceMultiCrop(**recipe.multicrop_kwargs())
    return dino, optimizer, aug


class _Trainer:
    """One model's run: its measurement points, its probe and its training loop."""

    def __init__(self, name, dino, optimizer, draw, measure, recipe, device, autocast_dtype,
                 on_point, log):
        self.name, self.dino, self.optimizer, self.draw = name, dino, optimizer, draw
        self.measure, self.recipe, self.device = measure, recipe, device
        self.autocast_dtype, self.on_point, self.log = autocast_dtype, on_point, log
        self.history, self.start = [], time.perf_counter()

    def record(self, step, total, loss_sum=None, count=0, grad_max=None):
        """Add a measurement point (mean loss and largest gradient norm since the last one)."""
        point = {'step': step, 'images_seen': step * self.recipe.batch_size,
                 'seconds': round(time.perf_counter() - self.start, 2)}
        if count:  # one sync for both
            loss_mean, grad = torch.stack([loss_sum / count, grad_max]).tolist()
            point.update(loss=loss_mean, grad_norm_max=grad)
        point.update(self.measure())
        self._check_collapse(point)
        self.history.append(point)
        self.log(f'[{self.name}] step {step}/{total}: ' + ', '.join(
            f'{k} {v:.4g}' for k, v in point.items() if isinstance(v, float)))
        if self.on_point:
            self.on_point(self.history)

    def _check_collapse(self, point):
        """Name a collapse in the point and the log when two points in a row show one."""
        if 'teacher_entropy_ratio' not in point:
            return
        ratios = (point['teacher_entropy_ratio'], point['teacher_batch_entropy_ratio'])
        if not all(math.isfinite(r) for r in ratios):
            point['collapse'] = 'non-finite'
            return
        state = collapse_state(*ratios)
        point['collapse'] = state
        if state and self.history and self.history[-1].get('collapse') == state:
            self.log(f'[{self.name}] WARNING: DINO looks collapsed ({state}) at step '
                     f'{point["step"]} and the point before (target entropy '
                     f'{point["teacher_entropy_ratio"]:.3f} x ln K, batch-mean '
                     f'{point["teacher_batch_entropy_ratio"]:.3f} x ln K): '
                     f'{COLLAPSE_ADVICE[state]}' + _first_sign_sentence(
                         self.history + [point]))

    def plan(self, seconds, max_steps):
        """Probe the step, time a warm measurement; (total steps, interval, step seconds)."""
        step_seconds = _probe(self.dino, self.optimizer, self.draw, self.device,
                              self.autocast_dtype)
        t0 = time.perf_counter()  # a measurement once warm (the first one paid the start)
        self.measure()
        measure_seconds = time.perf_counter() - t0
        left = seconds - (time.perf_counter() - self.start)
        total = plan_steps(left, step_seconds, measure_seconds, self.recipe.num_measurements)
        cut = bool(max_steps) and total < max_steps
        total = min(total, max_steps or total)
        every = max(1, math.ceil(total / self.recipe.num_measurements))
        self.log(f'[{self.name}] {step_seconds * 1000:.1f} ms per step of '
                 f'{self.recipe.batch_size} images ({self.recipe.batch_size / step_seconds:.0f} '
                 f'images/s); {total} steps planned, measured every {every}'
                 + (f' (the time budget cuts the {max_steps} steps asked for: the schedules '
                    'are shortened, so this run is not comparable with a full one; give more '
                    '--minutes)' if cut else ''))
        return total, every, step_seconds

    def _stop_reason(self, step, total, seconds):
        """Why to stop after a measurement point (None: go on)."""
        if not math.isfinite(self.history[-1]['loss']):
            return f'non-finite DINO loss at step {step}'
        if step < total and time.perf_counter() - self.start > 1.15 * seconds:
            return f'time budget exceeded at step {step} of {total}'
        return None

    def train(self, total, every, seconds):
        """Run the steps; (steps done, seconds spent in steps, why it stopped early)."""
        loss_sum, grad_max, count, step, train_seconds = None, None, 0, 0, 0.0
        while step < total:
            t0 = time.perf_counter()
            settings = StepSettings(**step_settings(step, total, self.recipe))
            loss, grad_norm = train_step(self.dino, self.optimizer, self.draw(), settings,
                                         self.autocast_dtype)
            loss_sum = loss if loss_sum is None else loss_sum + loss
            grad_max = grad_norm if grad_max is None else torch.maximum(grad_max, grad_norm)
            count, step = count + 1, step + 1
            if step % every and step != total:  # queued, not waited for
                train_seconds += time.perf_counter() - t0
                continue
            _sync(self.device)
            train_seconds += time.perf_counter() - t0
            self.record(step, total, loss_sum, count, grad_max)
            loss_sum, grad_max, count = None, None, 0
            stopped = self._stop_reason(step, total, seconds)
            if stopped:
                self.log(f'[{self.name}] stopping: {stopped}')
                return step, train_seconds, stopped
        return step, train_seconds, None


def train_model(name, backbone_kwargs, images, knn, attention_images, recipe, seconds,
                device, seed=0, autocast_dtype=None, on_point=None, log=print, max_steps=None):
    """Train one backbone with DINO for ``seconds`` (probe and measurements included).

    Args:
        name (str): For the log.
        backbone_kwargs (dict): ``RatsViT`` arguments.
        images (Tensor): (M, 3, S, S) uint8 training images on ``device``.
        knn (KNNSet): k-NN data on the device.
        attention_images (Tensor): uint8 images for the register figures and the collapse
            diagnostics.
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
        (``images_seen``, ``images_per_second``, ``steps``, ``steps_planned`` (fewer than
        ``steps_asked``, ``max_steps``, where the time budget cut the schedule),
        ``step_seconds_probe``,
        ``stopped_early``: why it stopped before its plan, ``diverged``: whether its last
        loss was not finite, ...).
    """
    dino, optimizer, aug = _build(backbone_kwargs, recipe, device, seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    sampler = BatchSampler(images.shape[0], recipe.batch_size, gen, device)

    def draw():
        return aug(images[sampler.next()], generator=gen)

    def measure():
        return measure_point(dino, knn, attention_images, recipe, autocast_dtype, optimizer)

    trainer = _Trainer(name, dino, optimizer, draw, measure, recipe, device, autocast_dtype,
                       on_point, log)
    trainer.record(0, '?')
    total, every, step_seconds = trainer.plan(seconds, max_steps)
    steps, train_seconds, stopped = trainer.train(total, every, seconds)
    figures = {'steps': steps, 'steps_planned': total, 'steps_asked': max_steps,
               'images_seen': steps * recipe.batch_size, 'step_seconds_probe': step_seconds,
               'images_per_second': steps * recipe.batch_size / max(train_seconds, 1e-9),
               'seconds': round(time.perf_counter() - trainer.start, 1),
               'stopped_early': stopped,
               'diverged': not math.isfinite(trainer.history[-1].get('loss', 0.0))}
    return TrainResult(dino, trainer.history, figures)
