"""Mask2Former initial queries from RATS registers, shared by the mmseg and mmdet heads.

Upstream ``Mask2FormerHead.forward`` decodes queries taken from two learned ``nn.Embedding``
tables (``query_feat``, ``query_embed``), the same for every image. The mixin below overrides
``forward``: its queries are built from each image's registers, then decoded exactly as
upstream decodes its own (pixel decoder, masked-attention decoder, per-stage heads).
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


class RegisterQueryMixin:
    """Turns an upstream Mask2Former head into one whose queries come from the registers.

    The head's input is the neck output ``(*pyramid, registers)``. With register queries it
    overrides ``forward``: the query content and position are built from the registers by
    :class:`RegisterQueries` (``self.register_queries``) and decoded by :meth:`decode`, the
    upstream decoding with per-image queries; the upstream learned query tables
    (``query_feat``, ``query_embed``) are not created-and-ignored but removed. With
    ``register_queries=None`` the registers are dropped and the head is the upstream head.
    mmseg's head inherits mmdet's ``forward``, so this one override serves both libraries.

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
        del self.query_feat, self.query_embed  # replaced by the register queries

    def forward(self, x, batch_data_samples):
        """Args:
            x (Sequence[Tensor]): ``(*pyramid, registers)`` from the neck: the upstream
                multi-scale maps, then the registers (B, N, D).
            batch_data_samples (list): Data samples (unused by the decoding itself).

        Returns:
            tuple[list[Tensor], list[Tensor]]: Class logits (B, Q, K + 1) and mask logits
            (B, Q, h, w) of every decoder stage, as upstream.
        """
        *pyramid, registers = x
        if self.register_queries is None:
            return super().forward(pyramid, batch_data_samples)
        query_feat, query_embed = self.register_queries(registers)      # (B, Q, C) each
        return self.decode(pyramid, query_feat, query_embed)

    def _decoder_memory(self, memorys, batch_size):
        """Per-level decoder keys and their positional encodings, (B, h*w, C) each."""
        inputs, positions = [], []
        for i in range(self.num_transformer_feat_level):
            memory = self.decoder_input_projs[i](memorys[i])
            memory = memory.flatten(2).permute(0, 2, 1)                  # (B, h*w, C)
            inputs.append(memory + self.level_embed.weight[i].view(1, 1, -1))
            mask = memory.new_zeros((batch_size, *memorys[i].shape[-2:]), dtype=torch.bool)
            pos = self.decoder_positional_encoding(mask)                 # (B, C, h, w)
            positions.append(pos.flatten(2).permute(0, 2, 1))            # (B, h*w, C)
        return inputs, positions

    def decode(self, x, query_feat, query_embed):
        """Mask2Former decoding (pixel decoder, masked-attention decoder, per-stage heads)
        of given per-image queries, as upstream ``forward`` decodes its learned ones.

        Args:
            x (list[Tensor]): Multi-scale maps (B, C_i, H_i, W_i).
            query_feat (Tensor): (B, Q, C) query content.
            query_embed (Tensor): (B, Q, C) query position.

        Returns:
            tuple[list[Tensor], list[Tensor]]: Class and mask logits of every stage.
        """
        mask_features, memorys = self.pixel_decoder(x)  # memorys: low to high resolution
        inputs, positions = self._decoder_memory(memorys, x[0].shape[0])
        levels = self.num_transformer_feat_level
        cls_pred, mask_pred, attn_mask = self._forward_head(
            query_feat, mask_features, memorys[0].shape[-2:])
        cls_list, mask_list = [cls_pred], [mask_pred]
        for i, layer in enumerate(self.transformer_decoder.layers):
            level = i % levels
            # a mask that hides every position would give NaNs: show everything instead
            attn_mask = attn_mask & (attn_mask.sum(-1) != attn_mask.shape[-1]).unsqueeze(-1)
            query_feat = layer(query=query_feat, key=inputs[level], value=inputs[level],
                               query_pos=query_embed, key_pos=positions[level],
                               cross_attn_mask=attn_mask, query_key_padding_mask=None,
                               key_padding_mask=None)
            cls_pred, mask_pred, attn_mask = self._forward_head(
                query_feat, mask_features, memorys[(i + 1) % levels].shape[-2:])
            cls_list.append(cls_pred)
            mask_list.append(mask_pred)
        return cls_list, mask_list
