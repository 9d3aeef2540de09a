"""`make install`'s last step: the stack imports and mmcv's compiled ops are really there.

Importing ``MultiScaleDeformableAttention`` succeeds even when mmcv was built without its
ops, and Mask2Former then fails at its first GPU forward. This check loads the compiled
deformable-attention kernels by name (an mmcv without ops fails here, on any machine) and,
on a GPU, runs the CUDA kernel against mmcv's PyTorch implementation on random inputs.

    python -m rats_mm.runtime.install_check
"""
import torch

__all__ = ['check_deformable_attention', 'main']


def check_deformable_attention(device):
    """Run Mask2Former's multi-scale deformable attention on ``device``.

    On CUDA the compiled kernel must match mmcv's PyTorch implementation (max abs difference
    below 1e-4); on the CPU only the PyTorch implementation exists and is run.

    Args:
        device (str): ``'cuda'`` or ``'cpu'``.

    Returns:
        float: The largest difference found (0.0 on the CPU).
    """
    from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttnFunction,
                                                  multi_scale_deformable_attn_pytorch)
    gen = torch.Generator().manual_seed(0)
    heads, dims, points, queries = 2, 8, 2, 5
    shapes = torch.tensor([[4, 4], [2, 2]])                                  # (levels, 2)
    sizes = shapes[:, 0] * shapes[:, 1]
    start = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    value = torch.rand(1, int(sizes.sum()), heads, dims, generator=gen)     # (1, S, H, d)
    loc = torch.rand(1, queries, heads, len(shapes), points, 2, generator=gen)
    weights = torch.rand(1, queries, heads, len(shapes), points, generator=gen)
    weights = weights / weights.sum(dim=(-2, -1), keepdim=True)
    args = [t.to(device) for t in (value, shapes, start, loc, weights)]
    reference = multi_scale_deformable_attn_pytorch(args[0], args[1], args[3], args[4])
    if device != 'cuda':
        return 0.0
    out = MultiScaleDeformableAttnFunction.apply(*args, 64)
    error = (out - reference).abs().max().item()
    if not error < 1e-4:
        raise RuntimeError(f"mmcv's CUDA deformable attention differs from its PyTorch "
                           f'implementation by {error:.3g}: rebuild mmcv against this torch '
                           '(MMCV_WITH_OPS=1 FORCE_CUDA=1, see the README)')
    return error


def main():
    """Import the stack, load mmcv's compiled ops, run the deformable attention; report."""
    import mmcv
    import mmdet.models  # noqa: F401
    import mmseg.models  # noqa: F401
    import torchvision  # noqa: F401
    from mmcv.utils import ext_loader

    import rats_mm  # noqa: F401
    # an mmcv built without its ops has no mmcv._ext: this raises, with the op's name
    ext_loader.load_ext('_ext', ['ms_deform_attn_forward', 'ms_deform_attn_backward'])
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    error = check_deformable_attention(device)
    print(f'rats_mm install ok: torch {torch.__version__}, mmcv {mmcv.__version__}; '
          f'deformable attention checked on {device}'
          + (f' (CUDA kernel vs PyTorch: {error:.1e})' if device == 'cuda' else ''))


if __name__ == '__main__':
    main()
