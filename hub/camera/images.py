"""Plausible camera pictures for simulators: a street scene (sky, houses, road, noise, a time
stamp), not a flat colour, so image-health checks (brightness, blur, scene change) see something
realistic. ``scene(channel)`` differs per channel; ``encode_jpeg`` turns any BGR array into JPEG.
"""

from __future__ import annotations

import time

import cv2
import numpy as np


def scene(channel: int = 1, width: int = 640, height: int = 360, night: bool = False,
          stamp: str | None = None) -> np.ndarray:
    rng = np.random.default_rng(channel * 7919)
    img = np.zeros((height, width, 3), np.uint8)
    horizon = int(height * 0.45)
    sky_top, sky_bottom = (np.array([40, 20, 10]), np.array([90, 60, 40])) if night else \
        (np.array([235, 190, 140]), np.array([250, 225, 200]))
    for y in range(horizon):
        img[y, :] = (sky_top + (sky_bottom - sky_top) * (y / max(horizon, 1))).astype(np.uint8)
    img[horizon:, :] = (40, 60, 50) if night else (70, 120, 95)
    road = np.array([[int(width * 0.35), horizon], [int(width * 0.65), horizon], [width, height], [0, height]])
    cv2.fillPoly(img, [road], (45, 45, 45) if night else (95, 95, 100))
    cv2.line(img, (width // 2, horizon), (width // 2, height), (200, 200, 200), 2)
    x = 5
    while x < width - 40:
        w = int(rng.integers(40, 110))
        h = int(rng.integers(40, 120))
        colour = tuple(int(c) for c in rng.integers(60, 230, 3))
        top = horizon - h
        if x + w < width * 0.33 or x > width * 0.67:
            cv2.rectangle(img, (x, top), (x + w, horizon + 20), colour, -1)
            cv2.rectangle(img, (x + w // 4, top + h // 3), (x + w // 2, top + h // 2), (30, 30, 30), -1)
            cv2.line(img, (x - 4, top), (x + w // 2, top - 18), (40, 40, 120), 3)
            cv2.line(img, (x + w // 2, top - 18), (x + w + 4, top), (40, 40, 120), 3)
        x += w + int(rng.integers(5, 25))
    noise = rng.normal(0, 6, img.shape)
    img = np.clip(img.astype(np.int16) + noise.astype(np.int16), 0, 255).astype(np.uint8)
    label = stamp or time.strftime("%Y-%m-%d %H:%M:%S")
    cv2.putText(img, f"CAM {channel:02d}  {label}", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    return img


def encode_jpeg(bgr: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError("cv2.imencode failed")
    return buf.tobytes()


def picture_bytes(value: np.ndarray | bytes) -> bytes:
    """Accept a BGR array or ready JPEG bytes (``sim.set_picture``)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return encode_jpeg(np.asarray(value))
