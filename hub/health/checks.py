"""The image checks: small pure functions on grey (luma) pictures, numpy and OpenCV only.

Everything works on an 8-bit grey picture (full-range luma, 0 = black, 255 = white). A picture is
first reduced to a *work* picture at most :data:`WORK_WIDTH` pixels wide, so thresholds mean the
same thing for a 640x360 household camera and a 1920x1080 street camera, and a 1080p frame costs
about as much as a 640x360 one. Measured costs are in ``bench/bench_health.py``.

The measures, and why they are these:

``brightness``
    Mean luma, 0–255 (:func:`brightness`). Night and storm pictures read low.
``contrast``
    Standard deviation of luma (:func:`contrast`).
``sharpness``
    *Edge sharpness* (:func:`edge_sharpness`): at the strongest edges of the picture, the ratio of
    the gradient seen at a fine scale (Gaussian sigma 1) to the gradient seen at a coarse scale
    (sigma 3), the median over a 4x4 grid of cells. A crisp edge reads about 1.8–2.0, an edge
    blurred by a few pixels about 1.2–1.6; it cannot go below 1. It is a ratio, so it does not
    change when the light changes, and it only looks at strong edges, so sensor noise at night
    barely moves it. The plain variance of the
    Laplacian (:func:`laplacian_variance`) is kept for comparison: it falls 5-fold from day to
    night on the same sharp scene while noise raises it on a blurred one, so a fixed threshold on it
    would flap between day and night (numbers in ``docs/image_health.md``).
``edges``
    Fraction of thumbnail pixels (:data:`THUMB_WIDTH` wide) whose Sobel gradient magnitude
    exceeds :data:`EDGE_LEVEL` (:func:`edge_density`). A covered lens has almost none.
``changed``
    Fraction of pixels of the :data:`COMPARE_WIDTH` picture that differ by more than
    :data:`CHANGE_LEVEL` grey levels from the previous sample (:func:`changed_fraction`). A live
    camera's pictures always differ (noise, the on-screen clock, traffic); a frozen one's do not.
``shift``
    Translation and match strength against the reference picture, by phase correlation of the
    thumbnails' normalised log-gradient images (:func:`scene_shift`). Gradients of a
    normalised picture, not brightness, so a daylight reference still matches a lit night picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_WIDTH = 640
"""Pictures wider than this are reduced (INTER_AREA) before measuring."""
COMPARE_WIDTH = 320
"""Width of the picture kept from one sample to the next for the frozen check."""
THUMB_WIDTH = 160
"""Width of the thumbnail used for structure (edges) and scene shift."""
EDGE_LEVEL = 40.0
"""Sobel magnitude on the thumbnail above which a pixel counts as an edge (a step of ~10 levels)."""
CHANGE_LEVEL = 4
"""Grey levels by which a pixel must differ from the previous sample to count as changed."""


def _resize_to_width(gray: np.ndarray, width: int) -> np.ndarray:
    h, w = gray.shape[:2]
    if w <= width:
        return gray
    height = max(1, round(h * width / w))
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)


def work_picture(gray: np.ndarray) -> np.ndarray:
    """The picture reduced to at most :data:`WORK_WIDTH` wide (unchanged if already smaller)."""
    return _resize_to_width(np.ascontiguousarray(gray), WORK_WIDTH)


def limited_to_full(y: np.ndarray) -> np.ndarray:
    """Turn limited-range luma (16–235, as in most H.264 streams) into full range (0–255)."""
    return cv2.convertScaleAbs(y, alpha=255.0 / 219.0, beta=-16.0 * 255.0 / 219.0)


def brightness(gray: np.ndarray) -> float:
    """Mean luma, 0–255."""
    return float(cv2.mean(gray)[0])


def contrast(gray: np.ndarray) -> float:
    """Standard deviation of luma, in grey levels."""
    return float(cv2.meanStdDev(gray)[1][0, 0])


def laplacian_variance(gray: np.ndarray) -> float:
    """The classic blur measure, variance of the Laplacian (for comparison; see the module doc)."""
    lap = cv2.Laplacian(gray, cv2.CV_16S)
    return float(cv2.meanStdDev(lap)[1][0, 0] ** 2)


def _gradient_magnitude(img: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1)
    return cv2.magnitude(gx, gy)


def edge_sharpness(gray: np.ndarray, top: float = 0.05, grid: int = 4) -> float:
    """Fine-to-coarse gradient ratio at the strongest ``top`` fraction of edges (see module doc).

    Measured in each cell of a ``grid`` x ``grid`` split of the picture and the median taken, so
    the camera's on-screen clock and name (drawn after the lens, always crisp) cannot make a
    blurred picture look sharp. Cells without structure are skipped; a picture without any
    structure reads 1.0 (as blurred as can be).
    """
    g = gray.astype(np.float32)
    fine = _gradient_magnitude(cv2.GaussianBlur(g, (0, 0), 1.0))
    coarse = _gradient_magnitude(cv2.GaussianBlur(g, (0, 0), 3.0))
    h, w = coarse.shape
    ratios = []
    for i in range(grid):
        for j in range(grid):
            ys, xs = slice(i * h // grid, (i + 1) * h // grid), slice(j * w // grid, (j + 1) * w // grid)
            c, f = coarse[ys, xs], fine[ys, xs]
            sample = c[::2, ::2].ravel()
            if sample.size < 16:
                continue
            k = int(sample.size * (1.0 - top))
            level = float(np.partition(sample, k)[k])
            if level < 4.0:  # under a 1-level step at sigma 3: no structure here
                continue
            mask = (c >= level).astype(np.uint8)
            cm = cv2.mean(c, mask=mask)[0]
            if cm > 1e-6:
                ratios.append(cv2.mean(f, mask=mask)[0] / cm)
    return float(np.median(ratios)) if ratios else 1.0


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """The picture reduced to :data:`THUMB_WIDTH` wide."""
    return _resize_to_width(gray, THUMB_WIDTH)


def edge_density(thumb: np.ndarray, level: float = EDGE_LEVEL) -> float:
    """Fraction of thumbnail pixels whose gradient magnitude exceeds ``level``."""
    mag = _gradient_magnitude(thumb)
    return float(np.count_nonzero(mag > level)) / max(1, mag.size)


def compare_picture(gray: np.ndarray) -> np.ndarray:
    """The picture kept for the next sample's frozen check (:data:`COMPARE_WIDTH` wide)."""
    return _resize_to_width(gray, COMPARE_WIDTH)


