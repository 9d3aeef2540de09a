"""The register dictionary and token-norm CLIs (tools/analysis/register_dictionary.py,
token_norms.py) on the tiny exported backbones of conftest.py."""
import json
import os

import numpy as np
import pytest
import torch

from analysis_tool_support import RATS, TINY, VIT, png_size, run_tool, tool_module
from rats_mm.analysis.io import prepare_image
from rats_mm.models import RatsViT


def test_register_dictionary_cli(assets, synthetic_root, tmp_path, drawn_colours):
    run_tool('register_dictionary.py', assets / 'rats.py', assets / 'rats.pth', '--data-root',
             synthetic_root, '--out-dir', tmp_path, '--num-entries', 3, '--top-k', 2)
    result = json.loads((tmp_path / 'dictionary.json').read_text())
    assert len(result['entries']) == 3 and result['num_images'] == 16
    assert (result['num_registers'], result['num_entries']) == (4, 3)
    # every image's category from the label files; names: meta.json's, index + 1 = id
    category_of = {}
    for split in ('training', 'validation'):
        with open(os.path.join(synthetic_root, 'labels', f'{split}.txt')) as f:
            for line in f:
                rel, cid = line.split()
                category_of[os.path.join(synthetic_root, rel)] = int(cid)
    meta = json.loads(open(os.path.join(synthetic_root, 'meta.json')).read())
    present = sorted(set(category_of.values()))
    assert result['category_ids'] == present
    assert result['category_names'] == [meta['categories'][c - 1] for c in present]
    assert sorted(map(os.path.abspath, result['images'])) == sorted(category_of)
    # the entries' counts are those of the per-image, per-register entry labels it wrote
    labels = np.array(result['register_entries'])                               # (16, 4)
    assert labels.shape == (16, 4) and set(np.unique(labels)) <= {0, 1, 2}
    column = np.array([present.index(category_of[os.path.abspath(p)])
                       for p in result['images']])                            # (16,)
    counts = np.zeros((3, len(present)), np.int64)
    for e, entry in enumerate(result['entries']):
        assert entry['id'] == e and entry['size'] == int((labels == e).sum())
        registers = {str(r): int((labels[:, r] == e).sum()) for r in range(4)}
        assert entry['registers'] == {r: n for r, n in registers.items() if n}
        for c in range(len(present)):
            counts[e, c] = int((labels[column == c] == e).sum())
        assert entry['categories'] == {str(c): int(n) for c, n in enumerate(counts[e]) if n}
        # up to --top-k distinct images with a register in the entry
        assert len(entry['top_images']) == min(2, int((labels == e).any(axis=1).sum()))
        assert len({top['path'] for top in entry['top_images']}) == len(entry['top_images'])
        for top in entry['top_images']:  # each shown image's register is in this entry
            assert labels[result['images'].index(top['path']), top['register']] == e
        cosines = [top['cosine'] for top in entry['top_images']]  # closest first
        assert cosines == sorted(cosines, reverse=True)
    assert result['entry_category_counts'] == counts.tolist()
    assert sum(e['size'] for e in result['entries']) == 16 * 4
    for name in ('dictionary_heatmap.png', 'entry_00.png', 'entry_01.png', 'entry_02.png'):
        assert drawn_colours(tmp_path / name) > 100, name


def test_register_dictionary_without_labels(assets, tmp_path, one_thread):
    module = tool_module('register_dictionary.py')
    module.main([str(assets / 'rats.py'), str(assets / 'rats.pth'), '--data-root',
                 str(assets / 'generic'), '--out-dir', str(tmp_path)])
    result = json.loads((tmp_path / 'dictionary.json').read_text())
    assert result['category_names'] is None and result['num_entries'] == 4
    # a plain ViT: one [CLS] embedding per image, clustered into entries
    module.main([str(assets / 'vit.py'), str(assets / 'vit.pth'), '--data-root',
                 str(assets / 'generic'), '--out-dir', str(tmp_path / 'vit'),
                 '--num-entries', '2'])
    result = json.loads((tmp_path / 'vit' / 'dictionary.json').read_text())
    assert result['num_registers'] == 0 and len(result['entries']) == 2


def test_token_norms_cli(assets, tmp_path, one_thread, drawn_colours):
    run_tool('token_norms.py', assets / 'rats.py', assets / 'rats.pth', assets / 'vit.py',
             assets / 'vit.pth', '--data-root', assets / 'generic', '--out-dir', tmp_path)
    result = json.loads((tmp_path / 'token_norms.json').read_text())
    assert sorted(result) == ['rats', 'vit']
    # the norms recomputed here: each block's output (forward hooks), patch tokens only (after
    # the 4 registers, or the [CLS] token), raw residual stream, over the 3 generic images
    # (48 x 64, 56 x 40, 40 x 40 after cropping: 48 + 35 + 25 = 108 patches)
    images = [assets / 'generic' / 'images' / rel for rel in ('a.png', 'b.jpg', 'sub/c.png')]
    for label, kwargs, prefix in (('rats', RATS, 4), ('vit', VIT, 1)):
        r = result[label]
        assert (r['num_registers'], r['class_token'], r['num_images']) == (
            kwargs['num_registers'], kwargs['class_token'], 3)
        model = RatsViT(**kwargs).eval()
        model.load_state_dict(torch.load(assets / f'{label}.pth'))
        outputs = []
        hooks = [blk.register_forward_hook(lambda m, i, o: outputs.append(o))
                 for blk in model.blocks]
        norms = [[] for _ in model.blocks]
        with torch.no_grad():
            for path in images:
                outputs.clear()
                model.forward_features(prepare_image(str(path), 8))
                for layer, out in enumerate(outputs):
                    norms[layer].append(out[0, prefix:].norm(dim=-1).double().numpy())
        for hook in hooks:
            hook.remove()
        assert len(r['layers']) == TINY['depth'] == len(norms)
        for stats, layer_norms in zip(r['layers'], norms):
            n = np.concatenate(layer_norms)
            assert stats['num_tokens'] == n.size == 108
            for key, value in (('mean', n.mean()), ('median', np.median(n)), ('max', n.max())):
                assert stats[key] == pytest.approx(value, rel=1e-4), (label, key)
            assert stats['threshold'] == pytest.approx(2 * np.median(n), rel=1e-4)
            assert stats['num_outliers'] == int((n > 2 * np.median(n)).sum())
            assert stats['outlier_fraction'] == stats['num_outliers'] / 108
            assert sum(stats['hist']) == 108
        assert drawn_colours(tmp_path / f'norms_{label}.png') > 100
    assert png_size(tmp_path / 'outlier_fraction.png') == (500, 320)
    with pytest.raises(SystemExit):
        tool_module('token_norms.py').parse_args([str(assets / 'rats.py'), '--data-root',
                                                   'x', '--out-dir', 'y'])
