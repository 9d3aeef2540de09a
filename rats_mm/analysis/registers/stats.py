"""How the registers are used: similarity within and across heads, registers in use."""
import torch
import torch.nn.functional as F

__all__ = ['register_similarity', 'registers_in_use']


def register_similarity(register_tokens, num_heads):
    """Mean cosine similarity between distinct registers of one head and of different heads.

    Registers of a head that grow alike (``within_head`` near 1) can no longer mark different
    parts; this is the first diagnostic of part emergence to move.

    Args:
        register_tokens (Tensor): (B, N, D) final registers of B images.
        num_heads (int): Heads H (N a multiple of H; register r belongs to head r // (N / H)).

    Returns:
        dict: ``within_head`` and ``across_heads`` (floats; NaN where no such pair exists).
    """
    B, N, _ = register_tokens.shape
    if N % num_heads:
        raise ValueError(f'{N} registers are not a multiple of num_heads={num_heads}')
    x = F.normalize(register_tokens.float(), dim=-1)
    sim = x @ x.transpose(1, 2)                                        # (B, N, N)
    head = torch.arange(N) // (N // num_heads)
    same = head[:, None] == head[None, :]
    off_diag = ~torch.eye(N, dtype=torch.bool)
    within, across = sim[:, same & off_diag], sim[:, ~same]
    return {'within_head': within.mean().item() if within.numel() else float('nan'),
            'across_heads': across.mean().item() if across.numel() else float('nan')}


def registers_in_use(labels, num_registers, min_fraction=0.05):
    """Per image, how many registers win more than ``min_fraction`` of the patches.

    Args:
        labels (Tensor): (B, L) register index of each patch.
        num_registers (int): N.
        min_fraction (float): Share of an image's patches a register must win to count.

    Returns:
        float: The mean count over the B images.
    """
    counts = F.one_hot(labels.long(), num_registers).sum(dim=1).float()   # (B, N)
    share = counts / labels.shape[1]
    return (share > min_fraction).sum(dim=1).float().mean().item()
