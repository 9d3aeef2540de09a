"""DINO multi-crop augmentation (2 global + N local views) and its collate function.

Recipe of facebookresearch/dino (``DataAugmentationDINO``) with the torchvision ops that
dinov2 uses for blur and solarisation, so every random draw comes from torch's RNG and a
seed makes the crops reproducible.
"""

import torch
from torchvision import transforms

from ..data.images import IMAGENET_MEAN, IMAGENET_STD
from .checks import check_int, check_probability

__all__ = ['MultiCropAugmentation', 'collate_multicrop']


def _check_scale(name, scale):
    """Validate a ``(min, max)`` area-fraction range with ``0 < min <= max <= 1``.

    Args:
        name (str): Argument name used in the error message.
        scale (Sequence[float]): The range to check.

    Returns:
        tuple[float, float]: The range as a tuple of floats.
    """
    try:
        lo, hi = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be a pair (min, max), got {scale!r}') from None
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f'{name} must satisfy 0 < min <= max <= 1, got {scale!r}')
    return lo, hi


def _check_channels(name, values, positive):
    """Validate a per-channel (R, G, B) triple.

    Args:
        name (str): Argument name used in the error message.
        values (Sequence[float]): The triple.
        positive (bool): Require every entry to be > 0 (for ``std``).

    Returns:
        tuple[float, float, float]: The triple as floats.
    """
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be 3 numbers, got {values!r}') from None
    if len(out) != 3 or (positive and min(out) <= 0):
        cond = '3 numbers > 0' if positive else '3 numbers'
        raise ValueError(f'{name} must be {cond}, got {values!r}')
    return out


def _check_jitter(values):
    """Validate (brightness, contrast, saturation, hue) jitter strengths.

    Args:
        values (Sequence[float]): The four strengths, hue in [0, 0.5], others >= 0.

    Returns:
        tuple[float, float, float, float]: The strengths as floats.
    """
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f'color_jitter must be 4 numbers, got {values!r}') from None
    if len(out) != 4 or min(out) < 0 or out[3] > 0.5:
        raise ValueError('color_jitter must be (brightness, contrast, saturation, hue), all '
                         f'>= 0 and hue <= 0.5, got {values!r}')
    return out


class MultiCropRecipe:
    """The validated settings of DINO's multi-crop, shared by the per-image
    :class:`MultiCropAugmentation` and the batched ``DeviceMultiCrop`` (arguments as
    documented there); every bad value raises ValueError naming the argument."""

    def _set_recipe(self, global_crops_scale, local_crops_scale, local_crops_number,
                    global_crop_size, local_crop_size, mean, std, color_jitter, grayscale_p,
                    scale_blur_to_crop, color_jitter_p, blur_p, solarize_p):
        self.global_crops_scale = _check_scale('global_crops_scale', global_crops_scale)
        self.local_crops_scale = _check_scale('local_crops_scale', local_crops_scale)
        self.local_crops_number = check_int('local_crops_number', local_crops_number, 0)
        self.global_crop_size = check_int('global_crop_size', global_crop_size, 1)
        self.local_crop_size = check_int('local_crop_size', local_crop_size, 1)
        self.mean = _check_channels('mean', mean, positive=False)
        self.std = _check_channels('std', std, positive=True)
        self.color_jitter = _check_jitter(color_jitter)
        self.grayscale_p = check_probability('grayscale_p', grayscale_p)
        self.color_jitter_p = check_probability('color_jitter_p', color_jitter_p)
        self.solarize_p = check_probability('solarize_p', solarize_p)
        if len(tuple(blur_p)) != 3:
            raise ValueError(f'blur_p must be 3 probabilities (global 1, global 2, local), '
                             f'got {blur_p!r}')
        self.blur_p = tuple(check_probability('blur_p', p) for p in blur_p)
        self.scale_blur_to_crop = bool(scale_blur_to_crop)

    def __repr__(self):
        return (f'{type(self).__name__}(global_crops_scale={self.global_crops_scale}, '
                f'local_crops_scale={self.local_crops_scale}, '
                f'local_crops_number={self.local_crops_number}, '
                f'global_crop_size={self.global_crop_size}, '
                f'local_crop_size={self.local_crop_size})')


