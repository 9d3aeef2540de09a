"""Weight import: timm ViT, original DINO, DINOv2 (with or without registers), own checkpoints.

``checkpoint_filter_fn`` follows timm's pattern: detect the source by a signature key, call one
small converter per source to reach this project's key layout, then adapt the result to the
target model (position-embedding grid, patch size, class token, number of registers).
"""
import logging
import os
import pickle
import re

import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from ..files import atomic_write

logger = logging.getLogger(__name__)

# Prefixes under which a backbone's keys appear in wrapped checkpoints, most specific first.
_WRAPPER_PREFIXES = ('teacher.backbone.', 'module.backbone.', 'backbone.vit.', 'backbone.',
                     'module.', 'encoder.')
_REGISTER_INIT_NOISE = 0.02
# Where a saved backbone records the options its weights cannot show, and their defaults (a
# backbone saved before an option existed was trained with its default).
BACKBONE_META_KEY = 'rats_mm_backbone'
BACKBONE_OPTIONS = {'compress': 'attention', 'logits': 'dot'}
# Also recorded, without a default (a backbone saved before they were recorded says nothing):
# what model(x) returns, whether its final norm is on the pooled token (fc_norm, resolved to
# a bool) and how many registers were trained. Not checked when weights load (registers are
# adapted, every pool reads the same tokens); load_backbone builds the recorded ones.
BACKBONE_READOUT = ('global_pool', 'fc_norm', 'num_registers')


def unwrap_state_dict(checkpoint):
    """Return the backbone's flat state dict from a checkpoint of any known container.

    Containers: mmengine (``state_dict``), DINO training (``teacher``), DeiT/MAE (``model``), or
    a bare state dict. The teacher is preferred where student and teacher are both present.
    """
    sd = checkpoint
    for key in ('state_dict', 'teacher', 'model'):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise TypeError(f'checkpoint holds a {type(sd).__name__}, not a state dict')
    for prefix in _WRAPPER_PREFIXES:
        taken = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if any(k.startswith(('blocks.', 'patch_embed.')) for k in taken):
            return taken
    return dict(sd)


def _convert_dinov2(sd):
    """DINOv2: ``register_tokens`` -> ``registers``, drop ``mask_token``, flatten block chunks."""
    if any('.mlp.w12.' in k for k in sd):
        raise ValueError('DINOv2 checkpoints with SwiGLU MLPs (ViT-g) are not supported')
    out = {}
    for k, v in sd.items():
        if k == 'mask_token':
            continue
        k = re.sub(r'^blocks\.\d+\.(\d+)\.', r'blocks.\1.', k)  # BlockChunk: blocks.c.i.
        out['registers' if k == 'register_tokens' else k] = v
    return out


def _convert_timm(sd):
    """timm ViT / original DINO: ``reg_token`` -> ``registers``; attention pooling dropped
    (the classifier is kept where the model has the same one, ``_match_classifier``)."""
    out = {}
    for k, v in sd.items():
        if k.startswith('attn_pool.'):
            continue
        out['registers' if k == 'reg_token' else k] = v
    return out


_CLASSIFIER_KEYS = ('head.', 'fc_norm.')


def _match_classifier(sd, model):
    """Keep the source's ``head`` / ``fc_norm`` tensors only where ``model`` has the same key
    and shape (a backbone without classes, or with other classes, starts its head fresh)."""
    own = {k: v.shape for k, v in model.state_dict().items() if k.startswith(_CLASSIFIER_KEYS)}
    for prefix in _CLASSIFIER_KEYS:  # a layer is kept whole or not at all
        keys = [k for k in sd if k.startswith(prefix)]
        if any(own.get(k) != sd[k].shape for k in keys):
            for k in keys:
                del sd[k]


def detect_source(sd):
    """Name the checkpoint's source by its signature keys."""
    if 'register_tokens' in sd or 'mask_token' in sd:
        return 'dinov2'
    if 'registers' in sd:
        return 'rats_mm'
    if 'blocks.0.attn.qkv.weight' in sd or 'blocks.0.0.attn.qkv.weight' in sd:
        return 'timm'
    raise ValueError('unrecognised checkpoint: no ViT block keys (blocks.0.attn.qkv.weight) '
                     f'among {sorted(sd)[:8]}...')


_CONVERTERS = {'dinov2': _convert_dinov2, 'timm': _convert_timm, 'rats_mm': dict}


def _fold_prefix_positions(sd, num_src_prefix):
    """Add the prefix tokens' position embeddings into the tokens (exactly equivalent), in
    token order ``[cls, registers]``, and keep only the patches' positions."""
    pos = sd['pos_embed']
    offset = 0
    for name in ('cls_token', 'registers'):
        if name not in sd or offset >= num_src_prefix:
            continue
        count = sd[name].shape[1]
        sd[name] = sd[name] + pos[:, offset:offset + count]
        offset += count
    sd['pos_embed'] = pos[:, num_src_prefix:]


