"""The image checks themselves (plugins/image_health/checks.py) and the worker pool's priority: the sharp /
blurred separation that the thresholds rely on, by day and by night, at the sizes cameras send."""

from __future__ import annotations

import os
import sys
import threading

import cv2
import numpy as np
import pytest

from plugins.image_health.checks import analyse, edge_sharpness, work_picture
from plugins.image_health.monitor import HealthOptions
from plugins.image_health.pool import WORKER_NICE, HealthPool
from plugins.image_health.sources import decode_jpeg_gray
from tests.support.health import jpeg, make_clip

OPTS = HealthOptions()


def _sharpness(kind: str, width: int, height: int, night: bool, seed: int) -> float:
    gray, _ = decode_jpeg_gray(jpeg(make_clip(kind, width, height, frames=1, night=night, seed=seed)[0]))
    return analyse(gray).sharpness


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)], ids=["640x360", "1080p"])
def test_sharp_and_blurred_scenes_fall_either_side_of_the_thresholds_day_and_night(size: tuple[int, int]) -> None:
    w, h = size
    for seed in (0, 2, 3, 5):
        sharp = {night: _sharpness("normal", w, h, night, seed) for night in (False, True)}
        blurred = {night: _sharpness("blurred", w, h, night, seed) for night in (False, True)}
        for night in (False, True):
            assert sharp[night] > OPTS.blur_clear, (seed, night, sharp)
            assert 1.0 <= blurred[night] < OPTS.blur_below - 0.1, (seed, night, blurred)
        # the light level does not move the measure: no flapping at dusk
        assert abs(sharp[True] - sharp[False]) < 0.15, (seed, sharp)
        assert abs(blurred[True] - blurred[False]) < 0.1, (seed, blurred)


def test_osd_text_on_a_blurred_picture_does_not_make_it_sharp() -> None:
    img = make_clip("blurred", 640, 360, frames=1)[0]
    cv2.putText(img, "2024-06-01 12:00:00 KP3", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    assert edge_sharpness(gray) < OPTS.blur_below


def test_work_picture_fast_reduction_matches_pixel_averaging() -> None:
    gray = cv2.cvtColor(make_clip("normal", 1920, 1080, frames=1, night=True)[0], cv2.COLOR_BGR2GRAY)
    fast = work_picture(gray)
    exact = cv2.resize(gray, (640, 360), interpolation=cv2.INTER_AREA)
    assert fast.shape == (360, 640)
    assert float(np.mean(cv2.absdiff(fast, exact))) < 1.5
    odd = np.ascontiguousarray(gray[:1001, :1801])  # odd sizes take the same path
    assert work_picture(odd).shape == (round(1001 * 640 / 1801), 640)


@pytest.mark.parametrize("shape", [(16, 16), (17, 33), (40, 700), (700, 40)])
def test_small_and_odd_pictures_are_measured_without_error(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 255, shape, dtype=np.uint8)
    stats = analyse(gray, analyse(gray).compare)
    assert stats.sharpness >= 1.0 and stats.changed == 0.0
    flat = np.full(shape, 90, np.uint8)
    assert analyse(flat).sharpness == 1.0


def _process_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux behaviour")
async def test_workers_run_at_lower_priority_than_the_event_loop() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    expected = min(19, mine + WORKER_NICE)
    pool = HealthPool(2, "thread")
    try:
        worker = await pool.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    finally:
        pool.close()
    assert worker == expected
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the loop's thread is untouched
    pool = HealthPool(1, "process")
    try:
        assert await pool.run(_process_priority) == expected
    finally:
        pool.close()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
