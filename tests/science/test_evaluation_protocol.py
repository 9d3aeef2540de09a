"""The evaluation protocol that make demo and the science run share
(``rats_mm.science.evaluate_pretrained``): the summary keys each caller writes, and figures
that are those of the analyses it wraps."""
import os

import pytest
import torch

from rats_mm.analysis import evaluate_parts
from rats_mm.analysis.discovery.objects import discover_objects
from rats_mm.data import generate_dataset
from rats_mm.models import RatsViT
from rats_mm.science.evaluate import evaluate_pretrained

TINY = dict(img_size=64, patch_size=8, embed_dim=32, depth=1, num_heads=2)


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('scenes'))
    generate_dataset(root, 10, size=64, seed=0, val_fraction=0.4)
    return root


def _models(seed):
    torch.manual_seed(seed)
    rats = RatsViT(**TINY, num_registers=4, attn_mode='rats', class_token=False).eval()
    vit = RatsViT(**TINY, num_registers=0, attn_mode='full', class_token=True).eval()
    return rats, vit


def test_the_demo_and_the_science_keys(scenes, tmp_path):
    rats, vit = _models(0)
    random_rats, random_vit = _models(1)
    demo, details = evaluate_pretrained(
        {'rats': rats, 'vit': vit}, {'rats': random_rats}, {'': scenes}, scenes, 64, 4,
        metrics=('miou', 'nmi', 'ari'), lost=('rats', 'vit'), vis_dir=str(tmp_path))
    parts = {f'part_{m}_{p}{k}' for m in ('miou', 'nmi', 'ari') for p in ('', 'random_init_')
             for k in ('rats', 'rats_broadcast')} | {f'part_{m}_vit_kmeans'
                                                     for m in ('miou', 'nmi', 'ari')}
    corloc = {'corloc_rats_registers', 'corloc_rats_registers_random_init', 'corloc_rats_lost',
              'corloc_vit_lost', 'corloc_whole_image'}
    assert set(demo) == parts | corloc
    assert os.listdir(tmp_path / 'rats_lost')  # the drawn boxes
    science, _ = evaluate_pretrained(
        {'rats': rats, 'rats_competition': rats, 'vit': vit},
        {'rats': random_rats, 'rats_competition': random_rats, 'vit': random_vit},
        {'': scenes, '_scenes': scenes}, scenes, 64, 4, max_images=3)
    names = ('rats', 'rats_broadcast', 'rats_competition', 'rats_competition_broadcast',
             'vit_kmeans')
    assert set(science) == (
        {f'part_miou_{p}{n}{t}' for p in ('', 'random_init_') for n in names
         for t in ('', '_scenes')}
        | {f'corloc_{n}_registers{r}' for n in ('rats', 'rats_competition')
           for r in ('', '_random_init')} | {'corloc_vit_lost', 'corloc_whole_image'})
    # the figures are the analyses' own
    want = evaluate_parts(rats, scenes, method='registers', assignment='broadcast',
                          split='validation')
    assert demo['part_nmi_rats_broadcast'] == want['nmi']
    assert details['part_rats_broadcast']['miou'] == want['miou']
    ann = os.path.join(scenes, 'instances_validation.json')
    lost = discover_objects(vit, scenes, ann, method='lost', img_dir='images/validation')
    assert demo['corloc_vit_lost'] == lost['corloc']
