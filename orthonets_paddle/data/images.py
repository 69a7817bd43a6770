"""Reading image files: one reader for every dataset, ``DecodeImage`` and inference.

The size is checked from the header before anything is decoded (a small file can claim
gigapixels); EXIF orientation is applied (the image as it is displayed); 16-bit and
32-bit images are scaled to 8 bits, not clipped to 255.
"""
from __future__ import annotations

import io
import os
from typing import Iterator, List, Tuple, Union

import numpy as np
from PIL import Image, ImageOps

__all__ = ["DataFileError", "MAX_IMAGE_PIXELS", "MAX_IMAGE_PIXELS_ENV", "max_image_pixels",
           "check_image_pixels", "read_image_file", "walk_files"]

MAX_IMAGE_PIXELS_ENV = "ORTHONETS_MAX_IMAGE_PIXELS"
MAX_IMAGE_PIXELS = 89_478_485  # PIL's warning threshold; PIL refuses only at twice that


class DataFileError(ValueError):
    """A dataset file is missing, unreadable or not in the expected format."""


def max_image_pixels() -> int:
    """The largest image (width x height) read, ``$ORTHONETS_MAX_IMAGE_PIXELS`` or PIL's."""
    value = os.environ.get(MAX_IMAGE_PIXELS_ENV)
    try:
        return int(value) if value else MAX_IMAGE_PIXELS
    except ValueError:
        raise ValueError(f"{MAX_IMAGE_PIXELS_ENV}={value!r} must be an integer number of "
                         "pixels") from None


def check_image_pixels(width: int, height: int, name: str, owner: str) -> None:
    """Refuse an image larger than ``max_image_pixels`` before it is decoded."""
    limit = max_image_pixels()
    if width * height > limit:
        raise DataFileError(
            f"{owner}: image {name} is {width}x{height} ({width * height:,} pixels), more than "
            f"the {limit:,} read without decoding it whole; shrink it, or raise the limit with "
            f"{MAX_IMAGE_PIXELS_ENV}=<pixels>")


def _open(source: Union[str, bytes, bytearray, memoryview]):
    return Image.open(source if isinstance(source, str) else io.BytesIO(bytes(source)))


def read_image_file(path: Union[str, bytes, bytearray, memoryview], channels: int = 3,
                    owner: str = "image", name: str = "") -> np.ndarray:
    """Decode an image (a file path, or the file's bytes) as uint8 HWC (RGB, or
    ``[H, W, 1]`` gray), as it is displayed.

    Args:
        path: the file, or its bytes (``DecodeImage``).
        channels: 3 (RGB) or 1 (gray).
        owner: who reads it, for messages.
        name: what to call bytes in messages (the path itself otherwise).

    Raises:
        DataFileError: the file cannot be decoded or is too large (naming it and the fix).
    """
    name = name or (path if isinstance(path, str) else f"({len(path)} bytes)")
    try:
        with _open(path) as im:
            check_image_pixels(*im.size, name, owner)
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im).astype(np.float64)
                top = 65535.0 if im.mode.startswith("I;16") or arr.max() <= 65535 else arr.max()
                im = Image.fromarray(np.clip(np.rint(arr * 255.0 / top), 0, 255).astype(np.uint8))
            img = np.asarray(im.convert("RGB" if channels == 3 else "L"))
    except DataFileError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataFileError(f"{owner}: cannot read image {name} ({err}); delete or replace "
                            "the file") from None
    return img[:, :, None] if img.ndim == 2 else img  # HWC with one channel, as FashionMNIST


def walk_files(top: str) -> Iterator[Tuple[str, List[str], List[str]]]:
    """``os.walk`` (top-down; sort ``dirnames`` in place to order the descent; symlinked
    folders listed, not entered) whose file names are regular files only: opening a named
    pipe or a device that carries an image's name would block or never end."""
    dirs, files = [], []
    try:
        with os.scandir(top) as entries:
            for entry in entries:
                try:
                    if entry.is_dir():
                        dirs.append(entry.name)
                    elif entry.is_file():  # cached d_type: no stat per regular file
                        files.append(entry.name)
                except OSError:
                    continue
    except OSError:
        return
    yield top, dirs, files
    for name in dirs:
        path = os.path.join(top, name)
        if not os.path.islink(path):
            yield from walk_files(path)
