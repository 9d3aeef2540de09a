"""Batched on-device DINO multi-crop (DeviceMultiCrop) against the per-image CPU pipeline."""
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from scipy.stats import ks_2samp
from torchvision.transforms import InterpolationMode

from rats_mm.ssl.device_multicrop import DeviceMultiCrop, _gaussian_blur, _hue_rotate
from rats_mm.ssl.multicrop import MultiCropAugmentation

H, W = 96, 128  # non-square on purpose: the relative centre x and y differ in range
DRAWS = 10_000
KS_MIN_P = 1e-3
MEAN = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
STD = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
PHOTOMETRIC_OFF = dict(color_jitter_p=0.0, grayscale_p=0.0, blur_p=(0.0, 0.0, 0.0),
                       solarize_p=0.0)


def denormalise(view):
    return view * STD + MEAN


def box_stats(boxes):
    """Area fraction, aspect ratio w/h and relative centre (x, y) of (N, 4) top-left-h-w boxes."""
    top, left, h, w = np.asarray(boxes, dtype=np.float64).T
    return {'area': h * w / (H * W), 'ratio': w / h,
            'centre_x': (left + w / 2) / W, 'centre_y': (top + h / 2) / H}


@pytest.fixture(scope='module')
def cpu_boxes():
    """10,000 boxes per scale range from the CPU pipeline's own RandomResizedCrop instances."""
    aug = MultiCropAugmentation()
    image = torch.zeros(3, H, W)
    out = {}
    for seed, (name, crop) in enumerate([('global', aug.global_transform1.transforms[0]),
                                         ('local', aug.local_transform.transforms[0])]):
        torch.manual_seed(seed)
        out[name] = box_stats([crop.get_params(image, crop.scale, crop.ratio)
                               for _ in range(DRAWS)])
    return out


@pytest.fixture(scope='module')
def device_boxes():
    dev = DeviceMultiCrop()
    gen = torch.Generator().manual_seed(10)
    return {name: box_stats(dev.sample_boxes(DRAWS, H, W, scale, generator=gen))
            for name, scale in [('global', dev.global_crops_scale),
                                ('local', dev.local_crops_scale)]}


@pytest.mark.parametrize('name', ['global', 'local'])
@pytest.mark.parametrize('stat', ['area', 'ratio', 'centre_x', 'centre_y'])
def test_box_statistics_match_torchvision(cpu_boxes, device_boxes, name, stat):
    """Two-sample KS test, 10,000 draws each, fixed seeds: the hypothesis that both samplers
    draw the same distribution is kept at p > 1e-3 (a per-test false alarm rate of 0.1 %
    were the seeds random; the discrete box sizes only make KS more conservative)."""
    assert ks_2samp(cpu_boxes[name][stat], device_boxes[name][stat]).pvalue > KS_MIN_P


def test_box_statistics_tell_the_scale_ranges_apart(cpu_boxes, device_boxes):
    """The same KS test (p <= 1e-3 rejects) rejects local crops drawn from the global range."""
    assert ks_2samp(cpu_boxes['local']['area'], device_boxes['global']['area']).pvalue < KS_MIN_P
    assert ks_2samp(cpu_boxes['global']['area'], device_boxes['local']['area']).pvalue < KS_MIN_P


def test_boxes_are_integer_and_inside_the_image():
    boxes = DeviceMultiCrop().sample_boxes(2000, H, W, (0.05, 1.0),
                                           generator=torch.Generator().manual_seed(0))
    assert boxes.shape == (2000, 4) and boxes.dtype == torch.float32
    assert torch.equal(boxes, boxes.round())
    top, left, h, w = boxes.unbind(1)
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= H).all() and (left + w <= W).all()


def test_boxes_fall_back_to_torchvision_centre_crop():
    """A 4 x 400 strip: no attempt fits, so every box is get_params' clamped centre crop."""
    aug = MultiCropAugmentation(global_crops_scale=(0.9, 1.0))
    crop = aug.global_transform1.transforms[0]
    expected = crop.get_params(torch.zeros(3, 4, 400), crop.scale, crop.ratio)
    boxes = DeviceMultiCrop.from_multicrop(aug).sample_boxes(50, 4, 400, crop.scale)
    assert torch.equal(boxes, torch.tensor(expected, dtype=torch.float32).expand(50, 4))


def ramp_images(batch):
    """(B, 3, H, W) uint8 images, exactly linear in x and y (no rounding)."""
    y = torch.arange(H).view(H, 1).expand(H, W)
    x = torch.arange(W).view(1, W).expand(H, W)
    image = torch.stack([x + y, 255 - x - y, 2 * x]).to(torch.uint8)  # (3, H, W)
    return image.expand(batch, 3, H, W).contiguous()


