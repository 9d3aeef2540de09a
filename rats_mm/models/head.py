"""The classifier side of ``RatsViT``, as timm's ``VisionTransformer`` has it: pooling the
tokens, the optional norm and dropout before a linear head, and replacing the head (a mixin;
the model owns ``global_pool``, ``fc_norm``, ``head_drop``, ``head`` and ``token_groups``)."""
from timm.layers import trunc_normal_
from torch import nn

__all__ = ['CLASSIFIER_ARGS', 'GLOBAL_POOLS', 'ClassifierMixin']

# ``global_pool`` values: the image embedding ([CLS], else the register mean), the patches'
# mean / max / both averaged, or none (forward_head then sees every token).
GLOBAL_POOLS = ('token', 'avg', 'max', 'avgmax', '')
# RatsViT arguments of the classifier side only: a backbone (DINO, dense, probes) takes none
CLASSIFIER_ARGS = ('num_classes', 'global_pool', 'fc_norm', 'drop_rate')


class ClassifierMixin:
    """``pool``, ``forward_head``, ``get_classifier`` and ``reset_classifier``."""

    @staticmethod
    def _check_pool(global_pool):
        """Raise ``ValueError`` unless ``global_pool`` is one of ``GLOBAL_POOLS``."""
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f'global_pool={global_pool!r} is not one of {GLOBAL_POOLS}')

    def pool(self, x, pool_type=None):
        """(B, T, D) tokens pooled by ``pool_type`` (None: ``global_pool``): (B, D), or the
        tokens themselves for ``''``."""
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
        return 0.5 * (patches.mean(dim=1) + patches.amax(dim=1))              # 'avgmax'

    def forward_head(self, x, pre_logits=False):
        """``forward_features``' tokens (B, T, D) -> logits (B, num_classes), or with
        ``pre_logits`` (or no head) the pooled, normed embedding (B, D); with
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
            self.global_pool = global_pool
        self.num_classes = num_classes
        ref = self.pos_embed
        self.head = (nn.Linear(self.embed_dim, num_classes, device=ref.device, dtype=ref.dtype)
                     if num_classes > 0 else nn.Identity())
        if num_classes > 0:
            trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        self.head.train(self.training)
