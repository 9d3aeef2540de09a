"""Batched, on-device DINO multi-crop: :class:`MultiCropAugmentation` for a whole batch at once.

Takes a (B, 3, H, W) uint8 batch on any device and returns the crop-major list of views that
``collate_multicrop`` gives for the per-image CPU pipeline, with every stage (crop + resize,
flip, colour jitter, grayscale, blur, solarisation, normalisation) batched over the images.
Where the result differs from the PIL pipeline, by design or by approximation:

* crop + resize is ``torchvision.ops.roi_align`` (bilinear samples, averaged over
  ``ceil(box side / output side)`` points per output pixel when downscaling) instead of PIL's
  antialiased bicubic; it samples the whole image, so pixels just outside the crop count at
  its border where PIL replicates the crop's own edge;
* the hue jitter rotates the chroma in YIQ space, an approximation of torchvision's HSV hue
  shift, and the four jitter ops run in the fixed order brightness, contrast, saturation,
  hue where torchvision draws a random order per image;
* the views stay float32 between stages (PIL rounds to 8 bits after each).

Crop boxes are drawn with exactly the distribution of ``RandomResizedCrop.get_params``.
"""
import math

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from ..data.images import IMAGENET_MEAN, IMAGENET_STD, LUMA
from .checks import check_int
from .multicrop import MultiCropAugmentation, MultiCropRecipe, _check_scale

__all__ = ['DeviceMultiCrop']

