"""How the project makes a backbone fast on a GPU, in one place: compiling it and the float32
matrix-product mode (used by the mmengine runs, the science run and the benchmarks)."""
import torch

__all__ = ['compile_static', 'enable_tf32']


def compile_static(module):
    """``torch.compile`` a backbone in place, one static graph per input size
    (``dynamic=False``): with dynamic shapes, the backward of the bicubic position resampling
    fails at the second crop size (torch 2.13, ``isIntList() INTERNAL ASSERT FAILED`` in
    ``UpsampleBicubic2DAaBackward0``). Checkpoint keys stay as they are.

    A ``RatsViT`` gets its ``forward_blocks`` compiled, which ``forward``,
    ``forward_features`` and ``forward_tokens`` (both head inputs of
    ``rats_mm.models.embedding``) all go through; any other module (a wrapper such as the
    dense backbone) its ``forward`` (``nn.Module.compile``).

    Args:
        module (nn.Module): The backbone (or a wrapper around it).

    Returns:
        nn.Module: ``module``, compiled.
    """
    if hasattr(module, 'forward_blocks'):
        module.forward_blocks = torch.compile(module.forward_blocks, dynamic=False)
    else:
        module.compile(dynamic=False)
    return module


def enable_tf32():
    """TF32 matrix products and convolutions on CUDA for what runs outside autocast (the
    loss, the centring, float32 runs): about 8x float32's throughput on A100 / H100-class
    GPUs at a 10-bit mantissa. A no-op without a CUDA device.

    Returns:
        bool: Whether it was switched on.
    """
    if not torch.cuda.is_available():
        return False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return True
