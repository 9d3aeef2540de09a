"""The attention probe (tools/analysis/attention_probe.py): a cross-entropy signal that trains
the config's backbone and measures its register attention as it learns."""
import json
import os
import subprocess
import sys

import pytest
import torch

from rats_mm.analysis.registers.attention_probe import (ProbeSettings, labelled_images,
                                              train_attention_probe)
from rats_mm.analysis.registers.attention import STEP_STATISTICS
from rats_mm.models import RatsViT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize('config,compress,logits,embedding', [
    ('configs/demo/dino_rats_synthetic.py', 'attention', 'dot', 'pooled'),
    ('configs/demo/dino_rats_competition_synthetic.py', 'competition', 'dot', 'pooled'),
    ('configs/demo/dino_rats_cosine_synthetic.py', 'attention', 'cosine', 'registers')])
def test_cli_writes_per_block_statistics_and_a_backbone(synthetic_root, tmp_path, config,
                                                        compress, logits, embedding):
    out, backbone = tmp_path / 'probe.json', tmp_path / 'probe.pth'
    subprocess.run([sys.executable, 'tools/analysis/attention_probe.py', config,
                    '--data-root', synthetic_root, '--iters', '4', '--interval', '2',
                    '--batch-size', '8', '--embedding', embedding, '--out', str(out),
                    '--save-backbone', str(backbone)],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    assert (result['compress'], result['logits']) == (compress, logits)
    assert result['embedding'] == result['settings']['embedding'] == embedding
    assert [p['iter'] for p in result['history']] == [0, 2, 4]
    assert result['history'][0]['loss'] is None and result['history'][-1]['loss'] > 0
    blocks = result['attention_by_block']
    assert len(blocks) == 4 and set(blocks[0]) == set(STEP_STATISTICS)
    assert all(-1 <= b['compress_map_similarity'] <= 1 for b in blocks)
    saved = torch.load(backbone, weights_only=True)
    # the config's backbone: model(x) the register mean, 12 registers
    assert saved['meta']['rats_mm_backbone'] == {'compress': compress, 'logits': logits,
                                                 'global_pool': 'token', 'fc_norm': False,
                                                 'num_registers': 12}


def _two_class_images(n, generator):
    """A bright red (class 0) or a bright blue (class 1) square on noise."""
    labels = torch.arange(n) % 2
    x = torch.randn(n, 3, 16, 16, generator=generator) * 0.3
    x[labels == 0, 0, 4:12, 4:12] += 2.0
    x[labels == 1, 2, 4:12, 4:12] += 2.0
    return x, labels


def test_probe_learns_and_measures_the_model_it_trains():
    """On a task a linear read of the registers can solve, the probe's accuracy reaches 1 and
    its loss falls; every point carries the attention profile of the model being trained."""
    generator = torch.Generator().manual_seed(0)
    train, val = _two_class_images(64, generator), _two_class_images(16, generator)
    torch.manual_seed(0)
    model = RatsViT(img_size=16, patch_size=4, embed_dim=24, depth=2, num_heads=2,
                    num_registers=4)
    before = model.registers.detach().clone()
    lines = []
    result = train_attention_probe(model, train, val, ProbeSettings(
        iters=60, batch_size=16, lr=2e-3, interval=30), log=lines.append)
    history = result['history']
    assert [p['iter'] for p in history] == [0, 30, 60] and len(lines) == 3
    assert history[-1]['val_acc'] == 1.0
    assert history[-1]['loss'] < history[1]['loss']
    assert not torch.equal(model.registers, before)  # the backbone itself was trained
    assert len(history[-1]['attention_by_block']) == 2
    assert 0 < history[-1]['registers_in_use'] <= 4


def test_probe_reading_every_register_trains_a_classifier_on_all_of_them():
    """With ``embedding='registers'`` the classifier reads the N registers concatenated:
    a (B, N * D) input that a classifier of width D would refuse, and the task is still
    learnt; a ViT with a [CLS] token is refused (it has no register-only embedding)."""
    generator = torch.Generator().manual_seed(0)
    train, val = _two_class_images(64, generator), _two_class_images(16, generator)
    torch.manual_seed(0)
    model = RatsViT(img_size=16, patch_size=4, embed_dim=24, depth=2, num_heads=2,
                    num_registers=4)
    result = train_attention_probe(model, train, val, ProbeSettings(
        iters=60, batch_size=16, lr=2e-3, interval=30, embedding='registers'),
        log=lambda line: None)
    assert result['final']['val_acc'] == 1.0
    vit = RatsViT(img_size=16, patch_size=4, embed_dim=24, depth=1, num_heads=2,
                  num_registers=0, class_token=True, attn_mode='full')
    with pytest.raises(ValueError, match="global_pool='registers' reads the registers"):
        train_attention_probe(vit, train, val, ProbeSettings(iters=1, embedding='registers'))


def test_labelled_images_reads_categories_and_names_unlabelled_files(synthetic_root,
                                                                     tmp_path):
    images, labels = labelled_images(synthetic_root, 'training', 64, 8)
    assert images.shape == (12, 3, 64, 64) and labels.shape == (12,)
    with open(os.path.join(synthetic_root, 'labels', 'training.txt')) as f:
        first = f.readline().split()
    assert labels[0] == int(first[1])
    with pytest.raises(FileNotFoundError, match='no labels'):
        labelled_images(str(tmp_path), 'training', 64, 8)
    with pytest.raises(ValueError, match='iters=0'):
        ProbeSettings(iters=0)