def changed_fraction(previous: np.ndarray, current: np.ndarray, level: int = CHANGE_LEVEL) -> float:
    """Fraction of pixels differing by more than ``level`` grey levels (1.0 if sizes differ)."""
    if previous.shape != current.shape:
        return 1.0
    diff = cv2.absdiff(previous, current)
    return float(np.count_nonzero(diff > level)) / max(1, diff.size)


def gradient_signature(thumb: np.ndarray) -> np.ndarray:
    """Normalised log-gradient image of a thumbnail: what :func:`scene_shift` compares.

    The log and the normalisation (zero mean, unit deviation) make it insensitive to the overall
    light level and contrast, so day and night pictures of the same scene look alike.
    """
    mag = np.log1p(_gradient_magnitude(thumb.astype(np.float32)))
    mean, std = cv2.meanStdDev(mag)
    return ((mag - float(mean[0, 0])) / (float(std[0, 0]) + 1e-6)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Shift:
    """Where the scene sits against the reference: ``dx``/``dy`` as fractions of the width and
    height (0.1 = a tenth of the picture), ``response`` the strength of the match (about 0.8–1.0 for
    the same scene, under 0.15 for an unrelated one)."""

    dx: float
    dy: float
    response: float

    @property
    def amount(self) -> float:
        """The larger of the horizontal and vertical shift, as a fraction of the picture."""
        return max(abs(self.dx), abs(self.dy))


def scene_shift(reference: np.ndarray, current: np.ndarray) -> Shift:
    """Phase correlation of two :func:`gradient_signature` images (a Hanning window limits the
    edge effects). Returns ``Shift(0, 0, 0)`` when the sizes differ (a changed resolution cannot be
    compared)."""
    if reference.shape != current.shape or min(reference.shape) < 8:
        return Shift(0.0, 0.0, 0.0)
    h, w = reference.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(reference, current, window)
    return Shift(float(dx) / w, float(dy) / h, float(response))


@dataclass(frozen=True, slots=True)
class FrameStats:
    """Everything measured on one picture (picklable: it crosses process boundaries)."""

    width: int
    height: int
    brightness: float
    contrast: float
    sharpness: float
    edges: float
    compare: np.ndarray
    signature: np.ndarray
    changed: float | None = None
    shift: Shift | None = None
    picture: bytes | None = None
    """A JPEG of the picture, when the caller asked for one (references, ``reference show``)."""


def analyse(gray: np.ndarray, previous: np.ndarray | None = None,
            reference: np.ndarray | None = None) -> FrameStats:
    """Measure one full-range grey picture.

    ``previous`` is the last sample's :attr:`FrameStats.compare` (for the frozen check) and
    ``reference`` the reference picture's :attr:`FrameStats.signature` (for the scene shift).
    """
    if gray.ndim != 2 or gray.dtype != np.uint8 or gray.shape[0] < 16 or gray.shape[1] < 16:
        raise ValueError(f"expected an 8-bit grey picture of at least 16x16, got {gray.dtype} {gray.shape}")
    height, width = gray.shape
    work = work_picture(gray)
    thumb = thumbnail(work)
    compare = compare_picture(work)
    signature = gradient_signature(thumb)
    mean, std = cv2.meanStdDev(work)
    return FrameStats(
        width=width, height=height, brightness=float(mean[0, 0]), contrast=float(std[0, 0]),
        sharpness=edge_sharpness(work), edges=edge_density(thumb), compare=compare, signature=signature,
        changed=changed_fraction(previous, compare) if previous is not None else None,
        shift=scene_shift(reference, signature) if reference is not None else None)
