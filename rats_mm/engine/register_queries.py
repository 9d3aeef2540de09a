"""Mask2Former initial queries from RATS registers, shared by the mmseg and mmdet heads.

Upstream ``Mask2FormerHead.forward`` builds its queries from two ``nn.Embedding`` tables
(``query_feat``, ``query_embed``) as ``table.weight.unsqueeze(0).repeat((B, 1, 1))``. The
mixin below replaces both tables by slots that yield per-image queries to that expression,
so the upstream forward (pixel decoder, 9-layer decoder, heads) runs unchanged.
"""
import torch
from torch import nn


class RegisterQueries(nn.Module):
    """Query content = a projection of the registers; query position = a learned embedding
    per register slot; optional extra learned queries appended.

    Args:
        in_channels (int): Register dimension D.
        num_registers (int): Registers N given by the backbone.
        feat_channels (int): Query dimension C of the decoder.
        num_extra_queries (int): Learned queries appended after the register queries.
    """

    def __init__(self, in_channels, num_registers, feat_channels, num_extra_queries=0):
        super().__init__()
        if num_registers <= 0:
            raise ValueError(f'num_registers={num_registers}: register queries need a '
                             'backbone with registers')
        self.in_channels, self.num_registers = in_channels, num_registers
        self.num_extra_queries = num_extra_queries
        self.content = nn.Sequential(nn.LayerNorm(in_channels),
                                     nn.Linear(in_channels, feat_channels))
        self.position = nn.Embedding(num_registers, feat_channels)
        self.extra_content = nn.Embedding(num_extra_queries, feat_channels)
        self.extra_position = nn.Embedding(num_extra_queries, feat_channels)

    @property
    def num_queries(self):
        return self.num_registers + self.num_extra_queries

    def forward(self, registers):
        """(B, N, D) registers -> query content and position, each (B, N + extra, C)."""
        if registers.dim() != 3 or registers.shape[1:] != (self.num_registers,
                                                           self.in_channels):
            raise ValueError(
                f'register queries expect registers (B, {self.num_registers}, '
                f'{self.in_channels}) as the last neck output, got {tuple(registers.shape)}; '
                'check the backbone num_registers / embed_dim and neck pass_registers=True')
        B = registers.shape[0]
        content = torch.cat([self.content(registers),
                             self.extra_content.weight.expand(B, -1, -1)], dim=1)
        position = torch.cat([self.position.weight, self.extra_position.weight])
        return content, position.expand(B, -1, -1)


class _PerImageQueries:
    """What upstream sees as ``table.weight``: ``.unsqueeze(0).repeat((B, 1, 1))`` gives
    the (B, Q, C) per-image queries instead of a repeated shared table."""

    def __init__(self, queries):
        self.queries = queries

    def unsqueeze(self, dim):
        return self

    def repeat(self, sizes):
        if sizes[0] != self.queries.shape[0]:
            raise ValueError(f'batch {sizes[0]} != {self.queries.shape[0]} register queries')
        return self.queries


class _QuerySlot(nn.Module):
    """Stands where upstream keeps a query ``nn.Embedding``; filled before each forward."""

    def __init__(self):
        super().__init__()
        self.queries = None

    @property
    def weight(self):
        if self.queries is None:
            raise RuntimeError('register queries were not set before the decoder ran')
        return _PerImageQueries(self.queries)


class RegisterQueryMixin:
    """Turns an upstream Mask2Former head into one whose queries come from the registers.

    The head's input is the neck output ``(*pyramid, registers)``. With
    ``register_queries=None`` the registers are dropped and the head is the upstream head.

    Args:
        register_queries (dict | None): :class:`RegisterQueries` arguments (``in_channels``,
            ``num_registers``, ``num_extra_queries``); ``None`` gives the upstream head
            (learned queries), the baseline.
        **kwargs: The upstream head's arguments; ``num_queries`` must equal the registers
            plus the extra queries.
    """

    def __init__(self, register_queries=None, **kwargs):
        super().__init__(**kwargs)
        self.register_queries = None
        if register_queries is None:
            return
        num_queries = kwargs.get('num_queries', 100)  # upstream default
        feat_channels = self.query_feat.embedding_dim  # the upstream query table's width
        self.register_queries = RegisterQueries(feat_channels=feat_channels,
                                                **register_queries)
        if num_queries != self.register_queries.num_queries:
            raise ValueError(
                f'num_queries={num_queries} but register queries give '
                f'{self.register_queries.num_registers} registers + '
                f'{self.register_queries.num_extra_queries} extra = '
                f'{self.register_queries.num_queries}')
        self.query_feat, self.query_embed = _QuerySlot(), _QuerySlot()

    def forward(self, x, batch_data_samples):
        *pyramid, registers = x
        if self.register_queries is None:
            return super().forward(pyramid, batch_data_samples)
        content, position = self.register_queries(registers)
        self.query_feat.queries, self.query_embed.queries = content, position
        try:
            return super().forward(pyramid, batch_data_samples)
        finally:
            self.query_feat.queries = self.query_embed.queries = None
