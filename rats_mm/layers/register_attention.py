"""Register attention: patches talk only through registers (compress, communicate,
broadcast)."""
import math

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

COMPRESS_STEPS = ('attention', 'competition')
LOGITS = ('dot', 'cosine')
# Rows of ``logit_scale`` (``logits='cosine'``): one learnable temperature per step and head.
STEPS = ('compress', 'communicate', 'broadcast')
# Scaled cosine logits (Swin V2): exp(t) * cos(q, k), t initialised to log 10, clamped at log 100.
LOGIT_SCALE_INIT = math.log(10.0)
LOGIT_SCALE_MAX = math.log(100.0)
# Added to the competition shares before the renormalisation over patches (Slot Attention's):
# a register that wins no patch reads their plain mean instead of dividing by zero.
_COMPETITION_EPS = 1e-8


def check_token_count(x, num_registers):
    """Return ``x`` (B, T, D) unchanged; raise ``ValueError`` unless it holds patches after its
    ``num_registers`` registers (one call in a ``torch.fx`` graph: tracing cannot branch on T)."""
    if x.shape[1] <= num_registers:
        raise ValueError(f'expected {num_registers} registers followed by patches, got '
                         f'{x.shape[1]} tokens')
    return x


torch.fx.wrap('check_token_count')


