"""mmengine hooks for DINO pretraining: schedules, throughput, collapse warnings, k-NN,
register attention."""
import json
import os

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import DATASETS, HOOKS, MODELS

from ..analysis.probes.features import extract_features
from ..analysis.probes.classifiers import contiguous_labels
from ..analysis.registers.attention import register_attention_profile
from ..files import write_json
from ..ssl import cosine_schedule, knn_accuracy, linear_warmup_then_constant
from ..ssl.collapse import COLLAPSE_ADVICE, collapse_state, first_sign
from ..ssl.checks import check_int


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def first_global_views(runner, data_batch, num_images):
    """The first ``num_images`` global crops of ``data_batch`` as the model sees them
    (normalised on the CPU), for monitors that measure a fixed batch all run long."""
    crops = data_batch['inputs'][0][:num_images]                          # (b, 3, s, s)
    crops = _unwrap(runner.model).data_preprocessor({'inputs': crops}, False)['inputs']
    return crops.detach().cpu().clone()


def _append_record(path, record):
    """Append ``record`` to the JSON list in ``path`` (created if absent; the file is
    rewritten atomically, so a kill mid-write leaves the previous list)."""
    history = []
    if os.path.exists(path):
        with open(path) as f:
            history = json.load(f)
    history.append(record)
    write_json(path, history, indent=1)


@HOOKS.register_module()
class DINOScheduleHook(Hook):
    """Sets the teacher momentum (cosine) and temperature (linear warm-up) every iteration.

    Values are functions of ``runner.iter``, so a resumed run continues the same schedules.
    (Learning rate and weight decay use mmengine's param schedulers.)

    Args:
        momentum (tuple): Teacher EMA momentum (start, end), DINO: (0.996, 1.0).
        teacher_temp (tuple): Teacher temperature (start, end), DINO: (0.04, 0.07).
        teacher_temp_warmup_iters (int): Iterations of the temperature warm-up.
    """

    priority = 'NORMAL'

    def __init__(self, momentum=(0.996, 1.0), teacher_temp=(0.04, 0.07),
                 teacher_temp_warmup_iters=0):
        self.momentum = momentum
        self.teacher_temp = teacher_temp
        self.teacher_temp_warmup_iters = teacher_temp_warmup_iters

    def before_train(self, runner):
        """The model reads its teacher diagnostics once per logger interval (a device sync
        each time), not at every step."""
        loggers = [h for h in runner.hooks if type(h).__name__ == 'LoggerHook']
        if loggers:
            _unwrap(runner.model).stats_interval = max(1, int(loggers[0].interval))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = _unwrap(runner.model)
        step = runner.iter
        model.current_iter = step
        model.teacher_momentum = cosine_schedule(step, runner.max_iters, *self.momentum)
        model.teacher_temp = linear_warmup_then_constant(
            step, self.teacher_temp_warmup_iters, *self.teacher_temp)


@HOOKS.register_module()
class ThroughputHook(Hook):
    """Logs ``images_per_s``: images of all processes per second of the last iteration.

    Runs after ``IterTimerHook`` has recorded the iteration time and before ``LoggerHook``.
    """

    priority = 55  # between NORMAL (50, IterTimerHook) and BELOW_NORMAL (60, LoggerHook)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        iter_time = runner.message_hub.get_scalar('train/time').current()
        loader = runner.train_dataloader
        if iter_time > 0:
            runner.message_hub.update_scalar(
                'train/images_per_s', loader.batch_size * runner.world_size / iter_time)


