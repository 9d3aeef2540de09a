"""The end-of-run feature probes (``rats_mm.science.end_probes``): which feature is which, and
probes that find what a feature carries."""
import pytest
import torch

from rats_mm.models import RatsViT
from rats_mm.science.measure import KNNSet
from rats_mm.science.end_probes import image_features, probe_features

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)


def _images(count, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)


def test_features_of_a_rats_and_a_vit():
    torch.manual_seed(0)
    rats = RatsViT(**TINY, num_registers=4, attn_mode='rats', class_token=False).eval()
    vit = RatsViT(**TINY, num_registers=0, attn_mode='full', class_token=True).eval()
    images = _images(5, 0)
    feats = image_features(rats, images, 32, grayscale=False, batch_size=2)
    assert feats['registers'].shape == (5, 4 * 32)
    assert feats['patches'].shape == feats['embedding'].shape == (5, 32)
    # a RATS without [CLS] embeds an image as the mean of its registers: the concatenation
    # keeps them register by register
    assert torch.allclose(feats['registers'].view(5, 4, 32).mean(1), feats['embedding'],
                          atol=1e-5)
    assert torch.allclose(feats['embedding'][:2], image_features(
        rats, images[:2], 32, grayscale=False)['embedding'], atol=1e-5)
    assert set(image_features(vit, images, 32, grayscale=False)) == {'embedding', 'patches'}


def test_probes_find_a_class_painted_into_the_images():
    """Bright images are one class, dark ones another: every probe of every feature tells
    them apart on new images, so a probe's figure is the feature's, not the probe's."""
    torch.manual_seed(0)
    rats = RatsViT(**TINY, num_registers=4, attn_mode='rats', class_token=False).eval()

    def split(count, seed):
        images = _images(count, seed) // 4  # (count, 3, 32, 32) dark
        labels = torch.arange(count) % 2
        images[labels == 1] += 180  # bright
        return images, labels

    knn = KNNSet(split(40, 1), split(20, 2), 'cpu')
    result = probe_features(rats, knn, 32, grayscale=False, linear_epochs=30)
    assert set(result) == {'knn_top1', 'linear_top1'}
    for metric in result.values():
        assert set(metric) == {'embedding', 'registers', 'patches'}
        assert all(v == pytest.approx(1.0) for v in metric.values()), metric