class MultiCropAugmentation(MultiCropRecipe):
    """DINO multi-crop: two global views and ``local_crops_number`` local views of an image.

    Every view: ``RandomResizedCrop`` (bicubic), horizontal flip (p=0.5), colour jitter
    (by default brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1) with p=0.8, grayscale
    (by default p=0.2), then Gaussian blur (kernel 9, or ``2 * size - 1`` for crops under
    5 px; sigma in [0.1, 2], optionally scaled to the crop size) with by default p=1.0 on
    global view 1, p=0.1 on global view 2 and p=0.5 on local views; global view 2 is also
    solarised (threshold 128) with by default p=0.2; finally ``ToTensor`` and
    ``Normalize(mean, std)``. The defaults are DINO's.

    Args:
        global_crops_scale (tuple[float, float]): Area fraction range of the global crops.
        local_crops_scale (tuple[float, float]): Area fraction range of the local crops.
        local_crops_number (int): Number of local crops (0 disables them).
        global_crop_size (int): Output side of the global crops.
        local_crop_size (int): Output side of the local crops.
        mean (tuple[float, float, float]): Per-channel normalisation mean.
        std (tuple[float, float, float]): Per-channel normalisation std.
        color_jitter (tuple[float, float, float, float]): Brightness, contrast, saturation and
            hue strengths of the colour jitter (DINO: 0.4, 0.4, 0.2, 0.1; hue at most 0.5).
        grayscale_p (float): Probability of converting a view to grayscale (DINO: 0.2).
        scale_blur_to_crop (bool): Scale the blur sigma range by ``crop size / DINO's crop
            size`` (224 global, 96 local), so small crops are blurred as much, relative to
            their content, as DINO's are; DINO's absolute (0.1, 2.0) otherwise.
        color_jitter_p (float): Probability of the colour jitter (DINO: 0.8).
        blur_p (tuple[float, float, float]): Blur probability of global view 1, global view
            2 and the local views (DINO: 1.0, 0.1, 0.5).
        solarize_p (float): Solarisation probability of global view 2 (DINO: 0.2).
        output (str): ``'float'``: float32 views normalised with ``mean`` / ``std``;
            ``'uint8'``: the views as uint8 (3, s, s), a quarter of the bytes to collate and
            copy, normalised on the device (``MultiCropDataPreprocessor`` in pretraining).
    """

    OUTPUTS = ('float', 'uint8')

    def __init__(self, global_crops_scale=(0.4, 1.0), local_crops_scale=(0.05, 0.4),
                 local_crops_number=8, global_crop_size=224, local_crop_size=96,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 color_jitter=(0.4, 0.4, 0.2, 0.1), grayscale_p=0.2, scale_blur_to_crop=False,
                 color_jitter_p=0.8, blur_p=(1.0, 0.1, 0.5), solarize_p=0.2, output='float'):
        if output not in self.OUTPUTS:
            raise ValueError(f'output={output!r} is not one of {self.OUTPUTS}')
        self.output = output
        self._set_recipe(global_crops_scale, local_crops_scale, local_crops_number,
                         global_crop_size, local_crop_size, mean, std, color_jitter,
                         grayscale_p, scale_blur_to_crop, color_jitter_p, blur_p, solarize_p)
        self.global_transform1, self.global_transform2, self.local_transform = (
            self._build_transforms())

    def _build_transforms(self):
        """Build the three pipelines (global 1, global 2, local).

        Returns:
            tuple[Compose, Compose, Compose]: Global view 1, global view 2, local view.
        """
        bicubic = transforms.InterpolationMode.BICUBIC

        def flip_and_color_jitter():
            return [
                transforms.RandomHorizontalFlip(p=0.5),
                transforms.RandomApply([transforms.ColorJitter(*self.color_jitter)],
                                       p=self.color_jitter_p),
                transforms.RandomGrayscale(p=self.grayscale_p)]

        def blur(p, size, reference):
            # kernel 9 as in dinov2; smaller for crops under 5 px (reflect padding < size)
            kernel = min(9, 2 * size - 1)
            factor = size / reference if self.scale_blur_to_crop else 1.0
            sigma = (0.1 * factor, 2.0 * factor)
            return transforms.RandomApply(
                [transforms.GaussianBlur(kernel_size=kernel, sigma=sigma)], p=p)

        if self.output == 'uint8':
            normalize = [transforms.PILToTensor()]  # (3, s, s) uint8, normalised later
        else:
            normalize = [transforms.ToTensor(), transforms.Normalize(self.mean, self.std)]
        global_crop = transforms.RandomResizedCrop(
            self.global_crop_size, scale=self.global_crops_scale, interpolation=bicubic)
        local_crop = transforms.RandomResizedCrop(
            self.local_crop_size, scale=self.local_crops_scale, interpolation=bicubic)
        size_g = self.global_crop_size
        global1 = transforms.Compose(
            [global_crop, *flip_and_color_jitter(), blur(self.blur_p[0], size_g, 224),
             *normalize])
        global2 = transforms.Compose(
            [global_crop, *flip_and_color_jitter(), blur(self.blur_p[1], size_g, 224),
             transforms.RandomSolarize(threshold=128, p=self.solarize_p), *normalize])
        local = transforms.Compose(
            [local_crop, *flip_and_color_jitter(), blur(self.blur_p[2], self.local_crop_size, 96),
             *normalize])
        return global1, global2, local

    def _crops(self, image):
        """Draw all views from the current torch RNG state.

        Args:
            image (PIL.Image.Image): RGB input image.

        Returns:
            list[Tensor]: ``2 + local_crops_number`` views.
        """
        crops = [self.global_transform1(image), self.global_transform2(image)]
        crops.extend(self.local_transform(image) for _ in range(self.local_crops_number))
        return crops

    def __call__(self, image, generator=None):
        """Augment one image into its views.

        Args:
            image (PIL.Image.Image): RGB input image.
            generator (torch.Generator | None): Optional source of randomness. When given,
                one seed is drawn from it and the views are produced under that seed in a
                forked RNG, leaving torch's global RNG untouched; otherwise the global
                RNG is used (seed it with ``torch.manual_seed`` for reproducibility).

        Returns:
            list[Tensor]: Two global views (3, global_crop_size, global_crop_size) followed
            by ``local_crops_number`` local views (3, local_crop_size, local_crop_size),
            float32 and normalised (uint8 and not normalised with ``output='uint8'``).
        """
        if generator is None:
            return self._crops(image)
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator).item())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._crops(image)


def collate_multicrop(batch):
    """Batch per-image crop lists into one tensor per crop index.

    The result, concatenated with ``torch.cat``, is crop-major (all images' crop 0, then
    crop 1, ...), the order :class:`DINOLoss` expects.

    Args:
        batch (Sequence[Sequence[Tensor]]): One list of crops per image, as returned by
            :class:`MultiCropAugmentation`; every image must have the same number of crops
            and crop ``i`` the same shape across images.

    Returns:
        list[Tensor]: ``num_crops`` tensors, entry ``i`` of shape (B, 3, s_i, s_i).
    """
    if len(batch) == 0:
        raise ValueError('batch must hold at least one image')
    num_crops = len(batch[0])
    for i, crops in enumerate(batch):
        if len(crops) != num_crops:
            raise ValueError(
                f'batch[{i}] has {len(crops)} crops, batch[0] has {num_crops}')
    # per crop index: B x (3, s, s) -> (B, 3, s, s)
    return [torch.stack([crops[c] for crops in batch]) for c in range(num_crops)]