_ATTEMPTS = 10  # as RandomResizedCrop.get_params
_RGB_TO_YIQ = (LUMA, (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
_YIQ_TO_RGB = tuple(tuple(row) for row in
                    torch.linalg.inv(torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)).tolist())


def _check_ratio(ratio):
    """Validate an aspect-ratio range ``(min, max)`` with ``0 < min <= max``.

    Args:
        ratio (Sequence[float]): The range (width / height).

    Returns:
        tuple[float, float]: The range as floats.
    """
    try:
        lo, hi = (float(v) for v in ratio)
    except (TypeError, ValueError):
        raise ValueError(f'ratio must be a pair (min, max), got {ratio!r}') from None
    if not (0.0 < lo <= hi < math.inf):
        raise ValueError(f'ratio must satisfy 0 < min <= max < inf, got {ratio!r}')
    return lo, hi


_CONSTANTS = {}


def _constant(values, device, dtype=torch.float32):
    """A small constant tensor on ``device``, copied there once and then reused: a fresh
    host-to-device copy in every step would make the host wait for the device each time.

    Args:
        values (tuple): Nested tuples of numbers.
        device (torch.device | str): Target device.
        dtype (torch.dtype): Target dtype.

    Returns:
        Tensor: The cached tensor (do not modify it in place).
    """
    key = (values, str(torch.device(device)), dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(values, dtype=dtype, device=device)
    return _CONSTANTS[key]


def _rand(shape, generator, device):
    """Uniform [0, 1) float32 draws from ``generator`` (or torch's RNG of ``device``)."""
    return torch.rand(shape, generator=generator, device=device)


def _gray(x):
    """ITU-R 601-2 luma of (B, 3, h, w) RGB images, as (B, 1, h, w)."""
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)  # (B, 1, h, w)


def _where(mask, new, old):
    """Per-sample choice: ``new[i]`` where ``mask[i]``, else ``old[i]`` (4-D tensors)."""
    return torch.where(mask.view(-1, 1, 1, 1), new, old)


def _hue_rotate(x, hue):
    """Shift the hue of (B, 3, h, w) RGB images by ``hue`` turns as a YIQ chroma rotation.

    Approximates torchvision's ``adjust_hue`` (a shift of the HSV hue by ``hue`` turns):
    the (I, Q) chroma is rotated by ``-2 pi hue`` (the YIQ angle runs red, blue, green, the
    HSV hue red, green, blue) and the luma Y kept, where HSV keeps max(R, G, B); the YIQ
    primaries are 106 to 137 degrees apart, not 120. The result is clamped to [0, 1].

    Args:
        x (Tensor): (B, 3, h, w) images in [0, 1].
        hue (Tensor): (B,) hue shifts in turns, in [-0.5, 0.5].

    Returns:
        Tensor: (B, 3, h, w) shifted images.
    """
    to_yiq = _constant(_RGB_TO_YIQ, hue.device, torch.float64)
    from_yiq = _constant(_YIQ_TO_RGB, hue.device, torch.float64)  # inverted once, on the CPU
    angle = -2 * math.pi * hue.to(torch.float64)  # (B,)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(hue.shape[0], 3, 3, dtype=torch.float64, device=hue.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    matrix = from_yiq @ rot @ to_yiq  # (B, 3, 3)
    out = torch.einsum('bij,bjhw->bihw', matrix.to(x.dtype), x)  # (B, 3, h, w)
    return out.clamp(0, 1)


def _gaussian_blur(x, kernel, sigma):
    """Separable Gaussian blur with one sigma per image, reflect padding, as torchvision.

    Args:
        x (Tensor): (B, 3, h, w) images.
        kernel (int): Odd kernel size, ``kernel // 2 < min(h, w)``.
        sigma (Tensor): (B,) standard deviations.

    Returns:
        Tensor: (B, 3, h, w) blurred images.
    """
    b, c, h, w = x.shape
    half = (kernel - 1) * 0.5
    pos = torch.linspace(-half, half, kernel, device=x.device, dtype=x.dtype)  # (k,)
    pdf = torch.exp(-0.5 * (pos / sigma.to(x.dtype).view(-1, 1)) ** 2)  # (B, k)
    weights = (pdf / pdf.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B * 3, k)
    pad = kernel // 2
    y = F.pad(x.reshape(1, b * c, h, w), [pad] * 4, mode='reflect')  # (1, B*3, h+2p, w+2p)
    y = F.conv2d(y, weights.view(b * c, 1, kernel, 1), groups=b * c)  # (1, B*3, h, w+2p)
    y = F.conv2d(y, weights.view(b * c, 1, 1, kernel), groups=b * c)  # (1, B*3, h, w)
    return y.view(b, c, h, w)  # (B, 3, h, w)


class DeviceMultiCrop(MultiCropRecipe):
    """DINO multi-crop on a batch of images on their own device (CPU or CUDA).

    Same recipe and arguments as :class:`MultiCropAugmentation` (see there, and this
    module's docstring for what is approximated), for a (B, 3, H, W) uint8 batch. Random
    draws, view by view (global 1, global 2, then the locals), come from ``torch`` with the
    optional generator in this order: the crop boxes (:meth:`sample_boxes`), the flips, then,
    each only when its probability is > 0, the jitter (mask and four factors), grayscale
    mask, blur (mask and sigma) and, on global view 2, the solarisation mask.

    Args:
        global_crops_scale, local_crops_scale, local_crops_number, global_crop_size,
        local_crop_size, mean, std, color_jitter, grayscale_p, scale_blur_to_crop,
        color_jitter_p, blur_p, solarize_p: as :class:`MultiCropAugmentation`.
        ratio (tuple[float, float]): Aspect-ratio (width / height) range of the crops.
    """

    def __init__(self, global_crops_scale=(0.4, 1.0), local_crops_scale=(0.05, 0.4),
                 local_crops_number=8, global_crop_size=224, local_crop_size=96,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 color_jitter=(0.4, 0.4, 0.2, 0.1), grayscale_p=0.2, scale_blur_to_crop=False,
                 color_jitter_p=0.8, blur_p=(1.0, 0.1, 0.5), solarize_p=0.2,
                 ratio=(3 / 4, 4 / 3)):
        self._set_recipe(global_crops_scale, local_crops_scale, local_crops_number,
                         global_crop_size, local_crop_size, mean, std, color_jitter,
                         grayscale_p, scale_blur_to_crop, color_jitter_p, blur_p, solarize_p)
        self.ratio = _check_ratio(ratio)

    @classmethod
    def from_multicrop(cls, aug):
        """Build the batched equivalent of a CPU :class:`MultiCropAugmentation`.

        Args:
            aug (MultiCropAugmentation): The per-image pipeline whose settings to copy
                (the aspect-ratio range is read from its global ``RandomResizedCrop``).

        Returns:
            DeviceMultiCrop: The same recipe, batched.
        """
        if not isinstance(aug, MultiCropAugmentation):
            raise TypeError(f'aug must be a MultiCropAugmentation, got {type(aug).__name__}')
        return cls(
            global_crops_scale=aug.global_crops_scale, local_crops_scale=aug.local_crops_scale,
            local_crops_number=aug.local_crops_number, global_crop_size=aug.global_crop_size,
            local_crop_size=aug.local_crop_size, mean=aug.mean, std=aug.std,
            color_jitter=aug.color_jitter, grayscale_p=aug.grayscale_p,
            scale_blur_to_crop=aug.scale_blur_to_crop, color_jitter_p=aug.color_jitter_p,
            blur_p=aug.blur_p, solarize_p=aug.solarize_p,
            ratio=tuple(aug.global_transform1.transforms[0].ratio))

    def sample_boxes(self, num, height, width, scale, generator=None, device='cpu'):
        """Draw crop boxes as ``RandomResizedCrop.get_params`` does, for ``num`` crops at once.

        All ten attempts are drawn for every crop; the first attempt that fits the image is
        kept, the centre-crop fallback (ratio clamped to ``self.ratio``) where none fits.

        Args:
            num (int): Number of boxes.
            height (int): Image height H.
            width (int): Image width W.
            scale (tuple[float, float]): Area fraction range.
            generator (torch.Generator | None): Source of randomness, on ``device``; torch's
                RNG of ``device`` when None.
            device (torch.device | str): Device of the draws and of the result.

        Returns:
            Tensor: (num, 4) float32 boxes ``(top, left, h, w)`` in pixels, integer-valued.
        """
        num = check_int('num', num, 0)
        height, width = check_int('height', height, 1), check_int('width', width, 1)
        lo, hi = _check_scale('scale', scale)
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        area = lo + (hi - lo) * _rand((num, _ATTEMPTS), generator, device).double()
        area = area * (height * width)  # (num, 10) target areas in px
        aspect = torch.exp(log_lo + (log_hi - log_lo)
                           * _rand((num, _ATTEMPTS), generator, device).double())  # (num, 10)
        w = torch.round(torch.sqrt(area * aspect))  # (num, 10), round half to even as round()
        h = torch.round(torch.sqrt(area / aspect))  # (num, 10)
        valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (num, 10)
        first = valid.to(torch.uint8).argmax(1, keepdim=True)  # (num, 1) first valid attempt
        w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)  # (num,)
        top = torch.floor(_rand(num, generator, device).double() * (height - h + 1))
        left = torch.floor(_rand(num, generator, device).double() * (width - w + 1))
        top, left = torch.minimum(top, height - h), torch.minimum(left, width - w)  # (num,)
        fallback = _constant(self._fallback_box(height, width), device, torch.float64)  # (4,)
        boxes = torch.stack([top, left, h, w], 1)  # (num, 4)
        boxes = torch.where(valid.any(1, keepdim=True), boxes, fallback)  # (num, 4)
        return boxes.float()

    def _fallback_box(self, height, width):
        """The centre crop of ``RandomResizedCrop.get_params`` after ten failed attempts.

        Returns:
            tuple[int, int, int, int]: ``(top, left, h, w)``.
        """
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            w, h = int(round(height * self.ratio[1])), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def _view_settings(self):
        """Per view: (output size, area scale, blur probability, blur reference, solarise).

        Returns:
            list[tuple[int, tuple, float, int, bool]]: ``2 + local_crops_number`` entries.
        """
        g, loc = self.global_crop_size, self.local_crop_size
        views = [(g, self.global_crops_scale, self.blur_p[0], 224, False),
                 (g, self.global_crops_scale, self.blur_p[1], 224, True)]
        local = (loc, self.local_crops_scale, self.blur_p[2], 96, False)
        return views + [local] * self.local_crops_number

    def _draw_params(self, view, batch, height, width, generator=None, device='cpu'):
        """Draw every random parameter of one view for ``batch`` images.

        Args:
            view (tuple): One entry of :meth:`_view_settings`.
            batch (int): Number of images B.
            height (int): Image height H.
            width (int): Image width W.
            generator (torch.Generator | None): Source of randomness, on ``device``.
            device (torch.device | str): Device of the draws.

        Returns:
            dict[str, Tensor]: ``boxes`` (B, 4) and ``flip`` (B,), plus, for the stages with
            probability > 0, ``jitter`` (B,) with ``factors`` (B, 4), ``gray`` (B,), ``blur``
            (B,) with ``sigma`` (B,), and ``solarize`` (B,); masks are bool.
        """
        size, scale, blur_p, reference, solarize = view
        params = {'boxes': self.sample_boxes(batch, height, width, scale, generator, device)}
        params['flip'] = _rand(batch, generator, device) < 0.5
        if self.color_jitter_p > 0:
            params['jitter'] = _rand(batch, generator, device) < self.color_jitter_p
            b, c, s, hue = self.color_jitter
            lo = _constant((max(0, 1 - b), max(0, 1 - c), max(0, 1 - s), -hue), device)
            hi = _constant((1 + b, 1 + c, 1 + s, hue), device)
            params['factors'] = lo + (hi - lo) * _rand((batch, 4), generator, device)  # (B, 4)
        if self.grayscale_p > 0:
            params['gray'] = _rand(batch, generator, device) < self.grayscale_p
        if blur_p > 0:
            params['blur'] = _rand(batch, generator, device) < blur_p
            factor = size / reference if self.scale_blur_to_crop else 1.0
            params['sigma'] = factor * (0.1 + 1.9 * _rand(batch, generator, device))  # (B,)
        if solarize and self.solarize_p > 0:
            params['solarize'] = _rand(batch, generator, device) < self.solarize_p
        return params

    def _crop(self, x, boxes, size):
        """Crop every image to its box and resize it to ``size`` x ``size`` with roi_align.

        Args:
            x (Tensor): (B, 3, H, W) float images.
            boxes (Tensor): (B, 4) boxes ``(top, left, h, w)``.
            size (int): Output side.

        Returns:
            Tensor: (B, 3, size, size) crops.
        """
        top, left, h, w = boxes.to(x.dtype).unbind(1)  # 4 x (B,)
        index = torch.arange(x.shape[0], device=x.device, dtype=x.dtype)  # (B,)
        rois = torch.stack([index, left, top, left + w, top + h], 1)  # (B, 5) x1 y1 x2 y2
        # aligned: pixel i covers [i, i + 1]; sampling_ratio -1: ceil(box side / size)
        # bilinear samples averaged per output pixel (one when upscaling)
        return roi_align(x, rois, size, spatial_scale=1.0, sampling_ratio=-1,
                         aligned=True)  # (B, 3, size, size)

    def _jitter(self, x, factors):
        """Brightness, contrast, saturation, then hue, as torchvision's functional ops.

        Args:
            x (Tensor): (B, 3, s, s) images in [0, 1].
            factors (Tensor): (B, 4) brightness, contrast, saturation factors and hue shift.

        Returns:
            Tensor: (B, 3, s, s) jittered images in [0, 1].
        """
        b, c, s, hue = (f.view(-1, 1, 1, 1) for f in factors.to(x.dtype).unbind(1))
        strengths = self.color_jitter
        if strengths[0] > 0:
            x = (b * x).clamp(0, 1)
        if strengths[1] > 0:
            mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
            x = (c * x + (1 - c) * mean).clamp(0, 1)
        if strengths[2] > 0:
            x = (s * x + (1 - s) * _gray(x)).clamp(0, 1)
        if strengths[3] > 0:
            x = _hue_rotate(x, hue.view(-1))
        return x

    def _augment(self, x, view, params):
        """Apply one view's pipeline to the whole batch.

        Args:
            x (Tensor): (B, 3, H, W) float images in [0, 1].
            view (tuple): One entry of :meth:`_view_settings`.
            params (dict[str, Tensor]): That view's draws (:meth:`_draw_params`).

        Returns:
            Tensor: (B, 3, s, s) normalised float32 view.
        """
        size, _, blur_p, _, _ = view
        y = self._crop(x, params['boxes'], size)  # (B, 3, s, s)
        y = _where(params['flip'], y.flip(-1), y)
        if 'jitter' in params:
            jittered = self._jitter(y, params['factors'])
            y = jittered if self.color_jitter_p == 1 else _where(params['jitter'], jittered, y)
        if 'gray' in params:
            gray = _gray(y).expand_as(y)  # (B, 3, s, s)
            y = gray if self.grayscale_p == 1 else _where(params['gray'], gray, y)
        if 'blur' in params:
            blurred = _gaussian_blur(y, min(9, 2 * size - 1), params['sigma'])
            y = blurred if blur_p == 1 else _where(params['blur'], blurred, y)
        if 'solarize' in params:
            mask = params['solarize'].view(-1, 1, 1, 1) & (y >= 128 / 255)  # (B, 3, s, s)
            y = torch.where(mask, 1 - y, y)
        mean = _constant(self.mean, y.device, y.dtype).view(1, 3, 1, 1)
        std = _constant(self.std, y.device, y.dtype).view(1, 3, 1, 1)
        return (y - mean) / std  # (B, 3, s, s)

    def __call__(self, images, generator=None):
        """Augment a batch into its views, every stage batched over the images.

        Args:
            images (Tensor): (B, 3, H, W) uint8 RGB images on any device.
            generator (torch.Generator | None): Source of randomness on the images' device;
                torch's RNG of that device when None.

        Returns:
            list[Tensor]: ``2 + local_crops_number`` float32 tensors on the images' device,
            normalised: the two global views (B, 3, global_crop_size, global_crop_size), then
            the local views (B, 3, local_crop_size, local_crop_size); the crop-major list
            that ``collate_multicrop`` gives for :class:`MultiCropAugmentation`.
        """
        if not isinstance(images, torch.Tensor):
            raise TypeError(f'images must be a torch.Tensor, got {type(images).__name__}')
        if images.dtype != torch.uint8:
            raise ValueError(f'images must be uint8 (0..255), got dtype {images.dtype}')
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f'images must be (B, 3, H, W), got shape {tuple(images.shape)}')
        batch, _, height, width = images.shape
        x = images.float() / 255  # (B, 3, H, W)
        views = []
        for view in self._view_settings():
            params = self._draw_params(view, batch, height, width, generator, images.device)
            views.append(self._augment(x, view, params))
        return views
