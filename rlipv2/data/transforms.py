"""The official RLIPv2 augmentations as Detectron2 ``Augmentation`` objects.

Training (``make_hico_transforms`` / ``make_vg_transforms`` of the official code):

1. horizontal flip (p = 0.5) and colour jitter (brightness, contrast, saturation 0.4);
2. then, with equal probability, either a multi-scale resize (short side 480..800 step 32,
   long side at most 1333), or resize (short side 400/500/600) -> random-size crop (sides in
   [384, 600]) -> multi-scale resize.

Test: short side 800, long side at most 1333.

Boxes leaving a crop are clipped and removed by the mapper, which re-indexes the relations
(:mod:`rlipv2.data.relation_dataset_mapper`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import cv2
import numpy as np
from detectron2.data import transforms as T
from fvcore.transforms.transform import CropTransform, Transform

__all__ = [
    "ColorJitter",
    "ColorJitterTransform",
    "RandomSizeCrop",
    "RandomSelect",
    "ResizeShortestEdge",
    "FastResizeTransform",
    "build_relation_augmentations",
    "OFFICIAL_TRAIN_SCALES",
]

OFFICIAL_TRAIN_SCALES = tuple(range(480, 801, 32))  # 480, 512, ..., 800


class ColorJitterTransform(Transform):
    """Scale brightness, contrast and saturation of a uint8 RGB image (in ``order``), with the
    blends of torchvision's ``ColorJitter`` / PIL ``ImageEnhance`` (brightness: towards black;
    contrast: towards the mean grey level; saturation: towards the greyscale image), computed with
    OpenCV for speed. Boxes and coordinates are unchanged."""

    def __init__(self, brightness: float, contrast: float, saturation: float, order: Sequence[int]):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"ColorJitterTransform expects an HxWx3 uint8 image, got {img.dtype} {img.shape}")
        out = np.ascontiguousarray(img)
        factors = (self.brightness, self.contrast, self.saturation)
        for k in self.order:
            f = float(factors[k])
            if f == 1.0:
                continue
            if k == 0:  # brightness
                out = cv2.addWeighted(out, f, out, 0.0, 0.0)
            elif k == 1:  # contrast
                mean = float(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).mean())
                out = cv2.addWeighted(out, f, out, 0.0, (1.0 - f) * int(mean + 0.5))
            else:  # saturation
                grey = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
                out = cv2.addWeighted(out, f, grey, 1.0 - f, 0.0)
        return out

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        return T.NoOpTransform()


class ColorJitter(T.Augmentation):
    """Random brightness/contrast/saturation factors in [1 - x, 1 + x], applied in random order."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        def f(x):
            return float(np.random.uniform(max(0.0, 1 - x), 1 + x)) if x > 0 else 1.0

        return ColorJitterTransform(
            f(self.brightness), f(self.contrast), f(self.saturation), tuple(int(i) for i in np.random.permutation(3))
        )


class RandomSizeCrop(T.Augmentation):
    """Crop a random region whose width and height are drawn uniformly from
    [min_size, min(image side, max_size)] (the official ``RandomSizeCrop``); an image side
    smaller than ``min_size`` is kept whole."""

    def __init__(self, min_size: int = 384, max_size: int = 600):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        cw = int(np.random.randint(min(self.min_size, w), min(w, self.max_size) + 1))
        ch = int(np.random.randint(min(self.min_size, h), min(h, self.max_size) + 1))
        x0 = int(np.random.randint(0, w - cw + 1))
        y0 = int(np.random.randint(0, h - ch + 1))
        return CropTransform(x0, y0, cw, ch, orig_w=w, orig_h=h)


class FastResizeTransform(T.ResizeTransform):
    """``ResizeTransform`` that resizes uint8 images with OpenCV (bilinear when enlarging, area
    averaging when shrinking), several times faster than PIL; other images go through PIL."""

    def apply_image(self, img, interp=None):
        if img.dtype == np.uint8 and img.ndim == 3 and img.shape[:2] == (self.h, self.w):
            if (self.new_h, self.new_w) == (self.h, self.w):
                return img
            shrink = self.new_h * self.new_w < self.h * self.w
            return cv2.resize(
                img, (self.new_w, self.new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
        return super().apply_image(img, interp)


class ResizeShortestEdge(T.ResizeShortestEdge):
    """Detectron2's ``ResizeShortestEdge`` (short side from a list, long side capped), resizing
    with :class:`FastResizeTransform`."""

    def get_transform(self, image):
        t = super().get_transform(image)
        if isinstance(t, T.ResizeTransform):
            return FastResizeTransform(t.h, t.w, t.new_h, t.new_w, t.interp)
        return t


class RandomSelect(T.Augmentation):
    """Apply ``first`` with probability ``p``, otherwise ``second`` (each a list of augmentations)."""

    def __init__(self, first: Sequence[T.Augmentation], second: Sequence[T.Augmentation], p: float = 0.5):
        super().__init__()
        self.first = T.AugmentationList(list(first))
        self.second = T.AugmentationList(list(second))
        self.p = p

    def __call__(self, aug_input) -> Transform:
        chosen = self.first if np.random.rand() < self.p else self.second
        return chosen(aug_input)

    def __repr__(self):
        return f"RandomSelect(p={self.p}, first={self.first}, second={self.second})"


def build_relation_augmentations(
    is_train: bool,
    *,
    min_sizes: Sequence[int] = OFFICIAL_TRAIN_SCALES,
    max_size: int = 1333,
    flip_prob: float = 0.5,
    color_jitter: float = 0.4,
    random_crop: bool = True,
    crop_resize_sizes: Sequence[int] = (400, 500, 600),
    crop_size: tuple[int, int] = (384, 600),
    test_min_size: int = 800,
    test_max_size: int = 1333,
) -> list[T.Augmentation]:
    """The official train / test augmentation lists (see the module docstring).

    Sizes are arguments so that small inputs (e.g. the synthetic world at 192 px) can use
    proportionally smaller scales. ``random_crop=False`` keeps only the multi-scale resize.
    """
    if not is_train:
        return [ResizeShortestEdge(test_min_size, test_max_size, sample_style="choice")]
    augs: list[T.Augmentation] = []
    if flip_prob > 0:
        augs.append(T.RandomFlip(prob=flip_prob, horizontal=True, vertical=False))
    if color_jitter > 0:
        augs.append(ColorJitter(color_jitter, color_jitter, color_jitter))
    multi_scale = ResizeShortestEdge(list(min_sizes), max_size, sample_style="choice")
    if random_crop:
        augs.append(
            RandomSelect(
                [multi_scale],
                [
                    ResizeShortestEdge(list(crop_resize_sizes), sys.maxsize, sample_style="choice"),
                    RandomSizeCrop(*crop_size),
                    ResizeShortestEdge(list(min_sizes), max_size, sample_style="choice"),
                ],
            )
        )
    else:
        augs.append(multi_scale)
    return augs