def _source_prefix_count(sd):
    """Prefix positions in the source pos_embed: none (timm ``no_embed_class``), the CLS only
    (DINO, DINOv2) or CLS and registers (timm), whichever leaves a square patch grid."""
    length = sd['pos_embed'].shape[1]
    num_cls = sd['cls_token'].shape[1] if 'cls_token' in sd else 0
    num_reg = sd['registers'].shape[1] if 'registers' in sd else 0
    for prefix in (0, num_cls, num_cls + num_reg):
        side = int(round((length - prefix) ** 0.5))
        if side * side == length - prefix:
            return prefix
    raise ValueError(f'pos_embed of length {length} is no square grid after 0, {num_cls} or '
                     f'{num_cls + num_reg} prefix positions')


def _adapt_registers(sd, model):
    """Make ``registers`` match the model: copy, or initialise from the CLS token plus noise."""
    want = model.num_registers
    have = sd.get('registers')
    if want == 0:
        sd.pop('registers', None)
        return
    if have is not None and have.shape[1] == want:
        return
    source = sd.get('cls_token')
    if source is None and have is not None:
        source = have.mean(dim=1, keepdim=True)
    if source is None:
        sd.pop('registers', None)  # nothing to initialise from: reported as missing
        return
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(1, want, source.shape[-1], generator=gen, dtype=source.dtype)
    sd['registers'] = source.expand(1, want, -1) + _REGISTER_INIT_NOISE * noise
    logger.warning('registers: %d initialised from the source %s plus noise (std %.2g)', want,
                'CLS token' if 'cls_token' in sd else 'registers', _REGISTER_INIT_NOISE)


def _adapt_patch_grid(sd, model):
    """Resample patch-embedding kernels and the position grid to the model's."""
    w = sd.get('patch_embed.proj.weight')
    if w is not None and w.shape[-1] != model.patch_size:
        sd['patch_embed.proj.weight'] = resample_patch_embed(
            w, [model.patch_size, model.patch_size], verbose=False)
    pos = sd['pos_embed']
    if pos.shape[1] != model.pos_embed.shape[1]:
        side = int(round(pos.shape[1] ** 0.5))
        sd['pos_embed'] = resample_abs_pos_embed(
            pos, new_size=list(model.grid_size), old_size=[side, side], num_prefix_tokens=0,
            interpolation='bicubic')


def checkpoint_filter_fn(state_dict, model):
    """Convert a checkpoint from any supported source to ``model``'s keys and shapes.

    Sources (detected by signature keys): timm ViT (with or without ``reg_token``), original
    DINO (timm layout), DINOv2 (``mask_token`` / ``register_tokens``, chunked blocks), and this
    project's own checkpoints (``registers``; pretraining, exported or downstream, any wrapper).

    Args:
        state_dict (dict): A loaded checkpoint (any container ``unwrap_state_dict`` knows).
        model (RatsViT): The target model.

    Returns:
        dict: A state dict for ``model.load_state_dict``.
    """
    sd = unwrap_state_dict(state_dict)
    source = detect_source(sd)
    sd = _CONVERTERS[source](sd)
    if 'pos_embed' in sd:
        if source != 'rats_mm':  # own checkpoints never give prefix tokens positions
            _fold_prefix_positions(sd, _source_prefix_count(sd))
        _adapt_patch_grid(sd, model)
    _adapt_registers(sd, model)
    _match_classifier(sd, model)
    if not model.has_class_token:
        sd.pop('cls_token', None)
    logger.info('checkpoint_filter_fn: converted a %s checkpoint (%d tensors)', source, len(sd))
    return sd


def load_checkpoint_file(path, trust_checkpoint=False):
    """Read a checkpoint with ``torch.load(weights_only=True)`` unless trusted.

    Args:
        path (str): Checkpoint file.
        trust_checkpoint (bool): Allow full unpickling (only for files you trust).

    Returns:
        object: The loaded checkpoint.
    """
    if trust_checkpoint:
        return torch.load(path, map_location='cpu', weights_only=False)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0]
        raise RuntimeError(
            f'{path}: refused by torch.load(weights_only=True), the file holds more than '
            f'tensors ({first}). Export plain weights with tools/export_backbone.py, or, if '
            'you trust the file, opt in with trust_checkpoint=True (CLI: --trust-checkpoint; '
            "config: init_cfg=dict(type='Pretrained', checkpoint=..., trust_checkpoint=True))"
        ) from err