class RegisterAttention(nn.Module):
    """RATS attention over ``[R; P]``: N registers first, then L patches.

    For each head ``h`` with its own registers ``R_h`` (``n = N / H`` of them):

    - compress:     ``C_h = softmax(q[R_h] k[P]^T / sqrt(d)) v[P]``   (L -> n)
    - communicate:  ``M_h = softmax(C_h C_h^T / sqrt(d)) C_h``         (n -> n)
    - broadcast:    ``O[P] = softmax(q[P] M_h^T / sqrt(d)) M_h``       (n -> L)

    With ``compress='competition'`` the compress softmax runs over the head's registers instead
    (Slot Attention's competition): each patch shares itself among the n registers,
    ``A_h = softmax(q[R_h] k[P]^T / sqrt(d), over R_h)``, and each register reads the
    share-weighted mean of the values, ``C_h = (A_h / sum_P A_h) v[P]``. Registers then divide
    the image instead of all reading its most informative patches. Communicate and broadcast
    are the same in both.

    With ``logits='cosine'`` every step scores a query against a key as
    ``exp(min(t, log 100)) * cos(q, k)`` instead of ``q . k / sqrt(d)`` (Swin V2's scaled
    cosine attention), ``t = logit_scale[step, h]`` learnable and initialised to log 10; the
    values are unchanged. The dot-product logits of communicate (``C_h C_h^T``) and broadcast
    (``q[P] M_h^T``) are products of value vectors, so they can only sharpen by growing the
    values; cosine logits sharpen through ``t`` alone, and from step 0 the compress maps are
    as sharp as the directions of the queries and keys make them.

    Register ``r`` belongs to head ``r // n`` only: its output is ``M_h`` in its own head's slice
    and zero in every other head's slice. Parameter names (``qkv``, ``proj``) are those of a
    timm / DINO ViT attention, so any ViT checkpoint initialises it.

    Two exact shortcuts follow from the math: a register's keys and values are never read, and
    only its own head's query is, so registers project only that query (``D x d`` of ``qkv``);
    and since a register's output is zero outside its head, ``proj`` reads only that slice.

    Args:
        dim (int): Token dimension D.
        num_heads (int): Number of heads H; ``dim`` must be a multiple of it.
        num_registers (int): Number of registers N; must be a positive multiple of ``num_heads``.
        qkv_bias (bool): Bias in the ``qkv`` projection.
        attn_drop (float): Dropout on the attention weights of each step (training only).
        proj_drop (float): Dropout after the output projection.
        compress (str): ``'attention'`` (the paper's: each register's softmax over the
            patches) or ``'competition'`` (each patch's softmax over the head's registers,
            then a weighted mean over the patches).
        logits (str): ``'dot'`` (the paper's ``q . k / sqrt(d)``) or ``'cosine'`` (scaled
            cosine logits with a learnable ``logit_scale`` of shape (3, H): rows compress,
            communicate, broadcast).
    """

    def __init__(self, dim, num_heads, num_registers, qkv_bias=True, attn_drop=0.0,
                 proj_drop=0.0, compress='attention', logits='dot'):
        super().__init__()
        if compress not in COMPRESS_STEPS:
            raise ValueError(f'compress={compress!r} is not one of {COMPRESS_STEPS}')
        if logits not in LOGITS:
            raise ValueError(f'logits={logits!r} is not one of {LOGITS}')
        if dim % num_heads != 0:
            raise ValueError(f'dim={dim} must be a multiple of num_heads={num_heads}')
        if num_registers <= 0 or num_registers % num_heads != 0:
            raise ValueError(
                f'num_registers={num_registers} must be a positive multiple of '
                f'num_heads={num_heads}: registers are partitioned evenly across heads')
        self.dim = dim
        self.num_heads = num_heads
        self.num_registers = num_registers
        self.head_dim = dim // num_heads
        self.regs_per_head = num_registers // num_heads
        self.attn_drop = attn_drop
        self.compress = compress
        self.logits = logits
        if logits == 'cosine':  # no new parameter with 'dot': checkpoint keys stay
            self.logit_scale = nn.Parameter(torch.full((len(STEPS), num_heads),
                                                       LOGIT_SCALE_INIT))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _register_queries(self, registers):
        """Own-head queries of the registers: (B, N, D) -> (B, H, n, d)."""
        B = registers.shape[0]
        H, n, d = self.num_heads, self.regs_per_head, self.head_dim
        w_q = self.qkv.weight[:self.dim].view(H, d, self.dim)                 # (H, d, D)
        x = registers.view(B, H, n, self.dim).transpose(0, 1)                 # (H, B, n, D)
        q = torch.matmul(x.reshape(H, B * n, self.dim), w_q.transpose(1, 2))  # (H, B*n, d)
        if self.qkv.bias is not None:
            # the bias in the product's dtype: under autocast q stays bf16
            q = q + self.qkv.bias[:self.dim].view(H, 1, d).to(q.dtype)
        return q.view(H, B, n, d).transpose(0, 1)                             # (B, H, n, d)

    def _patch_qkv(self, patches):
        """Queries, keys and values of the patches: (B, L, D) -> 3 x (B, H, L, d)."""
        B, L, _ = patches.shape
        qkv = self.qkv(patches).view(B, L, 3, self.num_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)                           # 3 x (B, H, L, d)

    def _register_output(self, messages):
        """``proj`` of the registers' outputs, each non-zero only in its own head's slice.

        (B, H, n, d) -> (B, N, D), equal to ``proj`` of the zero-padded (B, N, D) output.
        """
        B = messages.shape[0]
        H, n, d = self.num_heads, self.regs_per_head, self.head_dim
        w_o = self.proj.weight.view(self.dim, H, d).permute(1, 2, 0)            # (H, d, D)
        x = messages.transpose(0, 1).reshape(H, B * n, d)                       # (H, B*n, d)
        out = torch.matmul(x, w_o)                                              # (H, B*n, D)
        out = out + self.proj.bias.to(out.dtype)  # under autocast the output stays bf16
        return out.view(H, B, n, self.dim).transpose(0, 1).reshape(B, H * n, self.dim)

    def _operands(self, step, q, k):
        """Query, key and scale whose ``scale * q @ k^T`` are ``step``'s logits.

        Args:
            step (str): One of ``STEPS``.
            q (Tensor): (B, H, m, d) queries.
            k (Tensor): (B, H, l, d) keys.

        Returns:
            tuple: ``(q, k, scale)``; with ``'cosine'`` the unit vectors, the query multiplied
            by its head's ``exp(min(t, log 100))``, and ``scale = 1``.
        """
        if self.logits == 'dot':
            return q, k, self.head_dim ** -0.5
        t = self.logit_scale[STEPS.index(step)].clamp(max=LOGIT_SCALE_MAX)   # (H,)
        temperature = t.exp().view(1, -1, 1, 1).to(q.dtype)                # (1, H, 1, 1)
        return F.normalize(q, dim=-1) * temperature, F.normalize(k, dim=-1), 1.0

    def _attend(self, step, q, k, v, drop):
        """``softmax(step's logits of q against k) v`` with the fused kernel."""
        q, k, scale = self._operands(step, q, k)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=drop, scale=scale)

    def _logits(self, step, q, k):
        """``step``'s logits of the queries against the keys, (B, H, m, l)."""
        q, k, scale = self._operands(step, q, k)
        return torch.matmul(q, k.transpose(-2, -1)) * scale

    def _competition_weights(self, q_reg, k_pat):
        """Competition compress: (shares, weights), both (B, H, n, L).

        ``shares`` sum to 1 over the head's n registers for each patch; ``weights`` are the
        shares renormalised to sum to 1 over the L patches for each register.
        """
        q, k, scale = self._operands('compress', q_reg, k_pat)
        logits = torch.matmul(q, k.transpose(-2, -1)) * scale  # (B, H, n, L)
        shares = logits.softmax(dim=-2)                      # (B, H, n, L)
        weights = shares + _COMPETITION_EPS
        weights = weights / weights.sum(dim=-1, keepdim=True)         # (B, H, n, L)
        return shares, weights

    def _compress(self, q_reg, k_pat, v_pat, drop):
        """The compress step: (B, H, n, d) register summaries of the patches."""
        if self.compress == 'attention':
            return self._attend('compress', q_reg, k_pat, v_pat, drop)
        _, weights = self._competition_weights(q_reg, k_pat)
        weights = F.dropout(weights, p=drop) if drop else weights
        return torch.matmul(weights.to(v_pat.dtype), v_pat)          # (B, H, n, d)

    def forward(self, x):
        """Args:
            x (Tensor): (B, N + L, D) tokens, the N registers first.

        Returns:
            Tensor: (B, N + L, D) attention output (after ``proj``).
        """
        N = self.num_registers
        x = check_token_count(x, N)
        registers, patches = x[:, :N], x[:, N:]
        q_reg = self._register_queries(registers)                   # (B, H, n, d)
        q_pat, k_pat, v_pat = self._patch_qkv(patches)              # (B, H, L, d) each
        drop = self.attn_drop if self.training else 0.0
        compressed = self._compress(q_reg, k_pat, v_pat, drop)     # (B, H, n, d)
        messages = self._attend('communicate', compressed, compressed, compressed,
                                drop)                               # (B, H, n, d)
        broadcast = self._attend('broadcast', q_pat, messages, messages, drop)  # (B, H, L, d)
        B, H, L, d = broadcast.shape
        out_pat = self.proj(broadcast.transpose(1, 2).reshape(B, L, H * d))  # (B, L, D)
        out_reg = self._register_output(messages)                              # (B, N, D)
        return self.proj_drop(torch.cat([out_reg, out_pat], dim=1))

    @torch.no_grad()
    def step_weights(self, x, internals=False):
        """Attention weights of the three steps (those the forward uses), for analysis.

        Args:
            x (Tensor): (B, N + L, D) tokens, as given to :meth:`forward`.
            internals (bool): Also return what the weights are made of: ``<step>_logits``
                (before the softmax; compress (B, H, n, L), communicate (B, H, n, n),
                broadcast (B, H, L, n)), ``patch_values`` (B, H, L, d), ``compressed`` and
                ``messages`` (B, H, n, d).

        Returns:
            dict: ``compress`` (B, H, n, L), each register's weights over the patches (the
            weights the forward uses, in either compress step); with ``'competition'`` also
            ``compress_shares`` (B, H, n, L), each patch's shares over the head's registers
            (summing to 1 over n) before the renormalisation;
            ``communicate`` (B, H, n, n), each register's weights over its head's registers;
            ``broadcast`` (B, H, L, n), each patch's weights over the head's registers. Every
            row sums to 1. With ``internals``, the tensors listed there.
        """
        N = self.num_registers
        q_reg = self._register_queries(x[:, :N])                                 # (B, H, n, d)
        q_pat, k_pat, v_pat = self._patch_qkv(x[:, N:])                          # (B, H, L, d)
        out = {}
        if self.compress == 'competition':
            out['compress_shares'], compress = self._competition_weights(q_reg, k_pat)
            compress = compress.to(v_pat.dtype)
        if self.compress == 'attention' or internals:  # competition's are inside its weights
            compress_logits = self._logits('compress', q_reg, k_pat)           # (B, H, n, L)
        if self.compress == 'attention':
            compress = compress_logits.softmax(dim=-1)
        compressed = compress @ v_pat                                            # (B, H, n, d)
        communicate_logits = self._logits('communicate', compressed, compressed)  # (B, H, n, n)
        communicate = communicate_logits.softmax(dim=-1)
        messages = communicate @ compressed                                      # (B, H, n, d)
        broadcast_logits = self._logits('broadcast', q_pat, messages)           # (B, H, L, n)
        broadcast = broadcast_logits.softmax(dim=-1)
        out.update(compress=compress, communicate=communicate, broadcast=broadcast)
        if internals:
            out.update(compress_logits=compress_logits, communicate_logits=communicate_logits,
                       broadcast_logits=broadcast_logits, patch_values=v_pat,
                       compressed=compressed, messages=messages)
        return out

    def compress_weights(self, x):
        """Attention weights of the compress step, for analysis.

        Args:
            x (Tensor): (B, N + L, D) tokens, as given to :meth:`forward`.

        Returns:
            Tensor: (B, N, L) weights of each register over the patches (rows sum to 1).
        """
        weights = self.step_weights(x)['compress']                  # (B, H, n, L)
        B, H, n, L = weights.shape
        return weights.reshape(B, H * n, L)

    def broadcast_weights(self, x):
        """Attention weights of the broadcast step: which register each patch reads from.

        Args:
            x (Tensor): (B, N + L, D) tokens, as given to :meth:`forward`.

        Returns:
            Tensor: (B, L, N) weights; for each patch the n entries of head h's registers
            (``h * n .. h * n + n - 1``) sum to 1, so each row sums to H.
        """
        weights = self.step_weights(x)['broadcast']                 # (B, H, L, n)
        B, H, L, n = weights.shape
        return weights.permute(0, 2, 1, 3).reshape(B, L, H * n)    # (B, L, N)
