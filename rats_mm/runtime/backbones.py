"""Backbones described by project configs: read any config (pretraining or downstream),
build its ``RatsViT`` and load a checkpoint into it, for the analysis tools and the demo.

Config files are mmengine's format, so this lives in the glue; ``rats_mm.analysis`` itself
works on built models and never imports OpenMMLab.
"""
import inspect
import os
import sys

import torch
from mmengine.config import Config

from ..models import RatsViT, load_pretrained
from ..models.head import CLASSIFIER_ARGS, uses_fc_norm
from ..models.weights import (BACKBONE_OPTIONS, BACKBONE_READOUT, extract_backbone,
                              load_checkpoint_file, recorded_backbone_options, save_backbone)

__all__ = ['add_model_args', 'backbone_from_config', 'backbone_kwargs', 'export_backbone',
           'load_backbone', 'read_config', 'model_from_args']

# Keys of the OpenMMLab wrapper (RatsViTBackbone) or of DINOPretrainer, not RatsViT arguments.
WRAPPER_KEYS = ('type', 'out_indices', 'norm_maps', 'frozen_stages', 'init_cfg', 'pretrained',
                'with_cp', 'compile')
# a backbone has no classifier and is placed by its runner; what model(x) pools (a read-out
# a DINO head was trained on) it may name
_VIT_ARGS = frozenset(inspect.signature(RatsViT).parameters) - {
    *(set(CLASSIFIER_ARGS) - {'global_pool', 'fc_norm'}), 'device', 'dtype'}
# every option a saved backbone records, at RatsViT's defaults
_RECORDED_DEFAULTS = {**BACKBONE_OPTIONS, **{
    key: inspect.signature(RatsViT).parameters[key].default for key in BACKBONE_READOUT}}


def read_config(config):
    """Args:
        config (str | Path | mmengine.config.Config): A config file or a loaded config.

    Returns:
        mmengine.config.Config: The config (custom imports are not executed).
    """
    if isinstance(config, Config):
        return config
    if not os.path.isfile(str(config)):
        raise FileNotFoundError(f'config file {config} does not exist')
    return Config.fromfile(str(config), import_custom_modules=False)


def backbone_kwargs(config):
    """``RatsViT`` keyword arguments of ``cfg.model.backbone`` (pretraining or downstream).

    Args:
        config (str | Path | Config): Any project config.

    Returns:
        dict: The backbone description without the wrapper keys (``WRAPPER_KEYS``).
    """
    cfg = read_config(config)
    name = getattr(cfg, 'filename', None) or '<config>'
    model = cfg.get('model')
    if model is None or model.get('backbone') is None:
        raise KeyError(f'{name}: no model.backbone in the config')
    kwargs = dict(model['backbone'])
    kind = str(kwargs.get('type', 'RatsViT')).split('.')[-1]
    if kind not in ('RatsViT', 'RatsViTBackbone'):
        raise ValueError(f'{name}: model.backbone.type={kwargs["type"]!r} is not RatsViT')
    for key in WRAPPER_KEYS:
        kwargs.pop(key, None)
    unknown = sorted(set(kwargs) - _VIT_ARGS)
    if unknown:
        raise ValueError(f'{name}: model.backbone key(s) {unknown} are not RatsViT arguments')
    return kwargs


def backbone_from_config(config):
    """Args:
        config (str | Path | Config): Any project config (pretraining or downstream).

    Returns:
        RatsViT: A randomly initialised backbone as ``cfg.model.backbone`` describes it.
    """
    return RatsViT(**backbone_kwargs(config))


