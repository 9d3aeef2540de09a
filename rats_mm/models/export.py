"""ONNX export of a backbone: patch maps of chosen blocks and the final registers, with a
dynamic batch (``tools/deploy/export_onnx.py``)."""
import torch
from torch import nn

__all__ = ['ExportedBackbone', 'export_onnx']


class ExportedBackbone(nn.Module):
    """What a deployed backbone returns: the maps of ``out_indices`` and the registers.

    Args:
        model (RatsViT): The backbone (eval mode).
        out_indices (Sequence[int]): Blocks whose patch maps are returned (negative allowed).
        norm_maps (bool): Apply the final norm to the maps.

    Returns (forward):
        tuple: ``(*maps, registers)``: (B, D, h, w) maps, one per block in ``out_indices``,
        and the final normed registers (B, N, D) ((B, 1, D) [CLS] for a model without
        registers).
    """

    def __init__(self, model, out_indices=(-1,), norm_maps=True):
        super().__init__()
        self.model = model
        self.out_indices = list(out_indices)
        self.norm_maps = norm_maps

    def forward(self, images):
        final, maps = self.model.forward_intermediates(images, indices=self.out_indices,
                                                       norm=self.norm_maps)
        cls, registers, _ = self.model.token_groups(final)
        if registers.shape[1] == 0:
            registers = cls[:, None]                                       # (B, 1, D) [CLS]
        return (*maps, registers)


def export_onnx(model, path, img_size, out_indices=(-1,), norm_maps=True, batch_size=2,
                opset=18):
    """Write ``model`` as ONNX with a dynamic batch dimension.

    Args:
        model (RatsViT): The backbone.
        path (str): Output ``.onnx`` file.
        img_size (tuple[int, int]): Input (H, W), multiples of the patch size; the position
            embedding is resampled for it once, at export.
        out_indices (Sequence[int]): Blocks whose maps are exported.
        norm_maps (bool): Apply the final norm to the maps.
        batch_size (int): Batch of the example input (the exported batch is dynamic).
        opset (int): ONNX opset.

    Returns:
        list[str]: The output names (``map_<block>`` per map, then ``registers``).
    """
    H, W = img_size
    if H % model.patch_size or W % model.patch_size:
        raise ValueError(f'img_size={H}x{W} is not a multiple of the patch size '
                         f'{model.patch_size}')
    wrapper = ExportedBackbone(model.eval(), out_indices, norm_maps).eval()
    take, _ = model.take_indices(list(out_indices))
    names = [f'map_{i}' for i in take] + ['registers']
    example = torch.randn(batch_size, 3, H, W)
    batch = torch.export.Dim('batch', min=1)
    with torch.no_grad():
        torch.onnx.export(wrapper, (example,), path, input_names=['images'],
                          output_names=names, dynamic_shapes={'images': {0: batch}},
                          opset_version=opset, dynamo=True, external_data=False)
    return names
