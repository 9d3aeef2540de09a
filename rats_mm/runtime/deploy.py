"""ONNX export of a config's backbone (``tools/deploy/export_onnx.py``): the config decides
the input size and the exported blocks, ``rats_mm.models.export`` writes the file, and
onnxruntime checks it against PyTorch."""
import os

import numpy as np
import torch

from ..models.export import ExportedBackbone, export_onnx

__all__ = ['check_onnx', 'export_config_backbone']


def export_config_backbone(cfg, model, out, img_size=None, out_indices=None, norm_maps=True):
    """Export ``model`` as ``cfg.model.backbone`` describes its outputs.

    Args:
        cfg (mmengine.config.Config): The project config the model was built from.
        model (RatsViT): The loaded backbone.
        out (str): Output ``.onnx`` file (its folder is created).
        img_size (Sequence[int] | None): (H, W); default the backbone's ``img_size``.
        out_indices (Sequence[int] | None): Exported blocks; default the config's
            ``out_indices`` (downstream configs), else the last block.
        norm_maps (bool): Apply the final norm to the maps.

    Returns:
        tuple: (ExportedBackbone reference module, output names, (H, W)).
    """
    backbone = cfg.model.backbone
    if out_indices is None:
        out_indices = list(backbone.get('out_indices', (-1,)))
    size = tuple(img_size) if img_size else tuple(s * model.patch_size for s in model.grid_size)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    names = export_onnx(model, out, size, out_indices, norm_maps)
    return ExportedBackbone(model.eval(), out_indices, norm_maps).eval(), names, size


@torch.no_grad()
def check_onnx(path, reference, img_size, batch_size=3, seed=0):
    """Largest absolute difference between onnxruntime and PyTorch on a random batch.

    Args:
        path (str): The ``.onnx`` file.
        reference (ExportedBackbone): The module that was exported.
        img_size (tuple[int, int]): (H, W) of the export.
        batch_size (int): Batch to run (any: the batch is dynamic).
        seed (int): Seed of the random batch.

    Returns:
        float: max |onnx - torch| over every output.
    """
    import onnxruntime
    x = torch.randn(batch_size, 3, *img_size, generator=torch.Generator().manual_seed(seed))
    ort_session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = ort_session.run(None, {'images': x.numpy()})
    want = reference(x)
    if len(got) != len(want):
        raise RuntimeError(f'{path}: {len(got)} outputs, PyTorch gives {len(want)}')
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
