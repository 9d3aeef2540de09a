"""Pure PyTorch building blocks of RATS (no OpenMMLab imports)."""
from .block import ATTN_MODES, Block
from .register_attention import RegisterAttention

__all__ = ['ATTN_MODES', 'Block', 'RegisterAttention']
