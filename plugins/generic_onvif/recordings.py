"""ONVIF Profile G for ``anninh export``: which recordings a device holds and where their data
is (the Recording Search Service, through onvif-zeep-async's ``search.wsdl``), and the replay
URI of one (``replay.wsdl``). The download itself is in :mod:`.replay`.

* ``FindRecordings`` (every recording), then ``GetRecordingSearchResults`` until the
  ``SearchState`` is ``Completed`` (a device hands them out a page at a time), then ``EndSearch``.
  Channel *n* is the *n*-th recording in the device's order (a camera has one; an NVR one per
  channel).
* ``FindEvents`` over the window with ``IncludeStartState``, then ``GetEventSearchResults`` the
  same way: the ``RecordingHistory/Track/State`` events (``IsDataPresent`` true/false) of the
  recording's video track say where there is footage and where there is none (gaps). A device
  without ``FindEvents`` gets the recording's own span (``EarliestRecording`` ..
  ``LatestRecording``): gaps inside it are then not known.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.api import AuthError, DeviceError

from .events import _zeep_items, normalise_topic, parse_bool, simple_items
from .soapxml import child

log = logging.getLogger(__name__)

MAX_RESULTS = 50
"""Results asked for per GetRecordingSearchResults / GetEventSearchResults."""
MAX_PAGES = 200
"""Pages read before the search is given up (a device that never says Completed)."""
TRACK_STATE = "RecordingHistory/Track/State"
KEEP_ALIVE = timedelta(seconds=30)


@dataclass(frozen=True)
class RecordingInfo:
    token: str
    source: str | None
    earliest: datetime | None  # UTC, aware
    latest: datetime | None
    video_tracks: tuple[str, ...]


def _aware(t: Any) -> datetime | None:
    if not isinstance(t, datetime):
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


async def _paged(client: Any, service: Any, what: str, get: str, token: str) -> list[Any]:
    """Results of a search session until ``Completed``; the session is ended in any case."""
    out: list[Any] = []
    try:
        for _ in range(MAX_PAGES):
            answer = await client.call(get, lambda: getattr(service, get)(
                {"SearchToken": token, "MaxResults": MAX_RESULTS, "WaitTime": timedelta(seconds=2)}))
            results = getattr(answer, "ResultList", answer)
            items = getattr(results, "RecordingInformation" if get == "GetRecordingSearchResults" else "Result", None)
            out.extend(items or [])
            if str(getattr(results, "SearchState", "Completed")) == "Completed":
                return out
        raise DeviceError(f"{client.where}: {what}: the device never finished the search")
    finally:
        with contextlib.suppress(DeviceError, asyncio.TimeoutError):
            await client.call("EndSearch", lambda: service.EndSearch({"SearchToken": token}))


async def find_recordings(client: Any) -> list[RecordingInfo]:
    service = await client.call("search service", client.cam.create_search_service)
    token = await client.call("FindRecordings", lambda: service.FindRecordings(
        {"Scope": {}, "KeepAliveTime": KEEP_ALIVE}))
    token = getattr(token, "SearchToken", token)
    if not isinstance(token, str) or not token:
        raise DeviceError(f"{client.where}: FindRecordings answered no search token")
    out = []
    for info in await _paged(client, service, "recording search", "GetRecordingSearchResults", token):
        rec = getattr(info, "RecordingToken", None)
        if not isinstance(rec, str) or not rec:
            continue
        tracks = tuple(str(t.TrackToken) for t in (getattr(info, "Track", None) or [])
                       if str(getattr(t, "TrackType", "")) == "Video" and getattr(t, "TrackToken", None))
        out.append(RecordingInfo(rec, getattr(getattr(info, "Source", None), "SourceId", None),
                                 _aware(getattr(info, "EarliestRecording", None)),
                                 _aware(getattr(info, "LatestRecording", None)), tracks))
    return out


def _event_items(message: Any) -> tuple[str, list[tuple[str, str]]]:
    """(topic, data items) of a zeep NotificationMessageHolderType (the ``tt:Message`` parsed by
    the schema, or a raw lxml element when zeep could not apply it)."""
    topic_el = getattr(message, "Topic", None)
    topic = getattr(topic_el, "_value_1", topic_el)
    body = getattr(getattr(message, "Message", None), "_value_1", None)
    if isinstance(getattr(body, "tag", None), str):
        data = simple_items(child(body, "Data"))
    else:
        data = _zeep_items(getattr(body, "Data", None))
    return normalise_topic(topic), data


async def data_spans(client: Any, rec: RecordingInfo, start: datetime,
                     end: datetime) -> list[tuple[datetime, datetime]] | None:
    """Where the recording's video track has data between ``start`` and ``end`` (aware), from
    the track state events; ``None`` when the device cannot search events."""
    service = await client.call("search service", client.cam.create_search_service)
    try:
        token = await client.call("FindEvents", lambda: service.FindEvents(
            {"StartPoint": start, "EndPoint": end, "Scope": {"IncludedRecordings": [rec.token]},
             "SearchFilter": {}, "IncludeStartState": True, "KeepAliveTime": KEEP_ALIVE}))
    except AuthError:
        raise
    except DeviceError as exc:
        log.info("%s: no event search (%s); using the recording's whole span", client.where, exc)
        return None
    token = getattr(token, "SearchToken", token)
    if not isinstance(token, str) or not token:
        return None
    try:
        results = await _paged(client, service, "event search", "GetEventSearchResults", token)
    except AuthError:
        raise
    except DeviceError as exc:
        log.info("%s: event search failed (%s); using the recording's whole span", client.where, exc)
        return None
    changes: list[tuple[datetime, bool]] = []
    for result in results:
        if getattr(result, "RecordingToken", rec.token) != rec.token:
            continue
        track = getattr(result, "TrackToken", None)
        if rec.video_tracks and track and track not in rec.video_tracks:
            continue
        when = _aware(getattr(result, "Time", None))
        topic, data = _event_items(getattr(result, "Event", None))
        if when is None or topic != TRACK_STATE:
            continue
        present = next((parse_bool(v) for k, v in data if k == "IsDataPresent"), None)
        if present is not None:
            changes.append((when, present))
    changes.sort(key=lambda c: c[0])
    spans: list[tuple[datetime, datetime]] = []
    opened: datetime | None = None
    for when, present in changes:
        if present and opened is None:
            opened = max(when, start)
        elif not present and opened is not None:
            if min(when, end) > opened:
                spans.append((opened, min(when, end)))
            opened = None
    if opened is not None and end > opened:
        spans.append((opened, end))
    return spans


async def replay_uri(client: Any, token: str) -> str:
    service = await client.call("replay service", client.cam.create_replay_service)
    answer = await client.call("GetReplayUri", lambda: service.GetReplayUri(
        {"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}, "RecordingToken": token}))
    uri = getattr(answer, "Uri", answer)
    if not isinstance(uri, str) or "://" not in uri:
        raise DeviceError(f"{client.where}: GetReplayUri answered no usable URI")
    return "".join(uri.split())
