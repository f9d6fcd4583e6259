"""From the recorder's files to a playable MP4: the video copied without re-encoding, the audio
(G.711, which MP4 cannot carry) transcoded to AAC (PyAV; FFmpeg's ``mpeg`` demuxer reads
Hikvision PS, its ``dhav`` demuxer Dahua DAV).

Each video packet gets a wall time on the recorder's clock: the file's start (from the
recorder's search answer) plus the packet's PTS since the file's first one (33-bit PTS
wrap-around undone). The MP4 starts at the last keyframe at or before the requested start (a
copy cannot start between keyframes: the first frame may be up to one GOP early) and ends with
the last frame before the requested end. Packets are copied one at a time; only a GOP waiting
for the start is held in memory. Runs in a worker thread (CPU, blocking file I/O).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import queue
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np

log = logging.getLogger("hub.export")

IMKH_SIZE = 40
OUT_TIME_BASE = Fraction(1, 90_000)
PTS_WRAP = 1 << 33
FORMATS = {"ps": "mpeg", "dav": "dhav"}
AAC_QUALITY = 118
"""FFmpeg's AAC encoder at constant quality 1 (``-q:a 1``, in its lambda units: 1 x FF_QP2LAMBDA)."""
MOOV_BYTES_PER_FRAME = 40
"""Index bytes reserved per sample: size 4, time offset 8, sync 4, chunk offset 8, chunk run 12,
and slack."""
MOOV_SLACK = 64 * 1024
G711 = ("pcm_alaw", "pcm_mulaw")
REMUX_NICE = 10
"""The remux child's niceness (``process=True``, a running hub): the hub's own work goes first."""


class Span(Protocol):
    """What the remux reads of a recording's :class:`hub.api.Segment` (recorder wall clock).
    The remux child process gets these three alone: it does not import :mod:`hub.api` (and
    pydantic, which its config models need), a third of a second of CPU at each export's start."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...

    @property
    def container(self) -> str: ...


@dataclass(frozen=True)
class _Span:
    start: datetime
    end: datetime
    container: str


@dataclass
class Original:
    """A downloaded file and the segment it came from."""

    path: Path
    segment: Span


@dataclass
class VideoResult:
    path: Path
    first: datetime  # recorder wall clock of the first frame
    last: datetime  # ... of the last frame's start
    frame_duration: float
    frames: int
    codec: str
    width: int
    height: int
    notes: list[str] = field(default_factory=list)
    originals: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Codec, width and height of each original read (by path), so they need no second opening."""
    mp4: dict[str, Any] = field(default_factory=dict)
    """``sha256``, ``bytes``, ``duration_s``, ``codec``, ``width``, ``height`` of the MP4 written."""

    @property
    def duration_s(self) -> float:
        return round((self.last - self.first).total_seconds() + self.frame_duration, 3)


def open_input(path: Path, container: str) -> tuple[av.container.InputContainer, io.BufferedReader]:
    """Open a recorder file; a Hikvision file's 40-byte ``IMKH`` header is skipped."""
    f = path.open("rb")
    if f.read(4) == b"IMKH":
        f.seek(IMKH_SIZE)
    else:
        f.seek(0)
    try:
        return av.open(f, mode="r", format=FORMATS.get(container)), f
    except Exception:
        f.close()
        raise


def probe(path: Path, container: str) -> dict[str, Any]:
    """Codec, width and height of a recorder file's video (from its stream headers)."""
    c, f = open_input(path, container)
    try:
        if not c.streams.video:
            return {"codec": None, "width": None, "height": None}
        cc = c.streams.video[0].codec_context
        return {"codec": cc.name, "width": cc.width or None, "height": cc.height or None}
    finally:
        c.close()
        f.close()


