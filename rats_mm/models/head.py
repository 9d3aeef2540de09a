"""The classifier side of ``RatsViT``, as timm's ``VisionTransformer`` has it: pooling the
tokens, the optional norm and dropout before a linear head, and replacing the head (a mixin;
the model owns ``global_pool``, ``fc_norm``, ``head_drop``, ``head`` and ``token_groups``)."""
import torch
from timm.layers import trunc_normal_
from torch import nn

__all__ = ['CLASSIFIER_ARGS', 'GLOBAL_POOLS', 'REGISTER_POOLS', 'ClassifierMixin',
           'check_pool', 'pooled_dim', 'uses_fc_norm']

# ``global_pool`` values: the image embedding ([CLS], else the register mean), the patches'
# mean / max / both averaged, none (forward_head then sees every token), or one of the
# register read-outs (REGISTER_POOLS; models with registers): every register concatenated
# (N * D), each head's registers averaged and read on that head's channels (D: the register
# mean taken apart by head), or every register and the patch mean concatenated ((N + 1) * D).
REGISTER_POOLS = ('registers', 'heads', 'registers_avg')
GLOBAL_POOLS = ('token', 'avg', 'max', 'avgmax', '', *REGISTER_POOLS)
# RatsViT arguments of the classifier side only: a backbone (DINO, dense, probes) takes none
CLASSIFIER_ARGS = ('num_classes', 'global_pool', 'fc_norm', 'drop_rate')


def check_pool(global_pool, num_registers, num_heads, class_token):
    """Raise ``ValueError`` unless a model with these registers can pool by ``global_pool``.

    Args:
        global_pool (str): One of ``GLOBAL_POOLS``.
        num_registers (int): The model's registers N.
        num_heads (int): Its attention heads H.
        class_token (bool): Whether it has a [CLS] token.
    """
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f'global_pool={global_pool!r} is not one of {GLOBAL_POOLS}')
    if global_pool in REGISTER_POOLS and not num_registers:
        raise ValueError(f'global_pool={global_pool!r} reads the registers: the model has '
                         'num_registers=0')
    if global_pool == 'heads' and (class_token or num_registers % num_heads):
        raise ValueError(f"global_pool='heads' needs registers partitioned across the heads "
                         f'and no [CLS] token (num_registers={num_registers}, '
                         f'num_heads={num_heads}, class_token={class_token})')


def uses_fc_norm(global_pool, fc_norm):
    """Whether the final norm goes on the pooled tokens (``fc_norm``) instead of every token;
    None: timm's rule, for ``'avg'``, ``'max'`` and ``'avgmax'``."""
    return global_pool in ('avg', 'avgmax', 'max') if fc_norm is None else bool(fc_norm)


def pooled_dim(global_pool, embed_dim, num_registers):
    """Width of the pooled embedding: N * D for ``'registers'``, (N + 1) * D for
    ``'registers_avg'``, else D."""
    if global_pool == 'registers':
        return num_registers * embed_dim
    if global_pool == 'registers_avg':
        return (num_registers + 1) * embed_dim
    return embed_dim


class ClassifierMixin:
    """``pool``, ``forward_head``, ``get_classifier`` and ``reset_classifier``."""

    def _check_pool(self, global_pool):
        """Raise ``ValueError`` unless this model can pool by ``global_pool``."""
        check_pool(global_pool, self.num_registers, self.num_heads, self.has_class_token)

    def pool(self, x, pool_type=None):
        """(B, T, D) tokens pooled by ``pool_type`` (None: ``global_pool``): (B, D), (B, N * D)
        or (B, (N + 1) * D) (``pooled_dim``), or the tokens themselves for ``''``."""
        pool_type = self.global_pool if pool_type is None else pool_type
        if not pool_type:
            return x
        cls, registers, patches = self.token_groups(x)
        if pool_type == 'token':
            return cls if cls is not None else registers.mean(dim=1)
        if pool_type == 'avg':
            return patches.mean(dim=1)
        if pool_type == 'max':
            return patches.amax(dim=1)
        if pool_type == 'avgmax':
            return 0.5 * (patches.mean(dim=1) + patches.amax(dim=1))
        if pool_type == 'registers':
            return registers.flatten(1)                                       # (B, N * D)
        if pool_type == 'registers_avg':
            return torch.cat([registers.flatten(1), patches.mean(dim=1)], 1)  # (B, (N+1) * D)
        return self._head_slices(registers)                                   # 'heads'

    def _head_slices(self, registers):
        """(B, N, D) registers -> (B, D): head h's registers averaged, read on head h's
        channels (the register mean, each head's share from its own registers)."""
        B, N, D = registers.shape
        H = self.num_heads
        per_head = registers.reshape(B, H, N // H, D).mean(dim=2)             # (B, H, D)
        per_head = per_head.reshape(B, H, H, D // H)                          # (B, H, H, d)
        return per_head.diagonal(dim1=1, dim2=2).transpose(1, 2).flatten(1)   # (B, D)

    def forward_head(self, x, pre_logits=False):
        """``forward_features``' tokens (B, T, D) -> logits (B, num_classes), or with
        ``pre_logits`` (or no head) the pooled, normed embedding (B, ``head_hidden_size``); with
        ``global_pool=''`` every token, (B, T, num_classes | D)."""
        x = self.head_drop(self.fc_norm(self.pool(x)))
        return x if pre_logits else self.head(x)

    def get_classifier(self):
        """The head: ``nn.Linear``, or ``nn.Identity`` without classes."""
        return self.head

    def reset_classifier(self, num_classes, global_pool=None):
        """A new head for ``num_classes`` (0: none), on the model's device and dtype, and
        ``global_pool`` unless None."""
        if global_pool is not None:
            self._check_pool(global_pool)
            if global_pool in REGISTER_POOLS and not isinstance(self.fc_norm, nn.Identity):
                raise ValueError(f'fc_norm norms a D-wide pooled token: not for '
                                 f'global_pool={global_pool!r} (every register is normed)')
            self.global_pool = global_pool
        self.num_classes = num_classes
        ref = self.pos_embed
        self.head_hidden_size = pooled_dim(self.global_pool, self.embed_dim, self.num_registers)
        self.head = (nn.Linear(self.head_hidden_size, num_classes, device=ref.device, dtype=ref.dtype)
                     if num_classes > 0 else nn.Identity())
        if num_classes > 0:
            trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        self.head.train(self.training)
