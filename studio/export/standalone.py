"""Predict with an exported studio model: `python predict.py IMAGE|FOLDER ... [--tta] [--top-k 3] [--json]
[--csv OUT]` (folders are searched recursively for images, as `studio predict` does).

This file is copied into every export bundle as `predict.py`. It needs only numpy and Pillow, plus
onnxruntime for `model.onnx` (or torch for `model.torchscript.pt`); it never imports the studio.

The model takes raw pixels (uint8, N x H x W x 3, RGB) and returns class probabilities: normalization
and softmax are inside it. What stays outside is the geometry, done here exactly as the studio does it
(the studio calls these very functions):
1. decode: EXIF orientation applied, any mode to 8-bit RGB (transparency composited on white); JPEGs
   whose shorter side is at least `jpeg_draft_size` are decoded at a reduced DCT scale (Pillow's draft);
2. resize the shorter side to `resize_shorter_to` = floor(image_size / crop_pct) (the longer side
   truncated) with Pillow's `interpolation` (antialiased when shrinking), as timm's own eval transform
   does; models exported before `resampler` was recorded ("opencv") use OpenCV's arithmetic rewritten
   in numpy instead: area averaging when shrinking, cubic a = -0.75 when enlarging;
3. center-crop image_size x image_size (offsets rounded like torchvision's CenterCrop).
preprocessing.json records every number used here. `--tta` averages the studio's test-time views: this
crop and the whole frame (the shorter side resized to image_size, crop_pct 1), each also mirrored;
without either flag predict.py does what the run chose (decision.json's `tta`), as `studio predict` does.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
BATCH_SIZE = 32
DECISION_FILE = "decision.json"  # {"unknown_threshold": ..., "tta": ..., "calibration": ...}
# The studio's TTA views (studio.predict.inference.TTA_VIEWS): zoom 1 is the eval crop, zoom 0.875 undoes
# timm's usual 0.875 crop (the whole frame: crop_pct / zoom, at most 1); each is also mirrored.
TTA_ZOOMS = (1.0, 0.875)
# The image types the studio reads. This file must run without the studio, so the studio's decoding
# (studio.data.imaging) takes its extensions, mode conversion and EXIF table from here: one copy.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})

# EXIF orientation -> the transpose that displays the image upright (PIL.ImageOps.exif_transpose's table).
EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# ---------------------------------------------------------------------------------------------- decoding

def load_image(source, draft_size: int | None = None) -> np.ndarray:
    """An RGB uint8 H x W x 3 array from a path, bytes, a PIL image or an array."""
    if isinstance(source, np.ndarray):
        return _as_rgb_array(source)
    if isinstance(source, Image.Image):
        return np.ascontiguousarray(np.asarray(source.convert("RGB")))
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    with Image.open(source) as image:
        width, height = image.size
        if draft_size and image.format == "JPEG" and min(width, height) >= draft_size:
            image.draft("RGB", (draft_size, draft_size))
        image.seek(0)  # first frame of GIF / multi-page TIFF
        image.load()
        rgb = to_rgb(image)
        try:
            orientation = int(image.getexif().get(0x0112, 1) or 1)
        except Exception:  # noqa: BLE001 - a broken EXIF block leaves the image as stored
            orientation = 1
        if orientation in EXIF_TRANSPOSE:
            rgb = rgb.transpose(EXIF_TRANSPOSE[orientation])
    return np.ascontiguousarray(np.asarray(rgb))


def unreadable_reason(error: BaseException) -> str:
    """Plain words for why an image file cannot be decoded (the studio says the same)."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image, or an image format that cannot be read"
    if isinstance(error, Image.DecompressionBombError):
        return "image has too many pixels (a possible decompression bomb); shrink it first"
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, PermissionError):
        return "cannot read the file (permission denied)"
    text = str(error).lower()
    if "truncated" in text or isinstance(error, EOFError):
        return "image file is truncated (incomplete download or copy?)"
    if "mode" in text:
        return f"image uses a pixel format that cannot be converted ({error})"
    return f"image file is corrupt and cannot be decoded ({error})"