class _AacTrack:
    """The recorder's audio (G.711 on most DVRs, which MP4 cannot carry) decoded and encoded to
    AAC-LC at its own sample rate, laid on the MP4's time line from its first sample on."""

    def __init__(self, out: av.container.OutputContainer, rate: int, codec: str | None = None) -> None:
        self.rate = rate
        self.table = _g711_table(codec) if codec in G711 else None
        """G.711 (what recorders send): each byte one sample, turned into a float by a table made
        with FFmpeg's own decoder and decoded a second of packets at once, instead of a decode, a
        resample and a FIFO write per 40 ms packet (60 us each: more than the AAC encoder)."""
        self.raw: list[bytes] = []
        self.raw_samples = 0
        self.samples = np.zeros(0, np.float32)
        self.stream: Any = out.add_stream("aac", rate=rate, layout="mono")
        self.stream.codec_context.options = {"aac_coder": "fast"}  # 2.5x faster than twoloop
        # constant quality, not a bit rate: to hold a bit rate FFmpeg's encoder codes a frame up
        # to five times more when the sound needs fewer bits than the rate gives (a quiet room, a
        # hum, a tone), which cost up to 0.9 s per minute of 8 kHz audio against 0.1-0.3 s this
        # way, for the same 20-40 kb/s on G.711's telephone band
        self.stream.codec_context.flags |= av.codec.context.Flags.qscale
        self.stream.codec_context.global_quality = AAC_QUALITY
        self.resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        self.fifo = av.AudioFifo()
        self.next_sample: int | None = None

    def add(self, out: av.container.OutputContainer, packet: av.Packet, at: float) -> None:
        """``at``: the packet's time in seconds on the MP4's time line."""
        if self.table is not None:
            if self.next_sample is None:
                self.next_sample = max(0, round(at * self.rate))
            self.raw.append(bytes(packet))
            self.raw_samples += packet.size
            if self.raw_samples >= self.rate:
                self._encode_g711(out, final=False)
            return
        for frame in packet.decode():
            if not isinstance(frame, av.AudioFrame):
                continue
            if self.next_sample is None:
                self.next_sample = max(0, round(at * self.rate))
            for resampled in self.resampler.resample(frame):
                resampled.pts = None
                self.fifo.write(resampled)
        self._drain(out, final=False)

    def _drain(self, out: av.container.OutputContainer, final: bool) -> None:
        size = self.stream.codec_context.frame_size or 1024
        while self.fifo.samples >= size or (final and self.fifo.samples):
            frame = self.fifo.read(min(size, self.fifo.samples))
            if frame is None:
                break
            frame.pts = self.next_sample
            frame.time_base = Fraction(1, self.rate)
            self.next_sample = (self.next_sample or 0) + frame.samples
            for p in self.stream.encode(frame):
                out.mux(p)

    def _encode_g711(self, out: av.container.OutputContainer, final: bool) -> None:
        """Decode the G.711 bytes gathered, encode every whole AAC frame (and the rest: ``final``)."""
        assert self.table is not None
        data = self.table[np.frombuffer(b"".join(self.raw), np.uint8)] if self.raw else np.zeros(0, np.float32)
        self.raw, self.raw_samples = [], 0
        data = np.concatenate((self.samples, data)) if len(self.samples) else data
        size = self.stream.codec_context.frame_size or 1024
        whole = len(data) if final else len(data) - len(data) % size
        for at in range(0, whole, size):
            frame = av.AudioFrame.from_ndarray(data[at:at + size].reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self.next_sample
            frame.time_base = Fraction(1, self.rate)
            self.next_sample = (self.next_sample or 0) + frame.samples
            for p in self.stream.encode(frame):
                out.mux(p)
        self.samples = data[whole:]

    def close(self, out: av.container.OutputContainer) -> None:
        if self.table is not None:
            self._encode_g711(out, final=True)
        self._drain(out, final=True)
        for p in self.stream.encode(None):
            out.mux(p)


def _g711_table(codec: str) -> np.ndarray:
    """The 256 sample values of a G.711 codec (``pcm_alaw``, ``pcm_mulaw``) as FFmpeg decodes
    them, as float32 in -1..1 (16-bit / 32768, as FFmpeg's resampler converts them)."""
    cc: Any = av.CodecContext.create(codec, "r")
    cc.sample_rate = 8000
    cc.layout = "mono"
    (frame,) = cc.decode(av.Packet(bytes(range(256))))
    return (frame.to_ndarray().reshape(-1).astype(np.float32) / np.float32(32768)).astype(np.float32)


def moov_reserve(seconds: float, fps: float, audio_rate: int | None) -> int:
    """Bytes to reserve at the front of the MP4 for its index (``moov``) of ``seconds`` of video
    at up to ``fps`` (at least 30) and AAC at ``audio_rate``: :data:`MOOV_BYTES_PER_FRAME` per
    sample, several times what FFmpeg writes (about 4 bytes per frame without B-frames)."""
    samples = max(seconds, 0.0) + 10.0
    frames = samples * max(fps, 30.0) + (samples * audio_rate / 1024 if audio_rate else 0.0)
    return int(frames * MOOV_BYTES_PER_FRAME) + MOOV_SLACK


class _MoovTooLarge(Exception):
    """The index did not fit in the space reserved for it at the front of the MP4."""


def remux(originals: Iterable[Original], start: datetime, end: datetime, out_path: Path,
          audio: bool = True) -> VideoResult | None:
    """Copy the video of ``originals`` (consecutive files, oldest first) between ``start`` and
    ``end`` (recorder wall clock) into ``out_path`` (MP4). ``None`` when no frame falls inside.
    ``originals`` may be a lazy iterator that yields each file once it is downloaded. With
    ``audio``, the first audio stream is transcoded to AAC (the one thing re-encoded: G.711 has no
    place in MP4); without it, or when it cannot be decoded, it is left out with a note.

    The MP4's index (``moov``) goes in front of the media, so a phone plays it while reading:
    written once into space reserved for it (:func:`moov_reserve`), instead of FFmpeg's
    ``+faststart``, which moves it there by rewriting the whole file a second time (gigabytes,
    on the USB disk an officer exports to). Should the index outgrow the space, the files are
    remuxed again with ``+faststart``."""
    taken: list[Original] = []

    def taking() -> Iterable[Original]:
        for original in originals:
            taken.append(original)
            yield original

    try:
        return _remux(taking(), start, end, out_path, audio, reserve=True)
    except _MoovTooLarge as exc:
        log.warning("%s: the MP4 index outgrew the space reserved for it (%s); remuxing again with faststart",
                    out_path.name, exc)
        return _remux(taken, start, end, out_path, audio, reserve=False)


def _remux(originals: Iterable[Original], start: datetime, end: datetime, out_path: Path, audio: bool, *,
           reserve: bool) -> VideoResult | None:
    out: av.container.OutputContainer | None = None
    aac: _AacTrack | None = None
    audio_in: Any = None
    ostream: Any = None
    origin: datetime | None = None
    result: VideoResult | None = None
    pending: list[tuple[av.Packet, datetime, datetime]] = []
    pending_audio: list[tuple[av.Packet, datetime]] = []
    notes: list[str] = []
    started = False
    done = False
    last_wall: datetime | None = None
    last_dts: datetime | None = None
    durations: list[float] = []
    seen: dict[str, dict[str, Any]] = {}

    def emit(packet: av.Packet, wall: datetime, dwall: datetime, template: Any) -> None:
        nonlocal out, ostream, origin, result, last_wall, last_dts, aac
        if last_dts is not None and dwall <= last_dts:
            return  # files that overlap (a recorder listing one moment twice): keep the first copy
        last_dts = dwall
        if out is None:
            if reserve:
                rate = (audio_in.codec_context.sample_rate or 8000) if audio_in is not None else None
                options = {"moov_size": str(moov_reserve((end - dwall).total_seconds(),
                                                         float(template.average_rate or 0), rate))}
            else:
                options = {"movflags": "+faststart"}
            out = av.open(str(out_path), "w", format="mp4", options=options)
            ostream = out.add_stream_from_template(template)
            ostream.time_base = OUT_TIME_BASE
            origin = dwall
            if audio_in is not None:
                try:
                    aac = _AacTrack(out, audio_in.codec_context.sample_rate or 8000, audio_in.codec_context.name)
                except (av.FFmpegError, ValueError) as exc:
                    notes.append(f"audio ({audio_in.codec_context.name}) could not be encoded to AAC ({exc}); "
                                 "it is kept in original/")
            cc = template.codec_context
            result = VideoResult(out_path, wall, wall, 0.0, 0, cc.name, cc.width, cc.height, notes)
        assert origin is not None and result is not None
        packet.stream = ostream
        packet.time_base = OUT_TIME_BASE
        packet.pts = round((wall - origin).total_seconds() * 90_000)
        packet.dts = round((dwall - origin).total_seconds() * 90_000)
        out.mux(packet)
        result.frames += 1
        if wall > result.last:
            result.last = wall
        if wall < result.first:
            result.first = wall
        if last_wall is not None and wall > last_wall:
            durations.append((wall - last_wall).total_seconds())
        last_wall = wall

    def on_audio(packet: av.Packet, first_video_pts: int, video_tb: float, file_start: datetime) -> None:
        """An audio packet: into the AAC track, or held with the GOP that will open the MP4."""
        # float seconds, not Fractions: per packet, exact to far below a microsecond
        if packet.pts is None:  # an audio packet without a time cannot be placed
            return
        rel_s = packet.pts * audio_tb - first_video_pts * video_tb
        if started and aac is not None and origin is not None and out is not None:
            at = (file_start - origin).total_seconds() + rel_s
            if 0 <= at < (end - origin).total_seconds():
                aac.add(out, packet, at)
        elif not started and pending:
            pending_audio.append((packet, file_start + timedelta(seconds=rel_s)))

    try:
        for original in originals:
            if done:
                break
            container, f = open_input(original.path, original.segment.container)
            try:
                if not container.streams.video:
                    notes.append(f"{original.path.name}: no video stream")
                    seen[str(original.path)] = {"codec": None, "width": None, "height": None}
                    continue
                vs = container.streams.video[0]
                seen[str(original.path)] = {"codec": vs.codec_context.name, "width": vs.codec_context.width or None,
                                            "height": vs.codec_context.height or None}
                audio_in = container.streams.audio[0] if audio and container.streams.audio else None
                for a in container.streams.audio:
                    note = (f"audio ({a.codec_context.name}) transcoded to AAC in the MP4 (a copy cannot carry "
                            "it); the original audio is in original/" if audio_in is not None else
                            f"audio ({a.codec_context.name}) is not in the MP4 (a copy cannot carry it); "
                            "it is kept in original/")
                    if note not in notes:
                        notes.append(note)
                assert vs.time_base is not None  # set by the demuxer for every stream it opens
                tb = float(vs.time_base)
                audio_tb = float(audio_in.time_base or vs.time_base) if audio_in is not None else 0.0
                early_audio: list[av.Packet] = []
                first_pts: int | None = None
                prev = 0
                unwrap = 0
                for packet in container.demux(vs, *([audio_in] if audio_in is not None else [])):
                    if packet.size == 0 or packet.pts is None:
                        continue
                    if packet.stream.type == "audio":
                        if first_pts is None:  # the video parser holds its first frame back a packet
                            early_audio.append(packet)
                        else:
                            on_audio(packet, first_pts, tb, original.segment.start)
                        continue
                    raw = packet.pts
                    if first_pts is None:
                        first_pts = prev = raw
                        for ap in early_audio:
                            on_audio(ap, first_pts, tb, original.segment.start)
                        early_audio = []
                    if raw - prev < -PTS_WRAP // 2:
                        unwrap += PTS_WRAP
                    prev = raw
                    rel = raw + unwrap - first_pts
                    wall = original.segment.start + timedelta(seconds=rel * tb)
                    draw = packet.dts if packet.dts is not None else raw
                    dwall = wall - timedelta(seconds=(raw - draw) * tb) if raw != draw else wall
                    if wall >= end:
                        done = True
                        if not started and pending:  # the window ends inside the GOP that holds its start
                            for p, w, d in pending:
                                emit(p, w, d, vs)
                        break
                    if not started:
                        if wall <= start:
                            if packet.is_keyframe:
                                pending = [(packet, wall, dwall)]
                                pending_audio = []
                            elif pending:
                                pending.append((packet, wall, dwall))
                            continue
                        if pending:
                            for p, w, d in pending:
                                emit(p, w, d, vs)
                            pending = []
                            started = True
                            for ap, awall in pending_audio:
                                if aac is not None and origin is not None and awall >= origin:
                                    aac.add(out, ap, (awall - origin).total_seconds())  # type: ignore[arg-type]
                            pending_audio = []
                        elif packet.is_keyframe:
                            started = True
                        else:
                            continue
                    emit(packet, wall, dwall, vs)
            finally:
                container.close()
                f.close()
    finally:
        if out is not None:
            if aac is not None:
                with contextlib.suppress(av.FFmpegError):
                    aac.close(out)
            try:
                out.close()
            except av.ArgumentError as exc:  # FFmpeg's answer when the reserved space is too small
                if reserve:
                    raise _MoovTooLarge(str(exc)) from None
                raise
    if result is not None:
        durations.sort()
        result.frame_duration = durations[len(durations) // 2] if durations else 0.0
        result.originals = seen
        h = hashlib.sha256()
        size = 0
        with out_path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
                size += len(block)
        result.mp4 = {"sha256": h.hexdigest(), "bytes": size, **video_info(out_path)}
    return result


def video_info(path: Path) -> dict[str, Any]:
    """Duration, codec and size of an MP4 as a player sees it."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        duration = float(c.duration / 1_000_000) if c.duration else None
        return {"duration_s": round(duration, 3) if duration is not None else None,
                "codec": vs.codec_context.name, "width": vs.codec_context.width, "height": vs.codec_context.height}


# ---------------------------------------------------------------------- fed while downloading
def _original_json(o: Original) -> str:
    import json

    return json.dumps({"path": str(o.path), "start": o.segment.start.isoformat(), "end": o.segment.end.isoformat(),
                       "container": o.segment.container})


def _original_from(o: dict[str, Any]) -> Original:
    return Original(Path(o["path"]), _Span(datetime.fromisoformat(o["start"]), datetime.fromisoformat(o["end"]),
                                           o["container"]))


def _main() -> None:
    """``python -m hub.export.remux``: the first stdin line is the job (window, output), each
    further line a downloaded file as it completes; the result goes to stdout when stdin closes."""
    import json
    import os
    import sys

    # below the hub in the CPU queue: on a small box the remux would otherwise take the core a
    # light command or a power-cut event is waiting for (the export is the one that can wait)
    with contextlib.suppress(OSError):
        os.nice(max(0, REMUX_NICE - os.nice(0)))  # an export child is already niced
    job = json.loads(sys.stdin.readline())
    originals = (_original_from(json.loads(line)) for line in sys.stdin if line.strip())
    r = remux(originals, datetime.fromisoformat(job["start"]), datetime.fromisoformat(job["end"]), Path(job["out"]),
              job.get("audio", True))
    for _ in sys.stdin:  # the files after the window's end: read, not needed
        pass
    sys.stdout.write(json.dumps(None if r is None else {
        "path": str(r.path), "first": r.first.isoformat(), "last": r.last.isoformat(),
        "frame_duration": r.frame_duration, "frames": r.frames, "codec": r.codec, "width": r.width,
        "height": r.height, "notes": r.notes, "originals": r.originals, "mp4": r.mp4}))


class RemuxJob:
    """A remux that starts with the first downloaded file and takes the next ones as they
    complete, so remuxing overlaps downloading. ``process=True`` runs it in a child process
    (``python -m hub.export.remux``): a running hub's event loop then never waits for the GIL behind
    the per-packet Python work, which a thread holds for up to the 5 ms switch interval at a time.
    ``process=False`` runs it in a worker thread (the command line)."""

    def __init__(self, start: datetime, end: datetime, out_path: Path, *, process: bool, audio: bool = True) -> None:
        self.start, self.end, self.out_path, self.process, self.audio = start, end, out_path, process, audio
        self._queue: queue.Queue[Original | None] = queue.Queue()
        self._task: asyncio.Task[Any] | None = None
        self._proc: asyncio.subprocess.Process | None = None

    async def begin(self) -> None:
        if self.process:
            import json

            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.export.remux", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            assert self._proc.stdin is not None
            self._proc.stdin.write((json.dumps({"start": self.start.isoformat(), "end": self.end.isoformat(),
                                                "out": str(self.out_path), "audio": self.audio}) + "\n").encode())
            self._task = asyncio.get_running_loop().create_task(self._proc.communicate())
        else:
            self._task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(remux, iter(self._queue.get, None), self.start, self.end, self.out_path,
                                  self.audio))

    async def add(self, original: Original) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.write((_original_json(original) + "\n").encode())
            await self._proc.stdin.drain()
        else:
            self._queue.put(original)

    async def finish(self) -> VideoResult | None:
        assert self._task is not None
        if self._proc is None:
            self._queue.put(None)
            return await self._task
        import json

        assert self._proc.stdin is not None
        self._proc.stdin.close()
        out, err = await self._task
        if self._proc.returncode != 0:
            last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"remux failed: {last}")
        data = json.loads(out)
        if data is None:
            return None
        return VideoResult(Path(data["path"]), datetime.fromisoformat(data["first"]),
                           datetime.fromisoformat(data["last"]), data["frame_duration"], data["frames"],
                           data["codec"], data["width"], data["height"], data["notes"], data["originals"],
                           data["mp4"])

    async def abort(self) -> None:
        """Stop it (the export failed or was cancelled); the partial MP4 goes with the .part directory."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        if self._proc is None:
            self._queue.put(None)
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task


if __name__ == "__main__":
    _main()
