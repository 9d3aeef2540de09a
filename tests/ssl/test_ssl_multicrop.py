"""Multi-crop augmentation and collate."""
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from rats_mm.ssl import MultiCropAugmentation, collate_multicrop

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@pytest.fixture(scope='module')
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8), 'RGB')


def small_aug(local_crops_number=3):
    return MultiCropAugmentation(local_crops_number=local_crops_number, global_crop_size=32,
                                 local_crop_size=16)


def test_number_shapes_and_dtype(image):
    crops = small_aug(3)(image)
    assert len(crops) == 5
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    assert all(c.dtype == torch.float32 for c in crops)


def test_tiny_crops_with_blur(image):
    torch.manual_seed(0)
    aug = MultiCropAugmentation(local_crops_number=4, global_crop_size=4, local_crop_size=1)
    for _ in range(3):
        crops = aug(image)
        assert [tuple(c.shape) for c in crops] == [(3, 4, 4)] * 2 + [(3, 1, 1)] * 4


def test_no_local_crops(image):
    crops = small_aug(0)(image)
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2


def test_values_are_normalised(image):
    torch.manual_seed(0)
    for crop in small_aug(4)(image):
        # undoing the normalisation gives pixel values in [0, 1]
        pixels = crop * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
        assert crop.min() < 0  # normalised, not raw [0, 1] pixels


def test_deterministic_under_manual_seed(image):
    aug = small_aug(2)
    torch.manual_seed(123)
    first = aug(image)
    torch.manual_seed(123)
    second = aug(image)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    torch.manual_seed(124)
    third = aug(image)
    assert any(not torch.equal(a, c) for a, c in zip(first, third))


def test_deterministic_under_generator_and_global_rng_untouched(image):
    aug = small_aug(2)
    torch.manual_seed(7)
    state = torch.get_rng_state()
    first = aug(image, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    second = aug(image, generator=torch.Generator().manual_seed(5))
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    other = aug(image, generator=torch.Generator().manual_seed(6))
    assert any(not torch.equal(a, c) for a, c in zip(first, other))


@pytest.mark.parametrize('kwargs, name', [
    (dict(global_crops_scale=(0.0, 1.0)), 'global_crops_scale'),
    (dict(global_crops_scale=(0.5, 1.2)), 'global_crops_scale'),
    (dict(local_crops_scale=(0.4, 0.05)), 'local_crops_scale'),
    (dict(local_crops_scale=0.3), 'local_crops_scale'),
    (dict(local_crops_number=-1), 'local_crops_number'),
    (dict(local_crops_number=2.5), 'local_crops_number'),
    (dict(global_crop_size=0), 'global_crop_size'),
    (dict(local_crop_size=-16), 'local_crop_size'),
    (dict(std=(0.2, 0.0, 0.2)), 'std'),
    (dict(mean=(0.5, 0.5)), 'mean'),
])
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MultiCropAugmentation(**kwargs)


def test_collate_is_per_crop_index(image):
    aug = small_aug(2)
    batch = [aug(image) for _ in range(3)]
    out = collate_multicrop(batch)
    assert len(out) == 4
    assert [tuple(t.shape) for t in out] == [(3, 3, 32, 32)] * 2 + [(3, 3, 16, 16)] * 2
    assert torch.equal(out[2][1], batch[1][2])
    # concatenation is crop-major: rows 0..B-1 are crop 0 of every image
    assert torch.equal(torch.cat(out[:2])[3], batch[0][1])


def test_collate_rejects_ragged_or_empty():
    with pytest.raises(ValueError):
        collate_multicrop([])
    with pytest.raises(ValueError, match=r'batch\[1\]'):
        collate_multicrop([[torch.zeros(3, 2, 2)] * 2, [torch.zeros(3, 2, 2)]])


def test_grayscale_views_without_other_photometric_changes(image):
    """The demo's recipe: every view grayscale, no jitter, blur or solarisation; a view is
    then the normalised grayscale of its crop, identical across channels before Normalize."""
    aug = MultiCropAugmentation(local_crops_number=2, global_crop_size=32, local_crop_size=16,
                                grayscale_p=1.0, color_jitter_p=0.0, blur_p=(0.0, 0.0, 0.0),
                                solarize_p=0.0)
    for crop in aug(image):
        raw = crop * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]
        assert torch.allclose(raw[0], raw[1], atol=1e-5) and torch.allclose(raw[1], raw[2],
                                                                           atol=1e-5)


