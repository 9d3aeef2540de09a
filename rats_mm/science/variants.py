"""The variants a science run can train: the RATS config with register-attention options or
a register read-out, and the ViT config; their display names, their backbone arguments and
what a run takes from its preset."""
from ..models import RatsViT
from ..models.embedding import EMBEDDINGS, read_out_kwargs
from .presets import PRESET_DEFAULTS
from .recipe import RATS_CONFIG, VIT_CONFIG, backbone_config

__all__ = ['DEFAULT_VARIANTS', 'DISPLAY_NAMES', 'RATS_VARIANT_OPTIONS', 'READOUT_VARIANTS',
           'VARIANTS', 'display_name', 'preset_settings', 'variant_configs']


DISPLAY_NAMES = {'rats': 'RATS', 'rats_competition': 'RATS competition',
                 'rats_cosine': 'RATS cosine', 'rats_competition_cosine': 'RATS comp. + cosine',
                 'vit': 'ViT'}


def display_name(variant):
    """A variant's name in figures: 'RATS cosine', 'RATS cosine, registers read'."""
    if variant in READOUT_VARIANTS:
        base, embedding = READOUT_VARIANTS[variant]
        return f'{DISPLAY_NAMES[base]}, {embedding} read'
    return DISPLAY_NAMES[variant]


# The RATS variants: the RATS config with these register-attention options (for the default
# config, configs/science/<variant>_science.py, which the analysis tools read; a test keeps
# them equal).
RATS_VARIANT_OPTIONS = {'rats': {}, 'rats_competition': {'compress': 'competition'},
                        'rats_cosine': {'logits': 'cosine'},
                        'rats_competition_cosine': {'compress': 'competition',
                                                    'logits': 'cosine'}}
# Each of them whose DINO head reads a register read-out instead of the register mean:
# '<variant>_<embedding>' (e.g. 'rats_cosine_registers'), its backbone built with that
# embedding as global_pool so that model(x), and the k-NN of its history, read what its head
# reads (rats_mm.models.embedding; the same backbone config file).
READOUT_VARIANTS = {f'{base}_{embedding}': (base, embedding)
                    for base in RATS_VARIANT_OPTIONS for embedding in EMBEDDINGS[1:]}
# The variants a run can train, in training order (the RATS variants, then the ViT config),
# and those it trains unless told otherwise.
VARIANTS = (*RATS_VARIANT_OPTIONS, *READOUT_VARIANTS, 'vit')
DEFAULT_VARIANTS = ('rats', 'rats_competition', 'vit')


def preset_settings(preset, minutes=None, variants=None, rats_config=None, vit_config=None,
                    max_steps=None):
    """What a run takes from its preset where the caller gave None (``PRESET_DEFAULTS``).

    Returns:
        tuple: minutes (all variants together; 7 without a preset's, 0.5 for ``'smoke'``),
        the variants in training order, the RATS and ViT configs, and the cap on each
        model's steps (None: none).
    """
    defaults = PRESET_DEFAULTS.get(preset, {})
    minutes = minutes or defaults.get('minutes', 0.5 if preset == 'smoke' else 7.0)
    chosen = _check_variants(variants or defaults.get('variants', DEFAULT_VARIANTS))
    return (minutes, [v for v in VARIANTS if v in chosen],
            rats_config or defaults.get('rats_config', RATS_CONFIG),
            vit_config or defaults.get('vit_config', VIT_CONFIG),
            max_steps or defaults.get('max_steps'))


def variant_configs(rats_config, vit_config, backbone_overrides=None, rats_overrides=None,
                     embedding='pooled'):
    """The backbone of every variant: the RATS config with each variant's register-attention
    options and ``rats_overrides``, its head's read-out as ``global_pool`` (the variant's,
    else ``embedding``), and the ViT config; each with ``backbone_overrides`` (checked by
    building the RATS and the ViT).

    Returns:
        tuple[dict, dict]: ``{variant: RatsViT kwargs}`` and ``{variant: description}`` (the
        config file and the options applied to it, for the summary).
    """
    backbone_overrides = backbone_overrides or {}
    rats = {**backbone_config(rats_config), **(rats_overrides or {})}
    options = {name: {**o, **read_out_kwargs(embedding)} for name, o in RATS_VARIANT_OPTIONS.items()}
    options.update({name: {**RATS_VARIANT_OPTIONS[base], **read_out_kwargs(e)}
                    for name, (base, e) in READOUT_VARIANTS.items()})
    configs = {name: {**rats, **o, **backbone_overrides} for name, o in options.items()}
    configs['vit'] = {**backbone_config(vit_config), **backbone_overrides}
    for name in ('rats', 'vit'):
        try:
            RatsViT(**configs[name])
        except (TypeError, ValueError) as e:
            given = f'backbone overrides {backbone_overrides}' + (
                f', RATS overrides {rats_overrides}' if rats_overrides else '')
            raise ValueError(f'{given}: {name}: {e}') from None
    described = {name: rats_config + ''.join(f' with {k}={v!r}' for k, v in
                                              {**(rats_overrides or {}), **o}.items())
                 for name, o in options.items()}
    described['vit'] = vit_config
    return configs, described


def _check_variants(variants):
    """``variants`` if it names only known variants, at least one."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        raise ValueError(f'variants={list(variants)}: choose from {", ".join(VARIANTS)}')
    return variants
