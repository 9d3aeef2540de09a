"""Pure PyTorch building blocks of RATS (no OpenMMLab imports)."""
from .block import ATTN_MODES, Block
from .patch_embed import PatchEmbed, position_embedding
from .register_attention import COMPRESS_STEPS, LOGITS, RegisterAttention

__all__ = ['ATTN_MODES', 'Block', 'COMPRESS_STEPS', 'LOGITS', 'PatchEmbed', 'RegisterAttention',
           'position_embedding']