def test_blur_sigma_scales_with_the_crop_size():
    def sigmas(aug):
        out = []
        for pipeline in (aug.global_transform1, aug.local_transform):
            blur = next(t for t in pipeline.transforms
                        if isinstance(t, torchvision.transforms.RandomApply)
                        and isinstance(t.transforms[0], torchvision.transforms.GaussianBlur))
            out.append(tuple(blur.transforms[0].sigma))
        return out
    fixed = MultiCropAugmentation(global_crop_size=64, local_crop_size=32)
    scaled = MultiCropAugmentation(global_crop_size=64, local_crop_size=32,
                                   scale_blur_to_crop=True)
    assert sigmas(fixed) == [(0.1, 2.0), (0.1, 2.0)]
    (g_lo, g_hi), (l_lo, l_hi) = sigmas(scaled)
    assert g_hi == pytest.approx(2.0 * 64 / 224) and l_hi == pytest.approx(2.0 * 32 / 96)
    assert g_lo == pytest.approx(0.1 * 64 / 224) and l_lo == pytest.approx(0.1 * 32 / 96)


@pytest.mark.parametrize('kwargs, match', [
    (dict(color_jitter=(0.4, 0.4, 0.2, 0.6)), 'hue <= 0.5'),
    (dict(color_jitter=(0.4, 0.4)), 'color_jitter must be'),
    (dict(grayscale_p=1.5), 'grayscale_p must be a probability'),
    (dict(blur_p=(1.0, 0.1)), 'blur_p must be 3 probabilities'),
    (dict(blur_p=(1.0, 0.1, -0.5)), 'blur_p must be a probability'),
    (dict(solarize_p=True), 'solarize_p must be a probability'),
])
def test_photometric_options_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiCropAugmentation(**kwargs)


def test_each_view_crops_with_its_own_scale_range_and_size():
    """The local views draw from local_crops_scale and the global ones from
    global_crops_scale (swapping them changed no other test), in both multi-crop
    implementations."""
    from rats_mm.ssl import DeviceMultiCrop
    kwargs = dict(global_crops_scale=(0.6, 0.9), local_crops_scale=(0.05, 0.2),
                  local_crops_number=2, global_crop_size=32, local_crop_size=16)
    aug = MultiCropAugmentation(**kwargs)
    for pipeline, scale, size in ((aug.global_transform1, (0.6, 0.9), 32),
                                  (aug.global_transform2, (0.6, 0.9), 32),
                                  (aug.local_transform, (0.05, 0.2), 16)):
        crop = pipeline.transforms[0]
        assert isinstance(crop, torchvision.transforms.RandomResizedCrop)
        assert tuple(crop.scale) == scale and tuple(crop.size) == (size, size)
    device = DeviceMultiCrop(**kwargs)
    drawn = []
    real = device.sample_boxes

    def recording(num, height, width, scale, *args, **kwargs):
        boxes = real(num, height, width, scale, *args, **kwargs)
        areas = (boxes[:, 2] * boxes[:, 3]).float() / (height * width)
        drawn.append((tuple(scale), areas))
        return boxes
    device.sample_boxes = recording
    views = device(torch.randint(0, 256, (64, 3, 40, 40), dtype=torch.uint8),
                   generator=torch.Generator().manual_seed(0))
    assert [tuple(v.shape[-2:]) for v in views] == [(32, 32)] * 2 + [(16, 16)] * 2
    assert [s for s, _ in drawn] == [(0.6, 0.9)] * 2 + [(0.05, 0.2)] * 2
    for (low, high), areas in drawn:  # integer boxes: areas within rounding of the range
        assert areas.min() >= 0.75 * low and areas.max() <= high + 0.06
