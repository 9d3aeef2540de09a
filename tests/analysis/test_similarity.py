import numpy as np
import pytest
import torch
from PIL import Image

from rats_mm.analysis import (register_palette, register_patch_similarity, render_part_overlay,
                              render_similarity_grid, similarity_maps, upsample_labels)


def test_similarity_shapes_and_range():
    g = torch.Generator().manual_seed(0)
    patches, registers = torch.randn(2, 12, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    sim = register_patch_similarity(patches, registers)
    assert sim.shape == (2, 5, 12)
    assert sim.min() >= -1 and sim.max() <= 1
    want = torch.nn.functional.cosine_similarity(registers[1, 3], patches[1, 7], dim=0)
    assert sim[1, 3, 7] == pytest.approx(float(want), abs=1e-6)
    same = register_patch_similarity(registers, registers)
    assert torch.allclose(same.diagonal(dim1=1, dim2=2), torch.ones(2, 5), atol=1e-6)
    maps = similarity_maps(sim, (3, 4), (30, 40))
    assert maps.shape == (2, 5, 30, 40)
    assert maps.min() >= sim.min() - 1e-6 and maps.max() <= sim.max() + 1e-6
    with pytest.raises(ValueError, match='grid'):
        similarity_maps(sim, (3, 3), (30, 30))


def test_register_palette_is_distinct():
    for n in (1, 8, 20, 37):
        pal = register_palette(n)
        assert pal.shape == (n, 3) and pal.dtype == np.uint8
        assert len({tuple(c) for c in pal}) == n
    assert np.array_equal(register_palette(30)[:8], register_palette(8))


def image_and_maps():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(32, 48, 3), dtype=np.uint8)
    sim = torch.rand(1, 6, 2 * 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return image, sim


def test_render_similarity_grid_writes_png(tmp_path, drawn_colours):
    image, sim = image_and_maps()
    maps = similarity_maps(sim, (2, 3), (32, 48))[0]
    path = render_similarity_grid(image, maps, tmp_path / 'grid.png', ncols=4)
    assert drawn_colours(tmp_path / 'grid.png') > 100
    with Image.open(path) as im:
        assert im.format == 'PNG' and im.size[0] > 100
    # (3, H, W) float tensor images and patch-grid-sized maps work too
    render_similarity_grid(torch.rand(3, 32, 48), sim.reshape(6, 2, 3), tmp_path / 'g2.png')
    assert drawn_colours(tmp_path / 'g2.png') > 100


def test_render_part_overlay_writes_png(tmp_path, drawn_colours):
    image, _ = image_and_maps()
    labels = upsample_labels(torch.tensor([[0, 1, 2, 3, 6, 6]]), (2, 3), (32, 48))[0]
    render_part_overlay(image, labels, tmp_path / 'overlay.png', num_registers=6)
    assert drawn_colours(tmp_path / 'overlay.png') > 100
    render_part_overlay(image, torch.tensor([[0, 1, 2], [3, 4, 5]]), tmp_path / 'o2.png', 6)
    assert drawn_colours(tmp_path / 'o2.png') > 100
    with pytest.raises(ValueError, match='labels'):
        render_part_overlay(image, labels + 1, tmp_path / 'bad.png', num_registers=6)


def test_analysis_core_imports_no_openmmlab():
    import subprocess
    import sys
    code = ('import sys, rats_mm.analysis; '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("mmengine", "mmcv", "mmseg", "mmdet")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]'
