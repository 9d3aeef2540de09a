"""RATS ViT and weight import (pure PyTorch + timm)."""
from .acceleration import compile_static, enable_tf32
from .rats_vit import (ARCHS, RatsViT, rats_base_patch16, rats_large_patch16, rats_small_patch16,
                       rats_tiny_patch16, rats_vit, vit, vit_base_patch16, vit_base_patch16_reg4,
                       vit_small_patch16, vit_small_patch16_reg4)
from .weights import (checkpoint_filter_fn, detect_source, extract_backbone,
                      load_checkpoint_file, load_pretrained, unwrap_state_dict)

__all__ = [
    'ARCHS', 'RatsViT', 'checkpoint_filter_fn', 'compile_static', 'detect_source', 'enable_tf32',
    'extract_backbone', 'load_checkpoint_file', 'load_pretrained', 'rats_base_patch16',
    'rats_large_patch16', 'rats_small_patch16', 'rats_tiny_patch16', 'rats_vit',
    'unwrap_state_dict', 'vit', 'vit_base_patch16', 'vit_base_patch16_reg4', 'vit_small_patch16',
    'vit_small_patch16_reg4']