def test_crop_content_matches_torchvision_resized_crop():
    """With every photometric stage off, each view is TF.resized_crop (bicubic, antialiased) of
    its box, flipped where flipped: within 0.5/255 everywhere and 0.1/255 on average on an
    exactly linear ramp (measured: 0.2/255 and 0.02/255; both interpolations reproduce a ramp,
    up to resized_crop's kernel truncation at the crop's edges), where a box one pixel off
    would be 1/255 to 2/255 off everywhere and a wrong flip tens of 1/255."""
    batch = 6
    images = ramp_images(batch)
    aug = DeviceMultiCrop(local_crops_number=2, global_crop_size=40, local_crop_size=16,
                          **PHOTOMETRIC_OFF)
    views = aug(images, generator=torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)  # the same draw sequence, view by view
    source = images[0].float() / 255
    errors = []
    for view, settings in zip(views, aug._view_settings()):
        size = settings[0]
        params = aug._draw_params(settings, batch, H, W, generator=replay)
        assert set(params) == {'boxes', 'flip'}
        for got, box, flip in zip(denormalise(view), params['boxes'].long().tolist(),
                                  params['flip']):
            want = TF.resized_crop(source, *box, [size, size], InterpolationMode.BICUBIC,
                                   antialias=True)
            errors.append((got - (want.flip(-1) if flip else want)).abs())
    errors = torch.cat([e.flatten() for e in errors])
    assert errors.max() < 0.5 / 255 and errors.mean() < 0.1 / 255


@pytest.mark.parametrize('side, size', [(96, 32), (96, 40), (90, 20)])
def test_crop_averages_when_downscaling(side, size):
    """A one-pixel checkerboard shrunk 2.25x to 4.5x comes out nearly flat grey, as from
    TF.resized_crop (antialiased): within 0.06 of it (a 3 x 3 average of the checkerboard is
    4/9 or 5/9), where one bilinear sample per output pixel is up to 0.5 off and a fixed 2 x 2
    samples 0.125 off: roi_align's adaptive ceil(box side / size) samples average."""
    x = ((torch.arange(H).view(H, 1) + torch.arange(W).view(1, W)) % 2).float()
    x = x.expand(1, 3, H, W)
    box = torch.tensor([[0.0, 16.0, side, side]])
    got = DeviceMultiCrop()._crop(x, box, size)[0]
    want = TF.resized_crop(x[0], 0, 16, side, side, [size, size], InterpolationMode.BICUBIC,
                           antialias=True)
    assert (got - want).abs().max() < 0.06


def random_images(batch=4, seed=0, height=40, width=48):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8, generator=gen)


def small_aug(**kwargs):
    return DeviceMultiCrop(**{'local_crops_number': 3, 'global_crop_size': 24,
                              'local_crop_size': 12, **kwargs})


def test_shapes_dtype_and_device():
    images = random_images()
    views = small_aug()(images, generator=torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(4, 3, 24, 24)] * 2 + [(4, 3, 12, 12)] * 3
    assert all(v.dtype == torch.float32 and v.device == images.device for v in views)
    for view in views:  # de-normalised pixels lie in [0, 1]
        pixels = denormalise(view)
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_runs_on_cuda():
    images = random_images().cuda()
    views = small_aug()(images, generator=torch.Generator('cuda').manual_seed(0))
    assert all(v.device == images.device and v.dtype == torch.float32 for v in views)


def test_rejects_non_uint8_images():
    with pytest.raises(ValueError, match=r'uint8.*torch\.float32'):
        small_aug()(random_images().float())
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        small_aug()(random_images()[:, :2])


def test_grayscale_p1_gives_equal_channels():
    views = small_aug(grayscale_p=1.0, solarize_p=1.0)(
        random_images(), generator=torch.Generator().manual_seed(1))
    for view in views:
        pixels = denormalise(view)
        assert torch.allclose(pixels[:, 0], pixels[:, 1], atol=1e-5)
        assert torch.allclose(pixels[:, 0], pixels[:, 2], atol=1e-5)


def test_solarize_p1_inverts_view_2_above_threshold():
    images = random_images()
    plain = small_aug(**PHOTOMETRIC_OFF)(images, generator=torch.Generator().manual_seed(2))
    solar = small_aug(**{**PHOTOMETRIC_OFF, 'solarize_p': 1.0})(
        images, generator=torch.Generator().manual_seed(2))
    assert torch.equal(plain[0], solar[0])  # view 1 is never solarised
    before = denormalise(plain[1])
    assert (before >= 128 / 255).any() and (before < 128 / 255).any()
    want = torch.where(before >= 128 / 255, 1 - before, before)
    assert torch.allclose(denormalise(solar[1]), want, atol=1e-5)


