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
    barely moves it. Both gradients are sampled on every other pixel and row, and the fine one only
    where the coarse one picked the strong edges, which measures the same thing for a fraction of
    the work. The plain variance of the Laplacian (:func:`laplacian_variance`) is kept for
    comparison: it falls 5-fold from day to night on the same sharp scene while noise raises it on
    a blurred one, so a fixed threshold on it would flap between day and night (numbers in
    ``docs/image_health.md``).
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

import functools
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
    """Reduce to ``width`` wide (aspect kept): exact halvings by pixel averaging (INTER_AREA, which
    OpenCV vectorises for a factor of 2) while the picture is at least twice too wide, then one
    bilinear step for the rest (a factor under 2, after the averaging, so nothing is skipped)."""
    h, w = gray.shape[:2]
    if w <= width:
        return gray
    height = max(1, round(h * width / w))
    while w >= 2 * width and h >= 2 * height:
        w, h = w // 2, h // 2
        gray = cv2.resize(gray[:2 * h, :2 * w], (w, h), interpolation=cv2.INTER_AREA)
    if w == width and h == height:
        return gray
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_LINEAR if w < 2 * width else cv2.INTER_AREA)


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


COARSE_SCALE = 0.1275
"""Sobel scale of the coarse gradient on the half-size picture, so that both gradients are in the
same unit (twice the derivative per full-size pixel; calibrated against the full-size Sobel of the
first version of this measure, mean difference under 0.01 over the generated scenes)."""
COARSE_SIGMA = 1.4
"""Extra blur on the half-size picture: sigma 1 (pyramid) + 1.4 half-size pixels ~ sigma 3."""


_COARSE_KERNEL = cv2.getGaussianKernel(9, COARSE_SIGMA, cv2.CV_32F)
"""The extra blur of the coarse level (applied by ``sepFilter2D`` straight from the 8-bit level into
float32: the same numbers as ``GaussianBlur`` on a float copy, without the copy)."""


@functools.lru_cache(maxsize=8)
def _strong_maps(h: int, w: int, grid: int, odd_width: int) -> tuple[np.ndarray, np.ndarray]:
    """For each position ``a * w + b`` of the half-size grid: its cell number, and the index of
    its up-left odd neighbour in the ``pyrDown`` of the picture shifted by one row and column."""
    a, b = np.divmod(np.arange(h * w, dtype=np.int32), w)
    cell_of = (a // (h // grid)) * grid + b // (w // grid)
    corner_of = a * odd_width + b
    for m in (cell_of, corner_of):
        m.flags.writeable = False  # shared between calls and threads
    return cell_of, corner_of


def edge_sharpness(gray: np.ndarray, top: float = 0.05, grid: int = 4) -> float:
    """Fine-to-coarse gradient ratio at the strongest ``top`` fraction of edges (see module doc).

    Measured in each cell of a ``grid`` x ``grid`` split of the picture and the median taken, so
    the camera's on-screen clock and name (drawn after the lens, always crisp) cannot make a
    blurred picture look sharp. Cells without structure are skipped; a picture without any
    structure reads 1.0 (as blurred as can be).

    How (about 0.3 ms at 640x360 on one core; ``bench/bench_health.py``):

    * the coarse gradient (sigma 3) everywhere on the half-size grid: ``pyrDown`` (sigma 1, every
      other pixel), a little more blur, Sobel;
    * in each cell, the level of its strongest ``top`` (from a sample of at least ~200 of its
      pixels) and the pixels at or above it;
    * the fine gradient (sigma 1) only at those pixels, from the sigma-1 picture at the odd
      positions (``pyrDown`` of the picture shifted by one row and column): the two diagonal
      differences around the even pixel give both components (each a difference across 2 pixels,
      averaged over the two rows or columns either side);
    * ratio = sum of fine / sum of coarse over the strong pixels of the cell.

    The first version computed the fine gradient everywhere from two more shifted pyramids, with
    differences along the rows and columns; this one reads 0.01–0.02 lower on the generated scenes
    (at most 0.08) and costs a quarter less.
    """
    gray = np.ascontiguousarray(gray)
    hh, hw = gray.shape[0] // 2 - 1, gray.shape[1] // 2 - 1  # even positions with all neighbours
    h, w = hh // grid * grid, hw // grid * grid
    th, tw = h // grid, w // grid
    if th * tw < 16:
        return 1.0
    level1 = cv2.pyrDown(gray)  # sigma-1 picture at (2i, 2j)
    smooth = cv2.sepFilter2D(level1, cv2.CV_32F, _COARSE_KERNEL, _COARSE_KERNEL)
    cx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, scale=COARSE_SCALE)[1:h + 1, 1:w + 1]
    cy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, scale=COARSE_SCALE)[1:h + 1, 1:w + 1]
    coarse = cv2.magnitude(cx, cy)  # at (2a + 2, 2b + 2), a < h, b < w
    sub = 4 if th * tw >= 3200 else 2 if th * tw >= 800 else 1
    cells = coarse.reshape(grid, th, grid, tw)
    sample = cells[:, ::sub, :, ::sub].transpose(0, 2, 1, 3).reshape(grid * grid, -1)
    k = int(sample.shape[1] * (1.0 - top))
    levels = np.partition(sample, k, axis=1)[:, k]
    strong = np.flatnonzero(cells >= levels.reshape(grid, 1, grid, 1))  # flat index a * w + b
    odd = cv2.pyrDown(gray[1:, 1:])  # sigma-1 picture at (2i + 1, 2j + 1)
    cell_of, corner_of = _strong_maps(h, w, grid, odd.shape[1])
    cell = cell_of[strong]
    o = odd.ravel()
    nw = corner_of[strong]  # (2a + 1, 2b + 1): up and left of (2a + 2, 2b + 2)
    ne, sw = nw + 1, nw + odd.shape[1]
    d1 = np.subtract(o[sw + 1], o[nw], dtype=np.float32)  # down-right minus up-left
    d2 = np.subtract(o[sw], o[ne], dtype=np.float32)  # down-left minus up-right
    # x and y differences across 2 pixels are d1 -+ d2 over 2; their magnitude, in the coarse unit
    fine = np.sqrt((d1 * d1 + d2 * d2) * 0.5)
    fine_sum = np.bincount(cell, fine, grid * grid)
    coarse_sum = np.bincount(cell, coarse.ravel()[strong], grid * grid)
    ratios = sorted(float(f) / float(c) for f, c, lv in zip(fine_sum, coarse_sum, levels, strict=True)
                    if lv >= 1.0 and c > 1e-6)  # under a 1-level step at sigma 3: no structure here
    n = len(ratios)
    if not n:
        return 1.0
    return ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """The picture reduced to :data:`THUMB_WIDTH` wide."""
    return _resize_to_width(gray, THUMB_WIDTH)