@HOOKS.register_module()
class CollapseMonitorHook(Hook):
    """Says in the log when the DINO teacher has collapsed, and to what.

    Reads the teacher-target diagnostics the model logs every ``stats_interval`` iterations
    (``teacher_entropy_ratio``: mean per-image target entropy / ln K; ``teacher_batch_entropy_
    ratio``: entropy of the batch-mean target / ln K). Uniform collapse: every target is flat
    (per-image ratio near 1). One-hot collapse: every image gets the same prototype
    (batch ratio near 0). After ``patience`` consecutive iterations in either state it logs a
    warning naming the state and what to try, then again every ``patience`` iterations while
    it lasts; ``collapse_warnings`` counts them in the scalars. When the run also has a
    ``CollapseDiagnosticsHook``, the warning names the diagnostic that moved first
    (``rats_mm.ssl.collapse.first_sign`` over its records: merge, value growth or
    embedding cosine) and what to try for it.

    Args:
        patience (int): Consecutive collapsed iterations before a warning (each reading
            counts for the model's ``stats_interval`` iterations).
        uniform_ratio (float): Per-image entropy ratio above which targets count as uniform.
        onehot_ratio (float): Batch entropy ratio below which targets count as one-hot.
    """

    priority = 'BELOW_NORMAL'

    ADVICE = COLLAPSE_ADVICE

    def __init__(self, patience=100, uniform_ratio=0.9, onehot_ratio=0.1):
        check_int('patience', patience, 1)
        self.patience, self.uniform_ratio, self.onehot_ratio = (
            patience, uniform_ratio, onehot_ratio)
        self.state, self.stretch, self.warnings = None, 0, 0

    def classify(self, entropy_ratio, batch_entropy_ratio):
        """``'uniform'``, ``'one-hot'`` or None for one iteration's diagnostics."""
        return collapse_state(entropy_ratio, batch_entropy_ratio, self.uniform_ratio,
                              self.onehot_ratio)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        outputs = outputs or {}
        if 'teacher_entropy_ratio' not in outputs:
            return
        state = self.classify(float(outputs['teacher_entropy_ratio']),
                              float(outputs['teacher_batch_entropy_ratio']))
        # one reading stands for the iterations since the last one (the model's interval)
        model = getattr(runner, 'model', None)
        seen = max(1, int(getattr(_unwrap(model), 'stats_interval', 1))) if model else 1
        before = self.stretch if state is not None and state == self.state else 0
        self.stretch = before + seen if state is not None else 0
        self.state = state
        if state is not None and self.stretch // self.patience > before // self.patience:
            self.warnings += 1
            runner.logger.warning(
                f'DINO looks collapsed ({state}) for the last {self.stretch} iterations '
                f'(iteration {runner.iter + 1}: target entropy '
                f'{float(outputs["teacher_entropy_ratio"]):.3f} x ln K, batch-mean entropy '
                f'{float(outputs["teacher_batch_entropy_ratio"]):.3f} x ln K): '
                f'{self.ADVICE[state]}.' + _first_sign_of(runner))
        runner.message_hub.update_scalar('train/collapse_warnings', self.warnings)


def _first_sign_of(runner):
    """' <first sign>.' from the run's CollapseDiagnosticsHook records ('' without one)."""
    for hook in getattr(runner, 'hooks', None) or getattr(runner, '_hooks', []):
        records = getattr(hook, 'records', None)
        if type(hook).__name__ == 'CollapseDiagnosticsHook' and records:
            sign = first_sign(records, step_key='iter')
            return f' Diagnostics, {sign}.' if sign else ''
    return ''


@torch.no_grad()
def knn_top1(network, bank, query, k=20, temperature=0.07, batch_size=64, num_workers=2,
             device='cpu'):
    """Weighted k-NN top-1 accuracy of an embedding network (DINO's k-NN evaluation).

    Args:
        network (nn.Module): Maps (B, 3, H, W) images to (B, D) embeddings (eval mode).
        bank (ImageFolderDataset): Labelled reference images (single-view transform).
        query (ImageFolderDataset): Labelled images to classify.
        k (int): Neighbours.
        temperature (float): Vote temperature.
        batch_size (int): Images per forward.
        num_workers (int): Loader workers per rank.
        device (str | torch.device): Where the network runs.

    Returns:
        float: Top-1 accuracy in [0, 1]; a query whose label is absent from the bank counts
        as wrong.
    """
    bank_x, bank_y = extract_features(network, bank, batch_size, num_workers, device)
    query_x, query_y = extract_features(network, query, batch_size, num_workers, device)
    bank_y, query_y, num_classes = contiguous_labels(bank_y, query_y)
    return knn_accuracy(bank_x, bank_y, query_x, query_y, num_classes, k, temperature)