def _options_of_run(checkpoint):
    """Backbone options of the run that wrote an mmengine checkpoint (from the config text
    mmengine keeps in ``meta.cfg``), or ``{}`` when it kept none."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return {}
    backbone = Config.fromstring(text, '.py').get('model', {}).get('backbone') or {}
    options = {key: backbone.get(key, default) for key, default in _RECORDED_DEFAULTS.items()}
    return {**options, 'fc_norm': uses_fc_norm(options['global_pool'], options['fc_norm'])}


def export_backbone(checkpoint, out, branch='teacher', trust_checkpoint=False):
    """Write the backbone of a pretraining checkpoint as plain weights, with the options the
    run's config recorded (``compress``, ``logits``, ``global_pool``, ``fc_norm``,
    ``num_registers``), atomically.

    Args:
        checkpoint (str): Pretraining checkpoint (this project's or original DINO's).
        out (str): Output file.
        branch (str): ``'teacher'`` or ``'student'``.
        trust_checkpoint (bool): Allow full unpickling (only for files you trust).

    Returns:
        dict: The exported state dict.
    """
    if not os.path.isfile(str(checkpoint)):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
    ckpt = load_checkpoint_file(str(checkpoint), trust_checkpoint=trust_checkpoint)
    weights = extract_backbone(ckpt, branch)
    save_backbone(weights, out, _options_of_run(ckpt))  # creates the folder
    return weights


def _describe(keys, limit=4):
    keys = sorted(keys)
    return ', '.join(keys[:limit]) + (f', ... ({len(keys)} in all)' if len(keys) > limit else '')


def _recorded_overrides(kwargs, state, checkpoint):
    """The options ``checkpoint`` recorded that differ from the config's ``RatsViT``
    arguments ``kwargs``, with a note on stderr: the weights were trained with them, so the
    model is rebuilt to match."""
    recorded = recorded_backbone_options(state)
    own = {key: kwargs.get(key, default) for key, default in _RECORDED_DEFAULTS.items()}
    # the config's fc_norm as it resolves with the pool the model is built with
    own['fc_norm'] = uses_fc_norm(recorded.get('global_pool', own['global_pool']),
                                  own['fc_norm'])
    changed = {k: v for k, v in recorded.items() if k in own and v != own[k]}
    for key, value in changed.items():
        print(f'note: {checkpoint} was trained with {key}={value!r}; the config says '
              f'{own[key]!r}: building the backbone with {value!r}', file=sys.stderr)
    return changed


def load_backbone(config, checkpoint, trust_checkpoint=False):
    """Build the config's backbone and load a checkpoint into it (``strict=False``).

    Args:
        config (str | Path | Config): Any project config.
        checkpoint (str): Exported backbone, pretraining or downstream checkpoint (read with
            ``torch.load(weights_only=True)`` unless ``trust_checkpoint``).
        trust_checkpoint (bool): Allow full unpickling (only for files you trust).

    Options the checkpoint recorded (``compress``, ``logits``, ``global_pool``, ``fc_norm``,
    ``num_registers``, see ``rats_mm.models.weights.save_backbone``) win over the config's,
    with a note on stderr.

    Returns:
        RatsViT: The model in eval mode. Raises ``RuntimeError`` naming both files when the
        checkpoint does not fit (unrecognised keys, shape mismatch, or no tensor matched);
        tensors missing from an otherwise fitting checkpoint are reported on stderr.
    """
    cfg_name = getattr(config, 'filename', config)
    if not os.path.isfile(str(checkpoint)):
        raise FileNotFoundError(f'checkpoint file {checkpoint} does not exist')
    state = load_checkpoint_file(str(checkpoint), trust_checkpoint)
    kwargs = backbone_kwargs(config)  # the config is read once
    try:
        model = RatsViT(**{**kwargs, **_recorded_overrides(kwargs, state, checkpoint)})
        result = load_pretrained(model, state, strict=False)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(f'checkpoint {checkpoint} does not fit the backbone of config '
                           f'{cfg_name}: {first}') from e
    expected = set(model.state_dict())
    if not expected - set(result.missing_keys):
        raise RuntimeError(f'checkpoint {checkpoint}: no tensor matches the backbone of config '
                           f'{cfg_name} (all {len(expected)} keys missing)')
    if result.missing_keys:
        print(f'warning: {checkpoint}: {len(result.missing_keys)} of {len(expected)} backbone '
              f'tensors missing, left at random init: {_describe(result.missing_keys)}',
              file=sys.stderr)
    return model.eval()


def add_model_args(parser):
    """Add CONFIG, CKPT, ``--trust-checkpoint``, ``--device`` and ``--size`` to a parser."""
    parser.add_argument('config', help='any project config (pretraining or downstream)')
    parser.add_argument('checkpoint', help='exported backbone, pretraining or downstream ckpt')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of the checkpoint (only files you trust)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--size', type=int, default=None,
                        help='resize the short side to this first (default: native size)')
    return parser


def model_from_args(args):
    """``load_backbone`` from parsed ``add_model_args`` arguments, on ``args.device``."""
    model = load_backbone(args.config, args.checkpoint, args.trust_checkpoint)
    return model.to(args.device)