def test_flip_frequency_is_one_half():
    """A crop of an image increasing in x decreases in x iff flipped; 2,000 images per view,
    so a rate off 0.5 by 0.05 is 4.5 binomial standard deviations."""
    batch = 2000
    image = (torch.arange(16) * 16).to(torch.uint8).expand(batch, 3, 16, 16).contiguous()
    aug = small_aug(local_crops_number=1, global_crop_size=8, local_crop_size=4,
                    **PHOTOMETRIC_OFF)
    for view in aug(image, generator=torch.Generator().manual_seed(4)):
        slope = (view[:, 0, :, -1] - view[:, 0, :, 0]).mean(1)  # (B,)
        assert (slope != 0).all()
        assert abs((slope < 0).float().mean().item() - 0.5) < 0.05


def test_reproducible_with_generator_seed():
    images, aug = random_images(), small_aug()
    first = aug(images, generator=torch.Generator().manual_seed(5))
    second = aug(images, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other = aug(images, generator=torch.Generator().manual_seed(6))
    assert any(not torch.equal(a, c) for a, c in zip(first, other))
    torch.manual_seed(7)
    third = aug(images)  # torch's global RNG without a generator
    torch.manual_seed(7)
    assert all(torch.equal(a, b) for a, b in zip(third, aug(images)))


def test_jitter_matches_torchvision_functional_ops():
    """Brightness, contrast and saturation (no hue) in the fixed order equal TF's ops."""
    x = random_images(batch=3).float() / 255
    factors = torch.tensor([[0.7, 1.3, 0.9, 0.0], [1.4, 0.6, 1.2, 0.0], [1.0, 1.0, 0.8, 0.0]])
    got = small_aug(color_jitter=(0.4, 0.4, 0.2, 0.0))._jitter(x, factors)
    for img, (b, c, s, _), out in zip(x, factors.tolist(), got):
        want = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(img, b), c), s)
        assert torch.allclose(out, want, atol=1e-4)


def hue_angle(x):
    """Circular hue angle (radians) of (..., 3, h, w) RGB images."""
    r, g, b = x.unbind(-3)
    return torch.atan2(math.sqrt(3) * (g - b), 2 * r - g - b)


def test_hue_rotation_approximates_torchvision_hue_shift():
    """The YIQ chroma rotation shifts hues the way TF.adjust_hue does: the mean angle between
    its hues and TF's is under 35 % of the shift on random colours (YIQ rotation only
    approximates TF's HSV shift, so the bound leaves room), the opposite rotation is far
    off, and a zero shift is the identity."""
    x = random_images(batch=1).float() / 255
    assert torch.allclose(_hue_rotate(x, torch.zeros(1)), x, atol=1e-5)

    def angle_error(out, want):  # mean circular difference of the hue angles, radians
        diff = (hue_angle(out) - hue_angle(want) + math.pi) % (2 * math.pi) - math.pi
        return diff.abs().mean().item()

    for hue in (0.05, -0.1):
        want = TF.adjust_hue(x[0], hue)
        shift = 2 * math.pi * abs(hue)
        assert angle_error(_hue_rotate(x, torch.tensor([hue]))[0], want) < 0.35 * shift
        assert angle_error(_hue_rotate(x, torch.tensor([-hue]))[0], want) > 1.5 * shift


def test_blur_matches_torchvision_gaussian_blur():
    x = random_images(batch=3).float() / 255
    sigma = torch.tensor([0.3, 1.0, 2.0])
    got = _gaussian_blur(x, 9, sigma)
    for img, s, out in zip(x, sigma.tolist(), got):
        assert torch.allclose(out, TF.gaussian_blur(img, [9, 9], [s, s]), atol=1e-5)


def test_from_multicrop_copies_every_setting():
    aug = MultiCropAugmentation(
        global_crops_scale=(0.3, 0.9), local_crops_scale=(0.1, 0.3), local_crops_number=5,
        global_crop_size=64, local_crop_size=32, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6),
        color_jitter=(0.1, 0.2, 0.3, 0.05), grayscale_p=0.3, scale_blur_to_crop=True,
        color_jitter_p=0.6, blur_p=(0.9, 0.2, 0.4), solarize_p=0.1)
    dev = DeviceMultiCrop.from_multicrop(aug)
    names = ['global_crops_scale', 'local_crops_scale', 'local_crops_number',
             'global_crop_size', 'local_crop_size', 'mean', 'std', 'color_jitter',
             'grayscale_p', 'scale_blur_to_crop', 'color_jitter_p', 'blur_p', 'solarize_p']
    for name in names:
        assert getattr(dev, name) == getattr(aug, name), name
    assert dev.ratio == pytest.approx(aug.global_transform1.transforms[0].ratio)
    with pytest.raises(TypeError, match='MultiCropAugmentation'):
        DeviceMultiCrop.from_multicrop(dev)
