"""The checks of ``RatsViT``'s architecture options, made before anything is built."""
from ..layers import ATTN_MODES, COMPRESS_STEPS, LOGITS

__all__ = ['check_model_options', 'pair']


def pair(size):
    """``size`` as (h, w)."""
    return (size, size) if isinstance(size, int) else tuple(size)


def check_model_options(img_size, patch_size, num_registers, attn_mode, class_token, compress,
                        logits):
    """Raise ``ValueError`` naming the argument of ``RatsViT`` that cannot work with the
    others (see its docstring for their meaning)."""
    if attn_mode not in ATTN_MODES:
        raise ValueError(f'attn_mode={attn_mode!r} is not one of {ATTN_MODES}')
    if compress not in COMPRESS_STEPS:
        raise ValueError(f'compress={compress!r} is not one of {COMPRESS_STEPS}')
    if logits not in LOGITS:
        raise ValueError(f'logits={logits!r} is not one of {LOGITS}')
    if compress != 'attention' and attn_mode != 'rats':
        raise ValueError(f"compress={compress!r} needs attn_mode='rats': full attention "
                         'has no compress step')
    if logits != 'dot' and attn_mode != 'rats':
        raise ValueError(f"logits={logits!r} needs attn_mode='rats': full attention is "
                         "timm's, with dot-product logits")
    if attn_mode == 'rats' and class_token:
        raise ValueError("class_token=True needs attn_mode='full': in RATS the registers "
                         'replace the [CLS] token')
    if num_registers < 0:
        raise ValueError(f'num_registers={num_registers} must be >= 0')
    if not class_token and num_registers == 0:
        raise ValueError('the model needs registers or a class token (num_registers=0 and '
                         'class_token=False leave no image embedding)')
    if any(s % patch_size for s in pair(img_size)):
        raise ValueError(f'img_size={img_size} is not a multiple of patch_size={patch_size}')
