"""Command-line plumbing shared by ``tools/pretrain.py``, ``tools/train.py`` and ``tools/test.py``:
config loading with overrides, work dir, resume, AMP, and distributed start-up on CPU or GPU."""
import argparse
import os
import os.path as osp
import sys

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction

from .precision import settle_precision, settle_schedule, world_size


def add_common_args(parser):
    """Arguments every tool shares (``--work-dir``, ``--cfg-options``, ``--launcher``)."""
    parser.add_argument('--work-dir', help='directory for logs and checkpoints')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser


def train_parser(description):
    """Parser of the training tools (``CONFIG [--resume [CKPT]] [--amp]`` + common args)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help='config file')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or from the latest checkpoint in the work dir')
    parser.add_argument('--amp', nargs='?', const='bf16', default=None, choices=['bf16', 'fp16'],
                        help='mixed precision on CUDA: bf16 (default) or fp16 with a dynamic '
                             'loss scaler; the ImageNet and Mask2Former configs use bf16 '
                             'without it (float32 on a CPU)')
    return add_common_args(parser)


def settle_run_config(args):
    """The run's config read from ``args.config`` and settled for this machine: ``--cfg-options``
    merged, work dir, launcher, resume, AMP and schedules settled, plain checkpoints added."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    if getattr(args, 'resume', None):
        _settle_resume(cfg, args.resume)
    if 'optim_wrapper' in cfg:  # training: precision and schedule follow the machine
        settle_precision(cfg, getattr(args, 'amp', None))
        settle_schedule(cfg, world_size(cfg.launcher))
    _survive_kills(cfg)
    hooks = cfg.get('custom_hooks') or []
    if not any(h.get('type') == 'PlainCheckpointHook' for h in hooks):
        hooks.append(dict(type='PlainCheckpointHook'))  # checkpoints load weights_only
    cfg.custom_hooks = hooks
    cfg.setdefault('custom_imports', dict(imports=[], allow_failed_imports=False))
    if 'rats_mm.runtime' not in cfg.custom_imports.imports:  # PlainCheckpointHook
        cfg.custom_imports.imports.append('rats_mm.runtime')
    return cfg


def _settle_resume(cfg, requested):
    """``--resume [CKPT]``: the newest readable checkpoint (or CKPT, checked), kept with the
    warnings about those skipped for ``train_main`` to log."""
    from .resume import resume_checkpoint
    path, warnings = resume_checkpoint(cfg.work_dir, requested)
    cfg.resume = True
    cfg.load_from = path  # None: nothing to resume, the run starts from scratch
    cfg.resume_warnings = warnings


def _survive_kills(cfg):
    """Checkpoints written atomically (file backend ``atomic_local``, unless the config names
    a backend) and an iteration loop that resumes without replaying the data loader."""
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint is not None and not checkpoint.get('backend_args') \
            and not checkpoint.get('out_dir'):
        checkpoint['backend_args'] = dict(backend='atomic_local')
    train_cfg = cfg.get('train_cfg') or {}
    if str(train_cfg.get('type', '')).split('.')[-1] == 'IterBasedTrainLoop':
        train_cfg['type'] = 'ResumableIterBasedTrainLoop'


def setup_distributed(cfg):
    """Start the process group for ``--launcher pytorch`` on CPU (gloo) before the Runner.

    mmengine's launcher calls ``torch.cuda.set_device`` and fails without a GPU; with the
    group already initialised it skips that, and DDP runs on CPU with ``device_ids=None``.
    On GPU mmengine starts NCCL itself.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group('gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    os.environ.setdefault('LOCAL_RANK', '0')


def train_main(description):
    """The whole of ``tools/pretrain.py`` and ``tools/train.py``: parse, configure, train."""
    from mmengine.runner import Runner
    try:
        cfg = settle_run_config(train_parser(description).parse_args())
    except (FileNotFoundError, RuntimeError) as err:  # bad config, --amp without CUDA, resume
        sys.exit(f'error: {err}')
    setup_distributed(cfg)
    warnings = cfg.pop('resume_warnings', None) or []
    runner = Runner.from_cfg(cfg)
    for line in warnings:  # in the run's own log too
        runner.logger.warning(line)
    runner.train()
    shutdown_distributed()


def shutdown_distributed():
    """Leave the process group cleanly (barrier, then destroy) before the interpreter exits:
    a gloo group left to interpreter teardown can abort a rank ("terminate called without an
    active exception", now and then in two-process CPU runs), failing a finished run."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