def random_init_knn(config, root='.', seed=0):
    """k-NN top-1 of a pretraining config's network at its initialisation, with the same
    k-NN monitor settings and data as its training run: the chance level to beat.

    Args:
        config (str): Pretraining config with a ``KNNMonitorHook`` in ``custom_hooks``.
        root (str): Folder that the config's relative ``data_root`` starts from (the
            repository root, where the tools run).
        seed (int): Seed of the init.

    Returns:
        float: The teacher's (= the student's, at init) k-NN top-1 in [0, 1].
    """
    cfg = Config.fromfile(config)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    monitor = next((h for h in cfg.custom_hooks if h['type'] == 'KNNMonitorHook'), None)
    if monitor is None:
        raise ValueError(f'{config}: no KNNMonitorHook in custom_hooks to take the k-NN '
                         'settings and data from')
    root = os.path.join(root, cfg.train_dataloader.dataset.data_root)
    bank, query = (DATASETS.build(dict({'data_root': root}, **monitor[key]))
                   for key in ('bank', 'query'))
    return knn_top1(model.teacher['backbone'].eval(), bank, query, k=monitor.get('k', 20),
                    batch_size=monitor.get('batch_size', 64), num_workers=0)


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Weighted k-NN top-1 accuracy of the teacher and the student embeddings.

    Logged (``knn_top1`` for the teacher, ``knn_top1_student``) and appended to
    ``WORK_DIR/knn.json`` every ``interval`` iterations and after training. Every rank embeds
    its share of the bank and query sets with ``num_workers`` loader workers; the features are
    gathered, so the cost per rank falls with the number of ranks. Keep the bank a labelled
    subset (an ``ann_file``), not a whole ImageNet train folder.

    When a dataset config has no ``data_root`` it takes the training dataset's; if its
    ``ann_file`` does not exist there (a plain unlabelled folder given on the command line),
    or its images carry no labels, the monitor logs that it is skipped instead of failing.
    A ``data_root`` given explicitly must be right: errors then stop the run at start.

    Args:
        bank (dict): Dataset config of the labelled reference images.
        query (dict): Dataset config of the labelled images to classify.
        interval (int): Iterations between evaluations (0: only after training).
        k (int): Neighbours.
        temperature (float): Vote temperature.
        batch_size (int): Images per forward.
        num_workers (int): Loader workers per rank for the feature extraction.
    """

    priority = 'LOW'

    def __init__(self, bank, query, interval=0, k=20, temperature=0.07, batch_size=64,
                 num_workers=2):
        self.bank_cfg, self.query_cfg = bank, query
        self.interval, self.k, self.temperature = interval, k, temperature
        self.batch_size, self.num_workers = batch_size, num_workers
        self.datasets = None
        self.last_iter = None

    def _build(self, cfg, train_root, logger):
        """The dataset of ``cfg``, or None (with a log line) when it must be skipped."""
        if 'data_root' not in cfg and cfg.get('ann_file') and not os.path.isabs(
                cfg['ann_file']):
            ann_path = os.path.join(train_root, cfg['ann_file'])
            if not os.path.isfile(ann_path):
                logger.warning(f'k-NN monitor skipped: no label file {ann_path!r} under the '
                               f'training data root {train_root!r} (an unlabelled folder)')
                return None
        dataset = DATASETS.build(dict({'data_root': train_root}, **cfg))
        if all(label < 0 for label in dataset.labels):
            logger.warning(f'k-NN monitor skipped: the images under {dataset.data_root!r} '
                           'carry no labels (no ann_file, no class sub-folders)')
            return None
        return dataset

    def before_train(self, runner):
        """Build both datasets now, so a wrong path fails before training starts."""
        train_root = getattr(runner.train_dataloader.dataset, 'data_root', None)
        self.datasets = None
        datasets = []
        for cfg in (self.bank_cfg, self.query_cfg):
            dataset = self._build(cfg, train_root, runner.logger)
            if dataset is None:
                return
            datasets.append(dataset)
        self.datasets = datasets

    def _accuracy(self, network, device):
        return knn_top1(network, *self.datasets, k=self.k, temperature=self.temperature,
                        batch_size=self.batch_size, num_workers=self.num_workers, device=device)

    def evaluate(self, runner, done_iters):
        """Compute, log and record both accuracies after ``done_iters`` iterations."""
        if self.datasets is None:
            return
        model = _unwrap(runner.model)
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        record = {'iter': done_iters, 'k': self.k}
        for name, branch in (('knn_top1', model.teacher), ('knn_top1_student', model.student)):
            record[name] = self._accuracy(branch['backbone'], device)
            runner.message_hub.update_scalar(f'train/{name}', record[name])
        model.train(was_training)
        self.last_iter = done_iters
        runner.logger.info(
            f'k-NN (k={self.k}) top-1 at iter {done_iters}: teacher {record["knn_top1"]:.4f}, '
            f'student {record["knn_top1_student"]:.4f} ({len(self.datasets[1])} queries, '
            f'{len(self.datasets[0])} bank images)')
        if runner.rank == 0:
            _append_record(os.path.join(runner.work_dir, 'knn.json'), record)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self.evaluate(runner, runner.iter + 1)  # runner.iter counts from 0 here

    def after_train(self, runner):
        if self.last_iter != runner.iter:
            self.evaluate(runner, runner.iter)


@HOOKS.register_module()
class RegisterAttentionMonitorHook(Hook):
    """Logs whether the teacher's registers read different things yet (RATS only).

    Before the first step (the init: whether its symmetry is already broken), every
    ``interval`` iterations and after training, ``register_attention_profile`` of the
    teacher backbone on a fixed set of images (the first ``num_images`` global crops of the
    first batch, kept for the whole run): the last block's ``compress_entropy``,
    ``compress_map_similarity``, ``communicate_entropy`` and ``broadcast_entropy`` go to the
    scalars as ``register_<name>`` (1.0: uniform, the registers of a head interchangeable;
    parts need them below 1), every block's figures to ``work_dir/register_attention.json``.
    A backbone without register attention (plain ViT, ViT + registers) is skipped with one
    log line.

    Args:
        interval (int): Iterations between measurements (0: only after training).
        num_images (int): Images the figures are measured on.
    """

    priority = 'LOW'
    LOGGED = ('compress_entropy', 'compress_map_similarity', 'communicate_entropy',
              'broadcast_entropy')

    def __init__(self, interval=0, num_images=32):
        check_int('interval', interval, 0)
        check_int('num_images', num_images, 1)
        self.interval, self.num_images = interval, num_images
        self.images, self.enabled, self.last_iter = None, True, None

    def before_train(self, runner):
        backbone = _unwrap(runner.model).teacher['backbone']
        self.enabled = getattr(backbone, 'attn_mode', None) == 'rats'
        if not self.enabled:
            runner.logger.info('RegisterAttentionMonitorHook: the backbone has no register '
                               'attention; skipped')

    def measure(self, runner, done_iters):
        """Profile the teacher on the kept images; log and record the figures."""
        model = _unwrap(runner.model)
        backbone = model.teacher['backbone']
        device = next(backbone.parameters()).device
        blocks = register_attention_profile(backbone, [self.images.to(device)])
        for name in self.LOGGED:
            if blocks[-1][name] is not None:
                runner.message_hub.update_scalar(f'train/register_{name}', blocks[-1][name])
        runner.logger.info(f'register attention at iter {done_iters} (last block): ' + ', '.join(
            f'{k} {blocks[-1][k]:.3f}' for k in self.LOGGED if blocks[-1][k] is not None))
        self.last_iter = done_iters
        if runner.rank == 0:
            _append_record(os.path.join(runner.work_dir, 'register_attention.json'),
                           {'iter': done_iters, 'blocks': blocks})

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not self.enabled or self.images is not None:
            return
        self.images = first_global_views(runner, data_batch, self.num_images)
        if runner.iter == 0:  # the init, before any step (not on a resumed run)
            self.measure(runner, 0)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not self.enabled:
            return
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self.measure(runner, runner.iter + 1)

    def after_train(self, runner):
        if self.enabled and self.images is not None and self.last_iter != runner.iter:
            self.measure(runner, runner.iter)
