"""Reference pictures: what each camera *should* see, kept in the data directory.

Layout, under ``<data_dir>/references/``:

``<camera>.jpg`` / ``<camera>.json``
    The reference picture and its metadata: ``{"time": ISO-8601, "source": "auto" | "cli" |
    "mqtt", "width", "height", "brightness", "sharpness"}``. ``auto`` means the image-health rule
    took the first healthy daylight picture because there was no reference yet.
``<camera>.latest.jpg`` / ``<camera>.latest.json``
    The latest picture the rule looked at (when ``keep_latest`` is on), for
    ``anninh reference show``.

Every file is written atomically (a temporary file, then a rename), so the hub and the
``anninh reference`` command can use the folder at the same time: the rule notices a new reference
by its modification time.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .checks import analyse, scene_shift
from .sources import decode_jpeg_gray, write_atomic


class ReferenceStore:
    """Reference and latest pictures of the cameras (blocking file I/O: call from a worker)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.dir = Path(data_dir) / "references"

    def picture_path(self, device_id: str) -> Path:
        return self.dir / f"{device_id}.jpg"

    def meta_path(self, device_id: str) -> Path:
        return self.dir / f"{device_id}.json"

    def latest_path(self, device_id: str) -> Path:
        return self.dir / f"{device_id}.latest.jpg"

    def stamp(self, device_id: str) -> int | None:
        """Modification time (ns) of the reference picture, or ``None`` if there is none."""
        try:
            return self.picture_path(device_id).stat().st_mtime_ns
        except OSError:
            return None

    def has(self, device_id: str) -> bool:
        return self.picture_path(device_id).is_file()

    def meta(self, device_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.meta_path(device_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, device_id: str, jpeg: bytes, *, source: str, time: datetime,
             width: int | None = None, height: int | None = None, brightness: float | None = None,
             sharpness: float | None = None) -> dict[str, Any]:
        """Store ``jpeg`` as the camera's reference. Returns the metadata written."""
        gray, (w, h) = decode_jpeg_gray(jpeg)  # refuses anything that is not a picture
        if brightness is None or sharpness is None:
            stats = analyse(gray)
            brightness, sharpness = stats.brightness, stats.sharpness
        meta = {"device": device_id, "time": time.isoformat(), "source": source,
                "width": width or w, "height": height or h,
                "brightness": round(brightness), "sharpness": round(sharpness, 2)}
        write_atomic(self.meta_path(device_id), json.dumps(meta, indent=1).encode())
        write_atomic(self.picture_path(device_id), jpeg)
        return meta

    def latest_time(self, device_id: str) -> str | None:
        try:
            return str(json.loads((self.dir / f"{device_id}.latest.json").read_text())["time"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def clear(self, device_id: str) -> bool:
        """Forget the reference (the next healthy daylight picture becomes the new one)."""
        found = False
        for p in (self.picture_path(device_id), self.meta_path(device_id)):
            if p.exists():
                p.unlink()
                found = True
        return found

    def signature(self, device_id: str) -> np.ndarray | None:
        """The reference's gradient signature (for :func:`plugins.image_health.checks.scene_shift`)."""
        try:
            data = self.picture_path(device_id).read_bytes()
        except OSError:
            return None
        gray, _ = decode_jpeg_gray(data)
        return analyse(gray).signature

    def compose(self, device_id: str, out: str | Path, latest: bytes | None = None,
                height: int = 360) -> dict[str, Any]:
        """Write one picture for a person: reference | latest | difference, labelled.

        ``latest`` is a JPEG; by default the latest picture the hub kept. Returns a summary with
        the measured shift. Raises :class:`FileNotFoundError` if a picture is missing."""
        ref_bytes = self.picture_path(device_id).read_bytes() if self.has(device_id) else None
        if ref_bytes is None:
            raise FileNotFoundError(f"no reference picture for {device_id} in {self.dir}")
        if latest is None:
            path = self.latest_path(device_id)
            if not path.is_file():
                raise FileNotFoundError(f"no latest picture of {device_id} in {self.dir} (the hub keeps one "
                                        "after each check; or take one now with --live)")
            latest = path.read_bytes()
        ref = _decode_colour(ref_bytes)
        cur = _decode_colour(latest)
        ref_s, cur_s = _to_height(ref, height), _to_height(cur, height)
        if cur_s.shape != ref_s.shape:
            cur_s = cv2.resize(cur_s, (ref_s.shape[1], ref_s.shape[0]), interpolation=cv2.INTER_AREA)
        ref_g = cv2.cvtColor(ref_s, cv2.COLOR_BGR2GRAY)
        cur_g = cv2.cvtColor(cur_s, cv2.COLOR_BGR2GRAY)
        diff = cv2.applyColorMap(cv2.convertScaleAbs(cv2.absdiff(ref_g, cur_g), alpha=2.0), cv2.COLORMAP_INFERNO)
        a, b = analyse(ref_g), analyse(cur_g)
        shift = scene_shift(a.signature, b.signature)
        meta = self.meta(device_id) or {}
        labels = [f"reference {meta.get('time', '?')[:19]} ({meta.get('source', '?')})",
                  f"latest {(self.latest_time(device_id) or 'now')[:19]}",
                  f"difference: shift {shift.dx * 100:+.0f}% x {shift.dy * 100:+.0f}% y, match {shift.response:.2f}"]
        panels = []
        for img, text in zip((ref_s, cur_s, diff), labels, strict=True):
            panel = img.copy()
            cv2.rectangle(panel, (0, 0), (panel.shape[1], 22), (0, 0, 0), -1)
            cv2.putText(panel, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            panels.append(panel)
        sheet = np.hstack(panels)
        out = Path(out)
        ext = out.suffix or ".png"
        ok, buf = cv2.imencode(ext, sheet)
        if not ok:
            raise ValueError(f"cannot write pictures of type {ext!r}; use .png or .jpg")
        write_atomic(out, buf.tobytes())
        return {"device": device_id, "output": str(out), "reference_time": meta.get("time"),
                "shift_x": round(shift.dx, 3), "shift_y": round(shift.dy, 3), "match": round(shift.response, 3),
                "reference_brightness": round(a.brightness), "latest_brightness": round(b.brightness)}


def _decode_colour(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a picture")
    return img


def _to_height(img: np.ndarray, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    width = max(1, round(w * height / h))
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)