def load_pretrained(model, checkpoint, strict=False, trust_checkpoint=False):
    """Load weights from any supported source into ``model`` and report what did not match.

    Args:
        model (RatsViT): Target model.
        checkpoint (str | dict): A file path or an already loaded checkpoint.
        strict (bool): Raise if any key is missing or unexpected.
        trust_checkpoint (bool): See :func:`load_checkpoint_file`.

    Returns:
        torch.nn.modules.module._IncompatibleKeys: missing and unexpected keys.
    """
    name = checkpoint if isinstance(checkpoint, str) else '<state dict>'
    if isinstance(checkpoint, str):
        checkpoint = load_checkpoint_file(checkpoint, trust_checkpoint)
    check_backbone_options(model, checkpoint, name)
    sd = checkpoint_filter_fn(checkpoint, model)
    _check_logits_of_weights(model, sd, name)
    result = model.load_state_dict(sd, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise RuntimeError(f'{name}: missing keys {result.missing_keys}, unexpected keys '
                           f'{result.unexpected_keys}')
    if result.missing_keys:
        logger.warning('%s: missing keys (left at init): %s', name, result.missing_keys)
    if result.unexpected_keys:
        logger.warning('%s: unexpected keys (ignored): %s', name, result.unexpected_keys)
    return result


def extract_backbone(checkpoint, branch='teacher'):
    """The backbone weights of a DINO pretraining checkpoint (this project's or DINO's).

    Args:
        checkpoint (dict): A loaded pretraining checkpoint.
        branch (str): ``'teacher'`` (the EMA model, the one to export) or ``'student'``.

    Returns:
        dict: Backbone state dict in ``RatsViT``'s keys.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'checkpoint holds a {type(checkpoint).__name__}, not a dict')
    if branch not in ('teacher', 'student'):
        raise ValueError(f"branch={branch!r} is not 'teacher' or 'student'")
    sd = checkpoint.get('state_dict', checkpoint)
    if isinstance(sd.get(branch), dict):  # original DINO: {'teacher': {'backbone.*'}}
        sd = {f'{branch}.{k}': v for k, v in sd[branch].items()}
    prefixes = (f'{branch}.backbone.', f'module.{branch}.backbone.')
    out = {k[len(p):]: v for k, v in sd.items() for p in prefixes if k.startswith(p)}
    if not out:
        raise KeyError(f'no {branch} backbone (keys {prefixes[0]}*) in the checkpoint; '
                       f'top-level keys: {sorted(sd)[:6]}')
    return out


def atomic_save(obj, path):
    """``torch.save`` through :func:`atomic_write`.

    Args:
        obj (object): What to save.
        path (str): Destination file; its folder must exist.
    """
    atomic_write(path, lambda f: torch.save(obj, f))


def backbone_options(model):
    """The options of ``model`` recorded with its saved weights: those the weights cannot
    show, and its read-out.

    Args:
        model (RatsViT): A backbone.

    Returns:
        dict: ``compress`` (the register attention's compress step), ``logits`` (its
        logits, ``'dot'`` or ``'cosine'``), ``global_pool`` (what ``model(x)`` returns),
        ``fc_norm`` (bool: the final norm on the pooled token) and ``num_registers``.
    """
    options = {key: getattr(model, key, default) for key, default in BACKBONE_OPTIONS.items()}
    if hasattr(model, 'global_pool'):
        options.update(global_pool=model.global_pool, num_registers=model.num_registers,
                       fc_norm=not isinstance(model.fc_norm, torch.nn.Identity))
    return options


def save_backbone(weights, path, options):
    """Write backbone weights with their options, atomically (see :func:`atomic_save`).

    Args:
        weights (dict): Backbone state dict in ``RatsViT``'s keys.
        path (str): Output file (``torch.load(weights_only=True)`` reads it; every loader of
            this project and mmengine's ``Pretrained`` init take its ``state_dict``).
        options (dict): What :func:`backbone_options` returns for the model.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_save({'state_dict': weights, 'meta': {BACKBONE_META_KEY: dict(options)}}, path)


def recorded_backbone_options(checkpoint):
    """Options a saved backbone recorded (:func:`save_backbone`; compress and logits it
    predates at their defaults, a read-out it predates absent), or ``{}`` for any other
    checkpoint (timm, DINO, DINOv2, exports without options)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    options = meta.get(BACKBONE_META_KEY) if isinstance(meta, dict) else None
    # an option the backbone predates was at its default when it was trained
    return {**BACKBONE_OPTIONS, **options} if isinstance(options, dict) and options else {}


def _check_logits_of_weights(model, state_dict, name):
    """Unlike the compress step, cosine logits show in the weights (``*.attn.logit_scale``):
    raise ``ValueError`` naming ``name`` when weights trained with them meet a model with the
    paper's dot product (they would load and compute another function), also from a
    checkpoint that recorded no options (an mmengine pretraining checkpoint). Weights
    without them (timm, DINO, a dot-product RATS) may initialise a cosine model: its
    temperatures start at their init and are reported missing."""
    if getattr(model, 'logits', 'dot') == 'dot' and any(
            k.endswith('attn.logit_scale') for k in state_dict):
        raise ValueError(f"{name}: weights trained with logits='cosine' (they hold "
                         "logit_scale tensors), the model has logits='dot'; build it with "
                         "logits='cosine' (model.backbone.logits in a config)")


def check_backbone_options(model, checkpoint, name='<state dict>'):
    """Raise ``ValueError`` naming ``name`` when the checkpoint recorded a compress step or
    logits other than ``model``'s (its weights would load but compute a different function).
    """
    recorded = recorded_backbone_options(checkpoint)
    own = backbone_options(model)
    for key in BACKBONE_OPTIONS:
        value = own[key]
        if recorded.get(key, value) != value:
            raise ValueError(f"{name}: weights trained with {key}={recorded[key]!r}, the model "
                             f"has {key}={value!r}; build it with {key}={recorded[key]!r} "
                             f"(model.backbone.{key} in a config)")
