"""Stimulus images from folders, files and arrays (grayscale, resized with Pillow).

Pixel values keep the file's own scale (0..255 for 8-bit files, 0..65535 for 16-bit TIFFs);
colour images are converted to gray with Pillow's ITU-R 601-2 luma. Resizing is bilinear
(Pillow's resampling, which filters properly when shrinking), per image and channel, in
float32, so no precision is lost to 8-bit rounding.

Aspect ratio: with ``crop="center"`` an image is first centre-cropped to the target
(height / width) aspect, so resizing never stretches it (Allen's 918 x 1174 scenes to
36 x 64 lose rows at the top and bottom); ``crop="none"`` resizes the whole image, which
stretches it when the aspects differ.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxsel._errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
CROPS = ("center", "none")


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers numerically (``img2`` before ``img10``)."""
    return [
        (0, int(tok), "") if tok.isdigit() else (1, 0, tok.lower())
        for tok in re.split(r"(\d+)", name)
        if tok
    ]


def _check_size(size, where) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise DataError(
            f"image size {size!r} is not a pair of integers",
            file=where,
            field="size",
            expected="(height, width)",
        ) from None
    if h < 1 or w < 1:
        raise DataError(
            f"image size {size!r} is not positive",
            file=where,
            field="size",
            expected="(height, width) >= 1",
        )
    return h, w


def check_crop(crop: str, where=None) -> str:
    """``crop`` if it is one of :data:`CROPS`, else a DataError naming the key."""
    if crop not in CROPS:
        raise DataError(
            f"crop={crop!r}",
            file=where,
            field="crop",
            expected="set data.crop = 'center' or 'none' (API: crop='center' / 'none')",
        )
    return crop


def crop_box(shape: Sequence[int], size: Sequence[int] | None) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the centred window of ``shape`` = (height, width)
    that has the aspect of ``size`` = (height, width); the whole image when ``size`` is None.
    """
    h, w = int(shape[0]), int(shape[1])
    if size is None:
        return 0, h, 0, w
    th, tw = int(size[0]), int(size[1])
    if h * tw > w * th:  # too tall: keep every column, crop rows
        ch, cw = max(1, round(w * th / tw)), w
    else:  # too wide (or equal): keep every row, crop columns
        ch, cw = h, max(1, round(h * tw / th))
    top, left = (h - ch) // 2, (w - cw) // 2
    return top, top + ch, left, left + cw


def resize_plane(plane: np.ndarray, size: tuple[int, int] | None, crop: str = "none") -> np.ndarray:
    """Resize one 2-D float image to ``size`` = (height, width) (bilinear); None keeps it.

    ``crop="center"`` first cuts the centred window with the target aspect (no stretching).
    """
    plane = np.asarray(plane, dtype=np.float32)
    if size is not None and check_crop(crop) == "center":
        top, bottom, left, right = crop_box(plane.shape, size)
        plane = plane[top:bottom, left:right]
    if size is None or tuple(plane.shape) == tuple(size):
        return plane
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(plane))
    return np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def read_image(
    file: str | Path, size: tuple[int, int] | None = None, crop: str = "none"
) -> np.ndarray:
    """Read one PNG/JPEG/TIFF/BMP file as a grayscale float32 (height, width) array.

    Args:
      file: the image file.
      size: (height, width) to resize to, or None to keep the file's size.
      crop: ``"center"`` crops to the aspect of ``size`` before resizing, ``"none"``
        stretches.

    Returns:
      float32 array on the file's own intensity scale.

    Raises:
      DataError: the file is missing or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    size = _check_size(size, file)
    check_crop(crop, file)
    try:
        with Image.open(file) as im:
            im.load()
            if im.mode in ("I", "F") or im.mode.startswith("I;16"):
                arr = np.asarray(im, dtype=np.float32)
            else:
                arr = np.asarray(im.convert("L"), dtype=np.float32)
    except FileNotFoundError:
        raise DataError("file not found", file=file, field="image") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(
            f"not a readable image ({err})",
            file=file,
            field="image",
            expected="a PNG, JPEG, TIFF or BMP file",
        ) from None
    if arr.ndim != 2:
        raise DataError(
            f"image has shape {arr.shape}",
            file=file,
            field="image",
            expected="a single-frame grayscale or colour image",
        )
    return resize_plane(arr, size, crop)


