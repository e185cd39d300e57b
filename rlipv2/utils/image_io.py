"""Reading images as 8-bit RGB, whatever their bit depth, with a bound on their size.

Every reader of the project (the training mapper, the predictor and ``tools/demo.py``, the
pseudo-labelling loaders) decodes through :func:`read_image_rgb` / :func:`pil_to_rgb8`:

* 8-bit images (L, RGB, RGBA, P, CMYK, ...): PIL's own conversion to RGB;
* 16-bit greyscale (PNG ``I;16``, or ``I`` with values in [0, 65535]): scaled to 8 bits (``v >> 8``),
  instead of being clipped at 255 (which made them almost entirely white);
* 32-bit float (TIFF ``F``) with values in [0, 1]: scaled by 255 (they used to come out black); floats
  outside [0, 1], non-finite values, or 32-bit integers above 65535 are refused with a clear error,
  since no scale is implied;
* images above :data:`MAX_IMAGE_PIXELS` (width x height, read from the header before decoding) are
  refused; ``$RLIPV2_MAX_IMAGE_PIXELS`` or the ``max_pixels`` argument changes the limit.

``reduce_to`` shrinks a large image right after decoding (JPEGs are even decoded at 1/2, 1/4 or 1/8
scale), so that memory follows the working resolution, not the file's.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

__all__ = ["MAX_IMAGE_PIXELS", "UnreadableImageError", "max_image_pixels", "open_image", "pil_to_rgb8",
           "read_image_rgb"]

#: Default limit on width x height (64 megapixels): a 10000 x 10000 image (100 MP) is refused.
MAX_IMAGE_PIXELS = 64_000_000


class UnreadableImageError(ValueError):
    """An image file that cannot be used: missing, corrupt, too large, or of an unsupported bit depth."""


def max_image_pixels(override: int | None = None) -> int:
    """The pixel limit in force: ``override``, else ``$RLIPV2_MAX_IMAGE_PIXELS``, else the default."""
    if override is not None:
        return int(override)
    v = os.environ.get("RLIPV2_MAX_IMAGE_PIXELS")
    try:
        return int(v) if v else MAX_IMAGE_PIXELS
    except ValueError:
        raise ValueError(f"$RLIPV2_MAX_IMAGE_PIXELS must be an integer, got {v!r}") from None


def open_image(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """``PIL.Image.open`` that refuses images above the pixel limit before decoding them."""
    path = os.fspath(path)
    im = Image.open(path)
    w, h = im.size
    limit = max_image_pixels(max_pixels)
    if w * h > limit:
        im.close()
        raise UnreadableImageError(f"image '{path}' is {w}x{h} = {w * h:,} pixels, above the limit of {limit:,} "
                         "(set $RLIPV2_MAX_IMAGE_PIXELS, or --max-pixels in tools/demo.py, to raise it)")
    return im


def pil_to_rgb8(im: Image.Image, name: str = "<image>") -> np.ndarray:
    """(H, W, 3) uint8 RGB of a PIL image of any mode and bit depth (see the module docstring)."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        if mode == "F":
            if not np.isfinite(arr).all():
                raise UnreadableImageError(f"image '{name}' is a 32-bit float image with NaN or inf pixels")
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            if lo < 0.0 or hi > 1.0:
                raise UnreadableImageError(f"image '{name}' is a 32-bit float image with values in [{lo:g}, {hi:g}]; "
                                           "only floats in [0, 1] are converted: save it as an 8-bit image")
            gray = np.round(arr * 255.0).astype(np.uint8)
        else:
            arr = arr.astype(np.int64, copy=False)
            lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
            if lo < 0 or hi > 65535:
                raise UnreadableImageError(f"image '{name}' is a 32-bit integer image with values in [{lo}, {hi}]; "
                                           "only 16-bit ranges [0, 65535] are converted: save it as an 8-bit image")
            gray = (arr >> 8).astype(np.uint8) if (mode.startswith("I;16") or hi > 255) else arr.astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def read_image_rgb(path: str | os.PathLike, *, max_pixels: int | None = None, reduce_to: int | None = None,
                   apply_exif: bool = False, with_original_size: bool = False):
    """Decode ``path`` to (H, W, 3) uint8 RGB.

    Args:
        max_pixels: the pixel limit (default :func:`max_image_pixels`).
        reduce_to: if given, an image whose shorter side is at least twice this is shrunk by an integer
            factor right after decoding, keeping its shorter side >= ``reduce_to``.
        apply_exif: rotate as the EXIF orientation says (photos, as Detectron2's ``read_image``); off by
            default: dataset images keep their stored orientation, as the official loaders and the
            annotation boxes do.
        with_original_size: also return the (height, width) of the full-size (rotated) image.

    Raises:
        FileNotFoundError: no such file.
        UnreadableImageError (a ValueError naming the file): corrupt, too large, unsupported bit depth.
    """
    path = os.fspath(path)
    try:
        with open_image(path, max_pixels) as im:
            if apply_exif and im.getexif().get(0x0112, 1) != 1:  # EXIF orientation: rotate (decodes in full)
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
            size = (im.size[1], im.size[0])
            factor = 1
            if reduce_to:
                factor = max(1, min(im.size) // int(reduce_to))
                if factor >= 2 and im.format == "JPEG":
                    im.draft("RGB", (im.size[0] // factor, im.size[1] // factor))  # decode at reduced scale
                    factor = max(1, min(im.size) // int(reduce_to))
            im.load()
            if factor >= 2:
                im = im.reduce(factor)
            arr = np.ascontiguousarray(pil_to_rgb8(im, path))
    except (UnreadableImageError, FileNotFoundError):
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # corrupt or truncated files
        raise UnreadableImageError(f"cannot read image '{path}': {e}") from e
    return (arr, size) if with_original_size else arr
