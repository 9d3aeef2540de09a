"""Fixtures of the analysis-tool tests: tiny exported backbones, their configs and a
generic-layout part folder; one torch thread."""
import numpy as np
import pytest
import torch
from PIL import Image

from analysis_tool_support import RATS, VIT
from rats_mm.models import RatsViT


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    """Configs, exported checkpoints and a generic-layout part folder in a tmp dir."""
    root = tmp_path_factory.mktemp('tools')
    torch.manual_seed(0)
    (root / 'rats.py').write_text(f'model = dict(backbone={RATS!r})\n')
    (root / 'vit.py').write_text(  # downstream style: wrapper keys around the ViT arguments
        "model = dict(type='EncoderDecoder', backbone=dict(type='RatsViT', out_indices=(0, 1), "
        "norm_maps=True, frozen_stages=-1, init_cfg=dict(type='Pretrained', "
        f"checkpoint='nowhere.pth'), **{VIT!r}))\n")
    torch.save(RatsViT(**RATS).state_dict(), root / 'rats.pth')
    torch.save(RatsViT(**VIT).state_dict(), root / 'vit.pth')
    torch.save(RatsViT(**dict(VIT, embed_dim=32)).state_dict(), root / 'wide.pth')
    rng = np.random.default_rng(0)
    for rel, (h, w) in {'a.png': (50, 70), 'b.jpg': (61, 45), 'sub/c.png': (40, 40)}.items():
        image, parts = root / 'generic' / 'images' / rel, root / 'generic' / 'parts' / rel
        image.parent.mkdir(parents=True, exist_ok=True)
        parts.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(image)
        mask = np.zeros((h, w), np.uint8)
        mask[h // 3:, : w // 2], mask[: h // 4] = 3, 254
        mask[-2:] = 255
        Image.fromarray(mask).save(parts.with_suffix('.png'))
    return root


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and do not fight a busy machine's cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