def edge_density(thumb: np.ndarray, level: float = EDGE_LEVEL, magnitude: np.ndarray | None = None) -> float:
    """Fraction of thumbnail pixels whose gradient magnitude exceeds ``level`` (``magnitude``: the
    thumbnail's :func:`_gradient_magnitude`, when the caller has it already)."""
    mag = _gradient_magnitude(thumb) if magnitude is None else magnitude
    # cv2's stubs type the second operand as an array; OpenCV takes a scalar too
    return cv2.countNonZero(cv2.compare(mag, level, cv2.CMP_GT)) / max(1, mag.size)  # type: ignore[call-overload]


def compare_picture(gray: np.ndarray) -> np.ndarray:
    """The picture kept for the next sample's frozen check (:data:`COMPARE_WIDTH` wide)."""
    return _resize_to_width(gray, COMPARE_WIDTH)


def changed_fraction(previous: np.ndarray, current: np.ndarray, level: int = CHANGE_LEVEL) -> float:
    """Fraction of pixels differing by more than ``level`` grey levels (1.0 if sizes differ)."""
    if previous.shape != current.shape:
        return 1.0
    diff = cv2.absdiff(previous, current)
    # cv2's stubs type the second operand as an array; OpenCV takes a scalar too
    return cv2.countNonZero(cv2.compare(diff, level, cv2.CMP_GT)) / max(1, diff.size)  # type: ignore[call-overload]


def gradient_signature(thumb: np.ndarray, magnitude: np.ndarray | None = None) -> np.ndarray:
    """Normalised log-gradient image of a thumbnail: what :func:`scene_shift` compares
    (``magnitude``: the thumbnail's :func:`_gradient_magnitude`, when the caller has it already).

    The log and the normalisation (zero mean, unit deviation) make it insensitive to the overall
    light level and contrast, so day and night pictures of the same scene look alike.
    """
    mag = _gradient_magnitude(thumb) if magnitude is None else magnitude
    logmag = cv2.log(mag + 1.0)
    mean, std = cv2.meanStdDev(logmag)
    # cv2's stubs type the second operand as an array; OpenCV takes a scalar too
    return cv2.multiply(cv2.subtract(logmag, float(mean[0, 0])),  # type: ignore[call-overload]
                        1.0 / (float(std[0, 0]) + 1e-6))


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


@functools.lru_cache(maxsize=8)
def _hanning(width: int, height: int) -> np.ndarray:
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    window.flags.writeable = False  # shared between calls and threads
    return window


def scene_shift(reference: np.ndarray, current: np.ndarray) -> Shift:
    """Phase correlation of two :func:`gradient_signature` images (a Hanning window limits the
    edge effects). Returns ``Shift(0, 0, 0)`` when the sizes differ (a changed resolution cannot be
    compared)."""
    if reference.shape != current.shape or min(reference.shape) < 8:
        return Shift(0.0, 0.0, 0.0)
    h, w = reference.shape
    (dx, dy), response = cv2.phaseCorrelate(reference, current, _hanning(w, h))
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
    compare = compare_picture(work)
    thumb = thumbnail(compare)  # 320 -> 160 wide: the same pixel averages as from the work picture
    magnitude = _gradient_magnitude(thumb)  # shared by the edge fraction and the signature
    signature = gradient_signature(thumb, magnitude)
    mean, std = cv2.meanStdDev(work)
    return FrameStats(
        width=width, height=height, brightness=float(mean[0, 0]), contrast=float(std[0, 0]),
        sharpness=edge_sharpness(work), edges=edge_density(thumb, magnitude=magnitude), compare=compare,
        signature=signature,
        changed=changed_fraction(previous, compare) if previous is not None else None,
        shift=scene_shift(reference, signature) if reference is not None else None)