def _as_rgb_array(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 array of shape (H, W, 3), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit, 32-bit and float grey scaled, transparency composited on white, first frame."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(scale_to_uint8(np.asarray(image), mode)).convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def scale_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit integer and float grayscale to 8-bit, keeping relative brightness within the depth
    the values use (8, 12 or 16 bits)."""
    data = array.astype(np.float64)
    if mode.startswith("I;16") or mode == "I":  # PNG 16-bit grayscale can arrive as mode I too
        # The bits in use, from the brightest pixel: 8-bit values kept in a wider file stay as they are,
        # and scanners' 12-bit values (0..4095 in 16-bit files: CT, MRI, X-ray) fill 0..255 instead of
        # 0..16 (all but black when divided as 16-bit).
        peak = float(data.max(initial=0))
        full = 255.0 if peak <= 255 else 4095.0 if peak <= 4095 else 65535.0
        scaled = data * (255.0 / full)
    else:  # "F": floats in 0..1 are the usual convention, otherwise stretch the range
        low, high = float(np.nanmin(data, initial=0.0)), float(np.nanmax(data, initial=0.0))
        if low >= 0.0 and high <= 1.0:
            scaled = data * 255.0
        elif high > low:
            scaled = (data - low) / (high - low) * 255.0
        else:
            scaled = np.zeros_like(data)
    return np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)


# ---------------------------------------------------------------------------------------------- geometry

# How the eval crop resamples: Pillow's resize, the one timm's eval transform (and so a plain script)
# uses; "opencv" is what runs recorded before the choice was (their bundles and checkpoints keep it).
# 5-fold CV of a Lite0 probe, 10 fold seeds: MRI 182.2 vs 180.8 of 205 images right, log-loss 0.287 vs
# 0.296 (the area shrink is what costs); flowers 671.7 vs 670.7 of 750 (its photos are enlarged: OpenCV's
# sharper cubic, a = -0.75, against Pillow's a = -0.5).
RESAMPLER = "pillow"
LEGACY_RESAMPLER = "opencv"
PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
               "nearest": Image.Resampling.NEAREST}
# Above this many resized pixels per crop pixel (a very elongated image) only the crop's window of the
# source is resampled: a 40 x 20000 strip must not become a 256 x 128000 intermediate image.
_WINDOW_ABOVE = 64


def resampler_of(preprocessing: dict) -> str:
    """The preprocessing's resampler: `RESAMPLER`, or `LEGACY_RESAMPLER` where none is recorded."""
    resampler = preprocessing.get("resampler", LEGACY_RESAMPLER)
    if resampler not in (RESAMPLER, LEGACY_RESAMPLER):
        raise ValueError(f"unknown resampler {resampler!r} ({RESAMPLER} or {LEGACY_RESAMPLER})")
    return resampler


def eval_crop(rgb: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Resize the shorter side to floor(size / crop_pct), center-crop size x size (uint8 in, uint8 out)."""
    size = int(preprocessing["image_size"])
    height, width = rgb.shape[:2]
    new_h, new_w = resized_shape(height, width, math.floor(size / float(preprocessing["crop_pct"])))
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    if (new_h, new_w) != (height, width) and resampler_of(preprocessing) == RESAMPLER:
        return _pillow_crop(rgb, new_h, new_w, top, left, size, preprocessing.get("interpolation", "bicubic"))
    if (new_h, new_w) != (height, width):
        if new_h < height:
            rgb = resize_area(rgb, new_h, new_w)
        else:  # the studio's eval geometry calls this too: both enlarge with the same arithmetic
            return resize_interpolate(rgb, new_h, new_w, preprocessing.get("interpolation", "bicubic"),
                                      window=(top, left, size))
    return np.ascontiguousarray(rgb[top:top + size, left:left + size])


def _pillow_crop(rgb: np.ndarray, new_h: int, new_w: int, top: int, left: int, size: int,
                 interpolation: str) -> np.ndarray:
    """Pillow's resize to new_h x new_w, then the size x size crop at (top, left)."""
    try:
        resample = PIL_FILTERS[interpolation]
    except KeyError:
        raise ValueError(f"unknown interpolation {interpolation!r} (bicubic, bilinear or nearest)") from None
    image = Image.fromarray(np.ascontiguousarray(rgb))
    if new_h * new_w > _WINDOW_ABOVE * size * size:
        sx, sy = rgb.shape[1] / new_w, rgb.shape[0] / new_h
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
        return np.asarray(image.resize((size, size), resample, box=box))
    resized = np.asarray(image.resize((new_w, new_h), resample))
    return np.ascontiguousarray(resized[top:top + size, left:left + size])


def resized_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """(h, w) after torchvision's Resize(shorter): the shorter side exact, the longer side truncated."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def _area_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's INTER_AREA taps: each output pixel averages the source area it covers.

    Returns dst x taps source indices and float32 weights (unused taps: index 0, weight 0).
    """
    scale = src / dst
    rows: list[list[tuple[int, float]]] = []
    for d in range(dst):
        start = d * scale
        end = start + scale
        cell = min(scale, src - start)
        first = math.ceil(start)
        last = min(math.floor(end), src - 1)
        first = min(first, last)
        taps = []
        if first - start > 1e-3:
            taps.append((first - 1, (first - start) / cell))
        taps += [(s, 1.0 / cell) for s in range(first, last)]
        if end - last > 1e-3:
            taps.append((last, min(min(end - last, 1.0), cell) / cell))
        rows.append(taps)
    width = max(len(taps) for taps in rows)
    index = np.zeros((dst, width), dtype=np.int64)
    weight = np.zeros((dst, width), dtype=np.float32)
    for d, taps in enumerate(rows):
        index[d, :len(taps)] = [t[0] for t in taps]
        weight[d, :len(taps)] = [t[1] for t in taps]
    return index, weight


def resize_area(rgb: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """Shrink like cv2.resize(..., INTER_AREA), bit for bit: same taps, same float32 summation order."""
    height, width = rgb.shape[:2]
    if height % new_h == 0 and width % new_w == 0:  # whole-number factors: block means
        fy, fx = height // new_h, width // new_w
        blocks = rgb.reshape(new_h, fy, new_w, fx, 3).astype(np.int64).sum(axis=(1, 3))
        if (fy, fx) == (2, 2):  # OpenCV's 2x2 kernel rounds halves up; its other block means round to even
            return ((blocks + 2) // 4).astype(np.uint8)
        return np.rint(blocks / (fy * fx)).astype(np.uint8)
    xs, wx = _area_taps(width, new_w)
    ys, wy = _area_taps(height, new_h)
    pixels = rgb.astype(np.float32)
    rows = pixels[:, xs[:, 0]] * wx[None, :, 0, None]
    for k in range(1, xs.shape[1]):
        rows = rows + pixels[:, xs[:, k]] * wx[None, :, k, None]
    out = rows[ys[:, 0]] * wy[:, 0, None, None]
    for k in range(1, ys.shape[1]):
        out = out + rows[ys[:, k]] * wy[:, k, None, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _cubic(x: np.ndarray) -> np.ndarray:
    """OpenCV's cubic convolution weights (a = -0.75) for the 4 taps around fractional offset x."""
    a = -0.75
    c0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    c1 = ((a + 2) * x - (a + 3)) * x * x + 1
    c2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return np.stack([c0, c1, c2, 1 - c0 - c1 - c2], axis=-1)


def _taps(src: int, dst: int, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (edge-replicated) and weights of each output pixel, half-pixel centers."""
    position = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    if interpolation == "nearest":
        index = np.minimum(np.floor(np.arange(dst) * (src / dst)).astype(np.int64), src - 1)
        return index[:, None], np.ones((dst, 1))
    base = np.floor(position).astype(np.int64)
    frac = position - base
    if interpolation == "bicubic":
        return np.clip(base[:, None] + np.arange(-1, 3), 0, src - 1), _cubic(frac)
    if interpolation == "bilinear":
        frac = np.where((base < 0) | (base >= src - 1), 0.0, frac)
        base = np.clip(base, 0, src - 1)
        return np.clip(base[:, None] + np.arange(2), 0, src - 1), np.stack([1 - frac, frac], axis=-1)
    raise ValueError(f"unknown interpolation {interpolation!r} (bicubic, bilinear or nearest)")


def resize_interpolate(rgb: np.ndarray, new_h: int, new_w: int, interpolation: str,
                       window: tuple[int, int, int] | None = None) -> np.ndarray:
    """Enlarge like cv2.resize with INTER_CUBIC / INTER_LINEAR / INTER_NEAREST (separable, rows first;
    OpenCV's own rounding differs by one level on ~1e-5 of the pixels). `window` (top, left, size): only
    that square of the result is computed (an eval crop of a very elongated image stays cheap)."""
    ys, wy = _taps(rgb.shape[0], new_h, interpolation)
    xs, wx = _taps(rgb.shape[1], new_w, interpolation)
    if window is not None:
        top, left, size = window
        ys, wy, xs, wx = ys[top:top + size], wy[top:top + size], xs[left:left + size], wx[left:left + size]
    rows = (rgb.astype(np.float64)[:, xs, :] * wx[None, :, :, None]).sum(axis=2)
    out = (rows[ys] * wy[:, :, None, None]).sum(axis=1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def draft_size(preprocessing: dict) -> int:
    """The smallest decode size the crop needs (JPEGs at least this big are decoded at reduced scale)."""
    return int(preprocessing.get("jpeg_draft_size")
               or int(preprocessing["image_size"]) / min(1.0, float(preprocessing["crop_pct"])))


def preprocess(source, preprocessing: dict) -> np.ndarray:
    """One image (path, bytes, PIL image or RGB array) -> the uint8 H x W x 3 crop the model takes."""
    return preprocess_views(source, preprocessing)[0]


def view_zooms(tta: bool) -> tuple[float, ...]:
    """The zooms a prediction crops: the eval crop alone, or the studio's TTA zooms."""
    return TTA_ZOOMS if tta else (1.0,)


def preprocess_views(source, preprocessing: dict, zooms=(1.0,)) -> np.ndarray:
    """One image -> zooms x H x W x 3 uint8 crops, decoded once (the eval crop needs the largest decode);
    crop_pct / zoom is capped at the whole frame, like the studio's Cropper."""
    rgb = load_image(source, draft_size(preprocessing))
    crop_pct = float(preprocessing["crop_pct"])
    return np.stack([eval_crop(rgb, {**preprocessing, "crop_pct": min(1.0, crop_pct / zoom)})
                     for zoom in zooms])


# ---------------------------------------------------------------------------------------------- the model

def cpu_session_options(threads: int | None = None):
    """onnxruntime options for the bundle's and the studio's CPU sessions (`threads`: intra-op threads,
    None for onnxruntime's choice). Idle worker threads sleep instead of spinning: the studio holds several
    sessions beside training on a few cores, and after a TTA pass a spinning one made the next session's
    first batches 3-4x slower (flowers: 45 against 105 images/s)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class BundleModel:
    """An export bundle folder: model file, classes.json, preprocessing.json."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.class_names: list[str] = json.loads((self.folder / "classes.json").read_text())
        self.preprocessing: dict = json.loads((self.folder / "preprocessing.json").read_text())
        decision_file = self.folder / DECISION_FILE  # absent in bundles exported before it existed
        decision = json.loads(decision_file.read_text()) if decision_file.is_file() else {}
        self.unknown_threshold = float(decision.get("unknown_threshold") or 0.0)
        # Images whose novelty score (the model's second output) is above this are unlike the training
        # images; None for models without that output.
        novelty = decision.get("novelty_threshold")
        self.novelty_threshold = None if novelty is None else float(novelty)
        self.tta = bool(decision.get("tta", False))  # the run's own choice: what `tta=None` means
        self.format = next((fmt for fmt, name in MODEL_FILES.items() if (self.folder / name).is_file()), None)
        if self.format == "onnx":
            import onnxruntime

            model_file = str(self.folder / MODEL_FILES["onnx"])
            self._session = onnxruntime.InferenceSession(model_file, cpu_session_options(),
                                                         providers=["CPUExecutionProvider"])
            self._input = self._session.get_inputs()[0].name
        elif self.format == "torchscript":
            import warnings

            import torch

            self._torch = torch
            with warnings.catch_warnings():  # torch marks TorchScript deprecated; loading still works
                warnings.simplefilter("ignore", FutureWarning)
                self._module = torch.jit.load(
                    str(self.folder / MODEL_FILES["torchscript"]), map_location="cpu"
                )
            self._module.eval()
        else:
            raise FileNotFoundError(f"no {' or '.join(MODEL_FILES.values())} in {self.folder}")

    def run(self, crops: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 crops -> N x classes probabilities."""
        return self.run_scored(crops)[0]

    def run_scored(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """N x H x W x 3 uint8 crops -> (N x classes probabilities, N novelty scores or None for a model
        without the novelty output)."""
        probs, novelty = [], []
        for start in range(0, len(crops), BATCH_SIZE):
            batch = np.ascontiguousarray(crops[start:start + BATCH_SIZE])
            if self.format == "onnx":
                outputs = self._session.run(None, {self._input: batch})
            else:
                with self._torch.inference_mode():
                    outputs = self._module(self._torch.from_numpy(batch))
                outputs = [t.numpy() for t in outputs] if isinstance(outputs, tuple) else [outputs.numpy()]
            probs.append(outputs[0])
            if len(outputs) > 1:
                novelty.append(outputs[1])
        if not probs:
            return np.zeros((0, len(self.class_names)), dtype=np.float32), None
        return (np.concatenate(probs).astype(np.float32),
                np.concatenate(novelty).astype(np.float32) if novelty else None)

    def probabilities(self, images, *, tta: bool | None = None) -> np.ndarray:
        """Class probabilities (N x classes); with `tta`, the mean over the studio's TTA views (the crop
        and the whole frame, each also mirrored); None follows the run's choice (`self.tta`)."""
        return self.scores(images, tta=tta)[0]

    def scores(self, images, *, tta: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(`probabilities`, the novelty score of each image's unmirrored eval crop or None for a model
        without that output)."""
        tta = self.tta if tta is None else tta
        if not len(images):
            return np.zeros((0, len(self.class_names)), dtype=np.float32), None
        return self._crop_scores(
            np.stack([preprocess_views(image, self.preprocessing, view_zooms(tta)) for image in images]), tta
        )

    def predict(
        self, images, *, tta: bool | None = None, top_k: int = 5, skip_unreadable: bool = False
    ) -> list[dict]:
        """[{"path", "top": [{"class", "probability"}, ...], "unknown", "unlike_training"}] best first:
        `studio predict --json`'s shape (`tta` None: the run's choice). `unknown`: the top probability is
        below the run's threshold, or the image is unlike the training images (`unlike_training`: its
        novelty score, the model's second output for the unmirrored eval crop, above its threshold).
        With `skip_unreadable`, an image that cannot be decoded gets {"path", "top": [], "error": reason}
        instead of stopping the others."""
        tta = self.tta if tta is None else tta
        images = list(images)
        crops, errors = [], {}
        for index, image in enumerate(images):
            try:
                crops.append(preprocess_views(image, self.preprocessing, view_zooms(tta)))
            except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
                if not skip_unreadable:
                    raise
                errors[index] = "file is empty (0 bytes)" if _empty_file(image) else unreadable_reason(error)
        probs, novelty = self._crop_scores(np.stack(crops), tta) if crops else ([], None)
        rows = iter(probs)
        scores = iter(novelty if novelty is not None else [])
        k = max(1, min(top_k, len(self.class_names)))
        results = []
        for index, image in enumerate(images):
            name = str(image) if isinstance(image, (str, os.PathLike)) else None
            if index in errors:
                results.append({"path": name, "top": [], "error": errors[index]})
                continue
            row = next(rows)
            score = next(scores, None)
            unlike = bool(score is not None and self.novelty_threshold is not None
                          and score > self.novelty_threshold)
            order = np.argsort(-row, kind="stable")[:k]
            results.append(
                {
                    "path": name,
                    "top": [{"class": self.class_names[i], "probability": float(row[i])} for i in order],
                    "unknown": bool(row.max() < self.unknown_threshold) or unlike,
                    "unlike_training": unlike,
                }
            )
        return results

    def _crop_scores(self, crops: np.ndarray, tta: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """N x zooms x H x W x 3 crops -> (N x classes, N novelty scores or None): the mean over zooms (and
        mirror images with `tta`), summed in the studio's view order (each zoom, then its mirror) so the
        float32 sums agree; the novelty score of the first view (the unmirrored eval crop), as the studio."""
        views, novelty = [], None
        for z in range(crops.shape[1]):
            probs, scores = self.run_scored(crops[:, z])
            views.append(probs)
            novelty = scores if z == 0 else novelty
            if tta:
                views.append(self.run(crops[:, z, :, ::-1]))
        return np.mean(np.stack(views, axis=1), axis=1), novelty


# ------------------------------------------------------------------------------------------- inputs, outputs

def _empty_file(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and os.path.isfile(source) and not os.path.getsize(source)


def image_paths(items) -> list[str]:
    """The files as given, each folder replaced by its images (recursively, sorted): the arguments of
    `studio predict` and of this script. ValueError names an argument that is neither."""
    paths = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"No images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {path}.")
            paths.extend(found)
        elif path.is_file():
            paths.append(str(path))
        else:
            raise ValueError(f"{item} is neither an image file nor a folder.")
    return paths


def plain_prediction(result: dict, path: str | None = None) -> dict:
    """One prediction as JSON, the shape `studio predict --json`, the app's `/predict` API, the Predict
    tab and this file's `--json` share: {"path", "top": [{"class", "probability"}],
    "unknown", "unlike_training"}, or {"path", "top": [], "error"} for an unreadable image. `path`
    replaces the result's own (the name the caller knows the image by)."""
    plain = {"path": result.get("path") if path is None else path,
             "top": [{"class": str(t["class"]), "probability": float(t["probability"])}
                     for t in result["top"]]}
    if result.get("error"):
        return {**plain, "error": result["error"]}
    return {**plain, "unknown": bool(result.get("unknown")),
            "unlike_training": bool(result.get("unlike_training"))}


CSV_COLUMNS = ("path", "prediction", "probability", "unknown", "unlike_training")


def output_file_problem(path, flag: str = "--csv", suffix: str = ".csv") -> str | None:
    """Why `path` cannot take an output file (checked before the work, not after it), or None. An existing
    file is replaced only when it is what this flag writes (a `suffix` file; for a CSV, one with a
    predictions header): `--csv photo.jpg` must not turn a photo, or a labels CSV, into predictions."""
    path = Path(path).expanduser()
    if path.is_dir():
        return f"{flag} {path} is a folder; give a file path, e.g. {path / ('predictions' + suffix)}"
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        return f"{flag} {path}: {parent} is a file, not a folder"
    if path.exists():
        ours = path.suffix.lower() == suffix
        if ours and suffix == ".csv":
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    ours = handle.readline().strip().split(",")[:len(CSV_COLUMNS)] == list(CSV_COLUMNS)
            except OSError:
                ours = False
        if not ours:
            kind = "a predictions CSV" if suffix == ".csv" else f"a {suffix} file"
            return (f"{flag} {path} already exists and is not {kind}: it was left as it is; give a new "
                    "file name")
    return None


def write_predictions_csv(results: list[dict], csv_path, class_names: list[str]) -> Path:
    """One row per image: path, predicted class, its probability, `unknown` (1 below the run's rejection
    threshold or unlike the training images), `unlike_training` (1 when that is why), every class's
    probability, and the reason when the image could not be read (its other cells are empty). A result's
    class probabilities come from its `probs` (class order) or, without it, from a `top` that lists every
    class. The studio writes its CSV with this function too."""
    path = Path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*CSV_COLUMNS, *[f"p_{c}" for c in class_names], "error"])
        for result in results:
            if result.get("error"):
                writer.writerow([result["path"], "", "", "", "", *[""] * len(class_names), result["error"]])
                continue
            if "probs" in result:
                probs = [float(p) for p in result["probs"]]
            else:
                by_class = {t["class"]: t["probability"] for t in result["top"]}
                probs = [by_class[c] for c in class_names]
            best = result["top"][0]
            writer.writerow([result["path"], best["class"], f"{best['probability']:.6f}",
                             int(bool(result.get("unknown"))), int(bool(result.get("unlike_training"))),
                             *[f"{p:.6f}" for p in probs], ""])
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify images with this exported model.")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files or folders (searched recursively)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="test-time augmentation: the crop and the whole frame, each also mirrored; "
                        "default: the run's own choice (decision.json)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    parser.add_argument("--csv", metavar="OUT", help="also write the predictions to this CSV file "
                        "(the columns of `studio predict --csv`)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    if args.csv and (problem := output_file_problem(args.csv)):
        parser.error(problem)
    try:
        paths = image_paths(args.images)
    except ValueError as error:
        parser.error(str(error))
    model = BundleModel(Path(__file__).resolve().parent)
    # An unreadable file is reported and skipped: it must not cost the other images their predictions.
    # Every class is ranked (the CSV holds them all); the output keeps the top k.
    results = model.predict(paths, tta=args.tta, top_k=len(model.class_names), skip_unreadable=True)
    if args.csv:
        write_predictions_csv(results, args.csv, model.class_names)
    for result in results:
        if "error" not in result:
            del result["top"][args.top_k:]
    for result in results:
        if "error" in result:
            print(f"skipped {result['path']}: {result['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps([plain_prediction(r) for r in results]))
    else:
        for result in results:
            if "error" not in result:
                ranked = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in result["top"])
                unsure = (" (not sure: unlike the training images)" if result.get("unlike_training")
                          else " (not sure: none of the classes fits well)" if result["unknown"] else "")
                print(f"{result['path']}: {ranked}{unsure}")
    return 0 if any("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