def list_image_files(path: str | Path) -> list[Path]:
    """Image files (by extension, hidden files skipped) in a folder, in natural order."""
    path = Path(path)
    if not path.exists():
        raise DataError("image folder not found", file=path, field="images")
    if not path.is_dir():
        raise DataError(
            "not a folder", file=path, field="images", expected="a folder of PNG/JPEG/TIFF images"
        )
    files = [
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not files:
        raise DataError(
            "no image files",
            file=path,
            field="images",
            expected=f"files ending in {', '.join(IMAGE_EXTENSIONS)}",
        )
    return sorted(files, key=lambda p: natural_key(p.name))


def load_image_folder(
    path: str | Path, size: Sequence[int] | None = (36, 64), crop: str = "none"
) -> tuple[np.ndarray, list[str]]:
    """Read every image in a folder as grayscale float32, resized.

    Files are ordered naturally by name (``2.png`` before ``10.png``); hidden files and
    files with other extensions are skipped.

    Args:
      path: a folder of PNG/JPEG/TIFF/BMP files.
      size: (height, width) every image is resized to; None keeps the files' sizes, which
        must then agree.
      crop: ``"center"`` crops each image to the aspect of ``size`` before resizing,
        ``"none"`` stretches it.

    Returns:
      ``(images, names)``: float32 array (n, 1, height, width) and the file names.

    Raises:
      DataError: missing folder, no images, an unreadable file, or (size None) mixed sizes.
    """
    size = _check_size(size, path)
    check_crop(crop, path)
    files = list_image_files(path)
    planes = []
    for f in files:
        plane = read_image(f, size, crop)
        if planes and plane.shape != planes[0].shape:
            raise DataError(
                f"image has shape {plane.shape} but {files[0].name} has {planes[0].shape}",
                file=f,
                field="image",
                expected="images of one size (or set data.image_size; API: size=(h, w))",
            )
        planes.append(plane)
    return np.stack(planes)[:, None], [f.name for f in files]


def _as_nchw(arr: np.ndarray, where) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim != 4:
        raise DataError(
            f"images have shape {arr.shape}",
            file=where,
            field="images",
            expected="(y, x), (n, y, x) or (n, channel, y, x)",
        )
    return arr


def _load_array_file(path: Path) -> np.ndarray:
    """The images of a ``.npy`` file, or of a ``.npz`` (its ``images`` or only array)."""
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            keys = list(z.keys())
            if "images" in keys:
                return z["images"]
            if len(keys) == 1:
                return z[keys[0]]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(
            f"cannot read ({type(err).__name__}: {err})",
            file=path,
            field="images",
            expected="a plain (non-pickled) numeric array saved with np.save / np.savez",
        ) from None
    raise DataError(
        f"no 'images' array among {keys}",
        file=path,
        field="images",
        expected="an array named 'images' (np.savez(path, images=...)) or a single array",
    )


def load_images(
    arrays_or_path, size: Sequence[int] | None = None, crop: str = "none"
) -> np.ndarray:
    """Stimuli from an array, an image folder, an image file or a ``.npy``/``.npz`` file.

    A 2-D array is one image, a 3-D array is (n, y, x) (also a movie (time, y, x)), a 4-D
    array is (n, channel, y, x). A ``.npz`` must hold ``images`` or a single array.

    Args:
      arrays_or_path: an array-like, or a path to a folder, image file, ``.npy`` or ``.npz``.
      size: (height, width) to resize to; None keeps the size.
      crop: ``"center"`` crops to the aspect of ``size`` before resizing, ``"none"``
        stretches.

    Returns:
      float32 array (n, channel, height, width).

    Raises:
      DataError: missing path, unknown format, wrong shape or non-finite values.
    """
    where = "images"
    size = _check_size(size, where)
    check_crop(crop)
    if isinstance(arrays_or_path, (str, Path)):
        path = Path(arrays_or_path)
        where = path
        if not path.exists():
            raise DataError("not found", file=path, field="images")
        suffix = path.suffix.lower()
        if path.is_dir():
            return load_image_folder(path, size, crop)[0]
        if suffix in IMAGE_EXTENSIONS:
            return read_image(path, size, crop)[None, None]
        if suffix in (".npy", ".npz"):
            arr = _load_array_file(path)
        else:
            raise DataError(
                f"unknown stimulus format '{suffix}'",
                file=path,
                field="images",
                expected="a folder, an image file, .npy or .npz",
            )
    else:
        arr = arrays_or_path
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"images have dtype {arr.dtype}", file=where, field="images", expected="numbers"
        )
    arr = _as_nchw(arr.astype(np.float32, copy=False), where)
    if not np.isfinite(arr).all():
        n = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(
            f"non-finite pixel values in image {n}",
            file=where,
            field="images",
            expected="finite numbers",
        )
    if size is None or arr.shape[2:] == size:
        return np.ascontiguousarray(arr)
    out = np.empty(arr.shape[:2] + size, dtype=np.float32)
    for i in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            out[i, c] = resize_plane(arr[i, c], size, crop)
    return out
