"""Analytic multiply-accumulate counts of RATS and ViT forwards (fvcore's "FLOPs" convention)."""


def block_macs(embed_dim, num_heads, num_patches, num_prefix, attn_mode, mlp_ratio=4.0,
               num_registers=0):
    """MACs of one block's matrix products (norms, softmax and activations excluded).

    Args:
        embed_dim (int): D.
        num_heads (int): H.
        num_patches (int): L.
        num_prefix (int): Prefix tokens (CLS and registers) in the sequence.
        attn_mode (str): ``'rats'`` or ``'full'``.
        mlp_ratio (float): MLP hidden size relative to D.
        num_registers (int): N (``'rats'`` only).

    Returns:
        int: Multiply-accumulates.
    """
    D, L = embed_dim, num_patches
    T = L + num_prefix
    mlp = 2 * int(D * mlp_ratio) * D * T
    if attn_mode == 'full':
        return 4 * D * D * T + 2 * T * T * D + mlp  # qkv + proj, QK^T and AV over all tokens
    N, d = num_registers, D // num_heads
    n = N // num_heads
    projections = 4 * D * D * L + 2 * N * d * D  # patches: qkv + proj; registers: own-head q, proj
    attention = 2 * N * L * d + 2 * N * n * d + 2 * L * N * d  # compress, communicate, broadcast
    return projections + attention + mlp


def model_macs(model, height, width):
    """MACs of ``model.forward`` on one (3, height, width) image.

    Args:
        model (RatsViT): The model.
        height (int): Image height (a multiple of the patch size).
        width (int): Image width.

    Returns:
        int: Multiply-accumulates.
    """
    p = model.patch_size
    L = (height // p) * (width // p)
    in_chans = model.patch_embed.proj.in_channels
    embed = L * model.embed_dim * in_chans * p * p
    mlp_ratio = model.blocks[0].mlp.fc1.out_features / model.embed_dim
    per_block = block_macs(model.embed_dim, model.num_heads, L, model.num_prefix_tokens,
                           model.attn_mode, mlp_ratio, model.num_registers)
    return embed + len(model.blocks) * per_block
