"""DINO projection head: MLP -> bottleneck -> L2 normalise -> weight-normalised prototypes."""
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from .checks import check_int

__all__ = ['DINOHead', 'cancel_last_layer_gradients', 'clip_gradients_per_parameter']


def _build_mlp(nlayers, in_dim, bottleneck_dim, hidden_dim, use_bn):
    """MLP ``in_dim -> hidden_dim (x nlayers-1) -> bottleneck_dim`` with GELU (and BN).

    Args:
        nlayers (int): Number of linear layers (>= 1).
        in_dim (int): Input dimension.
        bottleneck_dim (int): Output dimension.
        hidden_dim (int): Width of the hidden layers.
        use_bn (bool): BatchNorm1d after every hidden linear layer.

    Returns:
        nn.Module: The MLP.
    """
    if nlayers == 1:
        return nn.Linear(in_dim, bottleneck_dim)
    layers = []
    dims = [in_dim] + [hidden_dim] * (nlayers - 1)
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        layers.append(nn.Linear(d_in, d_out))
        if use_bn:
            layers.append(nn.BatchNorm1d(d_out))
        layers.append(nn.GELU())
    layers.append(nn.Linear(hidden_dim, bottleneck_dim))
    return nn.Sequential(*layers)


class DINOHead(nn.Module):
    """DINO head (Caron et al., 2021).

    ``x -> MLP (GELU) -> bottleneck -> L2 normalise -> weight-normalised linear (no bias)``.
    The last layer's magnitude ``g`` starts at 1; with ``norm_last_layer`` it is frozen, so
    the logits are cosine similarities to ``out_dim`` unit-norm prototypes.

    Args:
        in_dim (int): Input (backbone embedding) dimension.
        out_dim (int): Number of prototypes K.
        hidden_dim (int): Width of the hidden MLP layers.
        bottleneck_dim (int): Dimension of the normalised bottleneck.
        nlayers (int): Linear layers in the MLP (>= 1).
        use_bn (bool): BatchNorm1d in the MLP.
        norm_last_layer (bool): Keep the last layer's ``g`` fixed at 1.
    """

    def __init__(self, in_dim, out_dim=65536, hidden_dim=2048, bottleneck_dim=256, nlayers=3,
                 use_bn=False, norm_last_layer=True):
        super().__init__()
        for name, value in (('in_dim', in_dim), ('out_dim', out_dim),
                            ('hidden_dim', hidden_dim), ('bottleneck_dim', bottleneck_dim),
                            ('nlayers', nlayers)):
            check_int(name, value, 1)
        self.norm_last_layer = norm_last_layer
        self.mlp = _build_mlp(nlayers, in_dim, bottleneck_dim, hidden_dim, use_bn)
        self.apply(self._init_weights)
        # As in DINO, the prototypes' direction keeps nn.Linear's default init; only the
        # magnitude g (parametrizations.weight.original0, shape (out_dim, 1)) is set.
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        weight_g = self.last_layer.parametrizations.weight.original0
        weight_g.data.fill_(1.0)
        if norm_last_layer:
            weight_g.requires_grad = False

    @staticmethod
    def _init_weights(module):
        """Truncated-normal (std 0.02) weights and zero bias for linear layers.

        Args:
            module (nn.Module): Module visited by ``nn.Module.apply``.
        """
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x):
        """Project embeddings onto the prototypes.

        Args:
            x (Tensor): (B, in_dim) embeddings.

        Returns:
            Tensor: (B, out_dim) logits.
        """
        x = self.mlp(x)                                    # (B, bottleneck_dim)
        device = x.device.type
        # the prototypes in float32 under autocast: logits of 65,536 prototypes divided by a
        # teacher temperature of 0.04 lose too much in bf16 / fp16 (autocast has no 'meta')
        autocast = device in ('cuda', 'cpu') and torch.is_autocast_enabled(device)
        with torch.autocast(device, enabled=False) if autocast else nullcontext():
            x = F.normalize(x.float() if autocast else x, dim=-1, p=2)
            return self.last_layer(x)                      # (B, out_dim)


def cancel_last_layer_gradients(head):
    """Drop the gradients of the last layer (DINO freezes it for the first epoch(s)).

    Call between ``backward()`` and ``optimizer.step()``. ``head`` is a :class:`DINOHead`
    or any module holding one or more submodules named ``last_layer`` (a student wrapper
    around backbone and head, for instance).

    Args:
        head (nn.Module): The head, or a module containing it.

    Returns:
        int: Number of parameters whose ``grad`` was set to None.
    """
    last_layers = [m for name, m in head.named_modules()
                   if name == 'last_layer' or name.endswith('.last_layer')]
    if not last_layers:
        raise ValueError(f'{type(head).__name__} has no submodule named "last_layer"')
    count = 0
    for module in last_layers:
        for param in module.parameters():
            param.grad = None
            count += 1
    return count


def clip_gradients_per_parameter(params, max_norm):
    """DINO's gradient clipping: each parameter's gradient is scaled to norm <= ``max_norm``
    on its own (``torch.nn.utils.clip_grad_norm_`` instead scales all of them by their
    global norm, so one large gradient shrinks every other update).

    Args:
        params (Iterable[Tensor]): Parameters; those without ``grad`` are skipped.
        max_norm (float): Largest allowed L2 norm of each parameter's gradient.

    Returns:
        Tensor: The global L2 norm of the gradients before clipping (for logging).
    """
    if not max_norm > 0:
        raise ValueError(f'max_norm must be > 0, got {max_norm!r}')
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    # per-parameter norms in one multi-tensor kernel; no host sync anywhere
    norms = torch.stack(torch._foreach_norm([g.detach() for g in grads]))  # (P,)
    scales = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, list(scales.unbind(0)))
    return norms.norm(2)
