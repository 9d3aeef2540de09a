"""ONNX export (tools/deploy/export_onnx.py): onnxruntime reproduces PyTorch for any batch."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from rats_mm.models import RatsViT
from rats_mm.models.export import ExportedBackbone, export_onnx
from rats_mm.models.weights import backbone_options, save_backbone

onnxruntime = pytest.importorskip('onnxruntime')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=2, num_registers=4)


@pytest.mark.parametrize('compress,logits', [('attention', 'dot'), ('competition', 'dot'),
                                             ('competition', 'cosine')])
def test_onnxruntime_matches_pytorch_with_a_dynamic_batch(tmp_path, compress, logits):
    torch.manual_seed(0)
    model = RatsViT(**TINY, compress=compress, logits=logits).eval()
    if logits == 'cosine':  # trained-looking temperatures, one above the clamp at log 100
        with torch.no_grad():
            for block in model.blocks:
                block.attn.logit_scale.uniform_(1.0, 4.0)
            model.blocks[0].attn.logit_scale[2, 1] = 6.0
    path = str(tmp_path / 'm.onnx')
    names = export_onnx(model, path, (32, 48), out_indices=(0, -1))  # not the stored grid
    assert names == ['map_0', 'map_2', 'registers']
    ort_session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    reference = ExportedBackbone(model, (0, -1))
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 48)
        got = ort_session.run(None, {'images': x.numpy()})
        with torch.no_grad():
            want = reference(x)
        assert [g.shape for g in got] == [(batch, 24, 4, 6), (batch, 24, 4, 6), (batch, 4, 24)]
        for g, w in zip(got, want):
            assert np.abs(g - w.numpy()).max() < 1e-4


def test_cli_exports_a_config_backbone(tmp_path):
    torch.manual_seed(1)
    model = RatsViT(**TINY)
    ckpt, config = tmp_path / 'b.pth', tmp_path / 'c.py'
    save_backbone(model.state_dict(), str(ckpt), backbone_options(model))
    config.write_text(f"model = dict(backbone=dict(type='RatsViT', out_indices=(1, 2), "
                      f"**{TINY!r}))\n")
    out = tmp_path / 'deploy' / 'b.onnx'
    proc = subprocess.run([sys.executable, 'tools/deploy/export_onnx.py', str(config),
                           str(ckpt), '--out', str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'map_1, map_2, registers' in proc.stdout
    difference = float(proc.stdout.split('max abs difference ')[1].split()[0])
    assert difference < 1e-4
    ort_session = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert [o.name for o in ort_session.get_outputs()] == ['map_1', 'map_2', 'registers']
    with pytest.raises(ValueError, match='not a multiple of the patch size'):
        export_onnx(model, str(tmp_path / 'x.onnx'), (30, 32))
