"""The incremental multipart parser and the XML helpers: real captures, every vendor quirk, and
garbage (hypothesis) that must never raise, hang or grow memory without bound."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.api import DeviceError
from hub.camera import xml as X
from hub.camera.multipart import MultipartParser, Part, boundary_from_content_type

FIX = Path(__file__).parent / "fixtures"


def feed_in_chunks(parser: MultipartParser, data: bytes, size: int) -> list[Part]:
    out: list[Part] = []
    for i in range(0, len(data), size):
        out += parser.feed(data[i:i + size])
    return out


@pytest.mark.parametrize("size", [1, 2, 7, 64, 100000])
def test_hikvision_camera_capture_crlf_any_split(size: int) -> None:
    data = (FIX / "hikvision_DS-2CD2185FWD-I_alertStream_camera_crlf.bin").read_bytes()
    parts = feed_in_chunks(MultipartParser(b"boundary"), data, size)
    # three parts, each complete at its root's closing tag (no closing boundary ever comes)
    assert len(parts) == 3
    roots = [X.parse(p.body) for p in parts]
    assert [X.text(r, "eventType") for r in roots] == ["videoloss", "VMD", "VMD"]
    assert [X.text(r, "eventState") for r in roots] == ["inactive", "active", "inactive"]
    assert X.deep_text(roots[0], "serialNumber") == "DS-2CD2185FWD-I20180101AAWR111111111"


def test_hikvision_nvr_capture_lf_and_empty_channel_elements() -> None:
    data = (FIX / "hikvision_NVR_alertStream_lf_dynChannelID.bin").read_bytes()
    parts = MultipartParser(b"boundary").feed(data)
    assert len(parts) == 4
    hb = X.parse(parts[0].body)
    assert X.text(hb, "dynChannelID") is None and X.text(hb, "protocolType") == "HTTP"
    assert [X.text(X.parse(p.body), "activePostCount") for p in parts[1:]] == ["1", "2", "3"]


def test_header_boundary_differs_from_body_boundary() -> None:
    # old NVRs: header says one boundary, the body uses a constant --boundary
    data = (FIX / "hikvision_NVR_alertStream_lf_dynChannelID.bin").read_bytes()
    parser = MultipartParser(boundary_from_content_type("multipart/mixed; boundary=MIME_boundary_hik"))
    assert len(parser.feed(data)) == 4
    # and an unknown constant is learnt from the first delimiter line
    other = data.replace(b"--boundary", b"--frontier42")
    assert len(MultipartParser(b"something-else").feed(other)) == 4


def test_duplicated_boundaries_and_several_parts_per_read() -> None:
    xml = b"<EventNotificationAlert><eventType>VMD</eventType></EventNotificationAlert>"
    part = b"--boundary\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n" % len(xml) + xml + b"\r\n"
    data = part + b"--boundary\r\n--boundary\r\n" + part + part + b"--boundary\r\n"
    parts = MultipartParser(b"boundary").feed(data)
    assert len(parts) == 3
    assert all(p.body == xml for p in parts)


@pytest.mark.parametrize("declared", [5, 10000, None])
def test_wrong_or_missing_content_length_on_xml(declared: int | None) -> None:
    xml = b"<EventNotificationAlert>\r\n<eventType>VMD</eventType>\r\n</EventNotificationAlert>"
    cl = b"" if declared is None else b"Content-Length: %d\r\n" % declared
    data = b"--boundary\r\nContent-Type: application/xml\r\n" + cl + b"\r\n" + xml + b"\r\n"
    parts = MultipartParser(b"boundary").feed(data)
    assert [p.body for p in parts] == [xml]  # complete without waiting for another boundary


def test_one_line_xml_and_self_closing_root() -> None:
    data = (b"--boundary\r\nContent-Type: application/xml\r\n\r\n<?xml version='1.0'?><A><b>1</b></A>\r\n"
            b"--boundary\r\nContent-Type: application/xml\r\n\r\n<hddList size=\"8\"/>\r\n")
    parts = MultipartParser(b"boundary").feed(data)
    assert [p.body[-4:] for p in parts] == [b"</A>", b'8"/>']


def test_dahua_captures() -> None:
    parts = MultipartParser(b"myboundary").feed((FIX / "dahua_IPC_rroller166_eventStream_lf.bin").read_bytes())
    assert [p.body.split(b";")[0] for p in parts] == [b"Heartbeat", b"Code=VideoMotionInfo", b"Code=VideoMotion"]
    assert parts[2].body.endswith(b"}")
    doc = (FIX / "dahua_httpapi_doc_eventStream_crlf.bin").read_bytes()
    parts = feed_in_chunks(MultipartParser(b"myboundary"), doc, 3)
    assert [p.body for p in parts] == [b"Code=VideoMotion;action=Start;index=0", b"Heartbeat"]


def test_dahua_stray_status_line_is_skipped() -> None:
    data = (b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length:9\r\n\r\nHeartbeat\r\n\r\n"
            b"HTTP/1.1 200 OK\r\n"
            b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length:37\r\n\r\n"
            b"Code=VideoLoss;action=Start;index=1\r\n\r\n")
    parts = MultipartParser(b"myboundary").feed(data)
    assert [p.body for p in parts] == [b"Heartbeat", b"Code=VideoLoss;action=Start;index=1"]


def test_jpeg_part_is_taken_by_exact_length() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\n--boundary\n" + b"\xff\xd9"  # boundary-like bytes inside
    data = (b"--boundary\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg +
            b"\r\n--boundary\r\nContent-Type: application/xml\r\n\r\n<a/>\r\n")
    parts = feed_in_chunks(MultipartParser(b"boundary"), data, 50)
    assert parts[0].body == jpeg and parts[0].content_type == "image/jpeg"
    assert parts[1].body == b"<a/>"


def test_part_size_limit_drops_and_resynchronises() -> None:
    parser = MultipartParser(b"boundary", max_part=1 << 20)
    parser.feed(b"--boundary\r\nContent-Type: text/plain\r\n\r\n")
    line = b"x" * 1000 + b"\n"
    peak = 0
    for _ in range(3000):  # 3 MB without an end
        parser.feed(line)
        peak = max(peak, len(parser._buf))
    assert peak <= (1 << 20) + 2000
    assert parser.dropped == 1
    parts = parser.feed(b"--boundary\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nHeartbeat\r\n")
    assert [p.body for p in parts] == [b"Heartbeat"]


def test_endless_line_without_newline_is_bounded() -> None:
    parser = MultipartParser(b"boundary")
    for _ in range(200):
        parser.feed(b"y" * 65536)
    assert len(parser._buf) < 70000
    assert parser.feed(b"\n--boundary\nContent-Type: text/plain\n\nCode=A;action=Start;index=0\n\n")[0].body \
        == b"Code=A;action=Start;index=0"


def test_huge_binary_content_length_is_refused() -> None:
    parser = MultipartParser(b"boundary", max_part=1000)
    parts = parser.feed(b"--boundary\r\nContent-Type: image/jpeg\r\nContent-Length: 99999999\r\n\r\n" + b"\xff" * 5000 +
                        b"\r\n--boundary\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nHeartbeat\r\n")
    assert parser.dropped == 1
    assert [p.body for p in parts] == [b"Heartbeat"]


def test_boundary_from_content_type() -> None:
    assert boundary_from_content_type("multipart/mixed;boundary=boundary") == b"boundary"
    assert boundary_from_content_type('multipart/mixed; boundary="--hik"') == b"hik"
    assert boundary_from_content_type("multipart/x-mixed-replace; boundary=myboundary") == b"myboundary"
    assert boundary_from_content_type("text/plain") is None
    assert boundary_from_content_type(None) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_fuzz_random_bytes_never_raise(chunks: list[bytes]) -> None:
    parser = MultipartParser(b"boundary", max_part=4096)
    for c in chunks:
        for p in parser.feed(c):
            assert len(p.body) <= 4096 + 300
    assert len(parser._buf) <= 4096 + 300 * 30


PIECES = [b"--boundary", b"--myboundary", b"\r\n", b"\n", b"Content-Type: application/xml", b"Content-Length: 12",
          b"Content-Length:99999", b"<EventNotificationAlert>", b"</EventNotificationAlert>", b"<a/>", b"Code=",
          b"HTTP/1.1 200 OK", b"Content-Type: image/jpeg", b"\xff\xd8", b"<", b"--", b"", b"x" * 50]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60), st.integers(1, 40))
def test_fuzz_structured_garbage_never_raises(pieces: list[bytes], size: int) -> None:
    data = b"".join(pieces)
    parser = MultipartParser(b"boundary", max_part=2048)
    for p in feed_in_chunks(parser, data, size):
        try:
            X.parse(p.body)
        except DeviceError:
            pass


# ---------------------------------------------------------------------- XML by local name
@pytest.mark.parametrize("ns", ["", ' xmlns="http://www.hikvision.com/ver20/XMLSchema"',
                                ' xmlns="http://www.hikvision.com/ver10/XMLSchema"',
                                ' xmlns="http://www.isapi.org/ver20/XMLSchema"',
                                ' xmlns="http://www.std-cgi.com/ver20/XMLSchema"', ' xmlns="urn:psialliance-org"',
                                ' xmlns:h="urn:x"'])
def test_xml_any_namespace(ns: str) -> None:
    doc = f'<storage version="2.0"{ns}><hddList><hdd><id>1</id><status>ok</status></hdd></hddList></storage>'
    root = X.parse(doc.encode())
    assert root.tag == "storage"
    assert X.text(root, "hddList", "hdd", "status") == "ok"


def test_xml_nested_namespace_redeclared_midway() -> None:
    doc = (b'<storage xmlns="http://www.isapi.org/ver20/XMLSchema"><hddList xmlns="http://www.hikvision.com/ver10/'
           b'XMLSchema" size="8"><hdd><id>1</id></hdd></hddList></storage>')
    assert X.text(X.parse(doc), "hddList", "hdd", "id") == "1"


def test_xml_real_captures_parse() -> None:
    info = X.parse((FIX / "hikvision_DS-2CD2386G2-IU_V5.7.18_deviceInfo.xml").read_bytes())
    assert X.text(info, "model") == "DS-2CD2386G2-IU" and X.text(info, "firmwareVersion") == "V5.7.18"
    status = X.parse((FIX / "hikvision_DS-7608NI-K2_status_nonamespace.xml").read_bytes())
    device_time = X.parse_datetime(X.text(status, "currentDeviceTime"))
    assert device_time is not None and device_time.utcoffset() == timedelta(hours=3)
    assert X.deep_text(status, "memoryUsage") == "244.175781"


def test_xml_garbage_and_attacks_raise_device_error() -> None:
    for bad in (b"", b"<a>", b"not xml", b"\x00\xff\xfe", b"<a></b>",
                b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', b"<a>" * 100000):
        with pytest.raises(DeviceError):
            X.parse(bad)


def test_xml_bare_ampersand_is_tolerated() -> None:
    assert X.text(X.parse(b"<a><b>IO&&DS-2CD</b></a>"), "b") == "IO&&DS-2CD"


def test_malformed_datetime_is_none() -> None:
    assert X.parse_datetime("2024-01-22T11:47:0500:00") is None
    naive = X.parse_datetime("2025-04-06T14:16:04")
    assert naive is not None and naive.tzinfo is None
    utc = X.parse_datetime("2021-07-02T14:25:36Z")
    assert utc is not None and utc.utcoffset() == timedelta(0)
