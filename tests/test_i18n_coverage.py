"""Every text a person reads goes through hub.i18n, and the hub really speaks the catalogs' language.

* a static scan (AST) of hub/ and plugins/: a string literal with words handed to ``print``, a rich
  console/Panel/Table/Text/Rule, ``SystemExit``/``sys.exit``/``parser.error``, or a ``message=`` /
  ``reason=`` keyword must be wrapped in ``_``/``tr``/``ngettext`` (or be a ``N_`` template), unless it is
  in :data:`ALLOWED` with the reason;
* at run time: the demo's whole scripted evening, in Vietnamese and in English, with an MQTT client
  reading every event ``message`` and light ``reason`` on the bus: each is the catalog's sentence in
  that language, never the other one.
"""
from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.api.contract import EVENTS, OFFLINE_CAUSES, event_message
from hub.broker import free_port
from hub.demo import Demo
from hub.i18n import use_language
from tests.support.mqtt import Recorder

ROOT = Path(__file__).resolve().parent.parent
TRANSLATORS = {"_", "tr", "ngettext", "gettext_", "N_"}
WORDS = re.compile(r"[A-Za-z]{3,}")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")

#: (path, start of the literal) -> why it stays as it is
ALLOWED: dict[tuple[str, str], str] = {
    ("hub/demo.py", "×"): "the demo clock's speed and the broker's address: numbers and an address",
    ("plugins/generic_onvif/driver.py", "timeout"): "reason=\"timeout\" is a machine code (ONVIF events before API v1)",
}
#: files whose output is not for the hub's users, with the reason
ALLOWED_FILES: dict[str, str] = {
    "hub/camera/rtsp_server.py": "a GStreamer child process: its READY line and errors are read by its parent "
                                 "and end in English logs",
    **dict.fromkeys(("plugins/dahua/simulator.py", "plugins/hikvision/simulator.py",
                     "plugins/generic_onvif/simulator.py", "plugins/lighting/simulator.py",
                     "plugins/ups_modbus/simulator.py"),
                    "a device simulator's console (a developer's and installer's test tool, its lines are "
                    "read by scripts and its stdin commands are English words): English, as the logs"),
}

RICH = {"Panel", "Table", "Text", "Rule", "Layout"}
RICH_METHODS = {"add_column", "add_row", "assemble", "append"}
EXITS = {"SystemExit", "exit", "error"}


def _literal_text(node: ast.AST) -> str | None:
    """The words a person would read in ``node`` when it is a literal (a str, an f-string, a
    concatenation of them); ``None`` when it is not literal text (a variable, a translation call)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = [_literal_text(node.left), _literal_text(node.right)]
        return "".join(p for p in parts if p) or None
    if isinstance(node, ast.Tuple) and node.elts:  # rich's (text, style) pairs
        return _literal_text(node.elts[0])
    return None


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _people_args(call: ast.Call) -> Iterator[ast.AST]:
    """The arguments of ``call`` that a person reads."""
    name = _name(call.func)
    owner = call.func.value if isinstance(call.func, ast.Attribute) else None
    owner_name = _name(owner) if owner is not None else ""
    if name == "print" and not isinstance(call.func, ast.Attribute):
        yield from call.args
    elif name in ("print", "log") and "console" in owner_name.lower():
        yield from call.args
    elif name in RICH:
        yield from call.args
        yield from (k.value for k in call.keywords if k.arg in ("title", "subtitle"))
    elif name in RICH_METHODS and owner_name in ("table", "Text", "text"):
        yield from call.args
    elif name in EXITS and (name == "SystemExit" or owner_name in ("sys", "parser", "p")):
        yield from call.args
    yield from (k.value for k in call.keywords if k.arg in ("message", "reason"))


def untranslated(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _name(node.func) in TRANSLATORS:
            continue
        for arg in _people_args(node):
            text = _literal_text(arg)
            if text is not None and WORDS.search(PLACEHOLDER.sub("", text)):
                found.append((node.lineno, text))
    return found


def _sources() -> Iterator[Path]:
    for top in ("hub", "plugins"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if not path.name.startswith("test_"):
                yield path


def test_every_text_for_people_is_marked_for_translation() -> None:
    problems = []
    for path in _sources():
        rel = str(path.relative_to(ROOT))
        if rel in ALLOWED_FILES:
            continue
        for line, text in untranslated(path):
            if not any(rel == p and text.startswith(start) for p, start in ALLOWED):
                problems.append(f"{rel}:{line}: {text[:70]!r}")
    assert not problems, "wrap these in _()/tr() (hub.i18n) or allow them with a reason:\n" + "\n".join(problems)


def test_the_scan_finds_what_it_must(tmp_path: Path) -> None:
    """The scanner itself: the shapes it must catch, and the translated ones it must let through."""
    src = ('print("power lost at the site")\nprint(f"lost at {site}, sorry")\nraise SystemExit("bad config")\n'
           'ctx.event("x", message="hello there")\nconsole.print(Panel("Try it", title="Commands"))\n'
           'print(_("power lost"))\nprint(tr("lost at {site}", site=s))\nprint(name)\nprint(f"[{stamp}] ")\n'
           'table.add_column("Power")\n')
    path = tmp_path / "sample.py"
    path.write_text(src)
    found = [text for _, text in untranslated(path)]
    assert found.count("Try it") == 1 and "Commands" in found
    assert {"power lost at the site", "lost at , sorry", "bad config", "hello there", "Power"} <= set(found)
    assert not {"power lost", "lost at {site}", "[] "} & set(found)


# ---------------------------------------------------------------- templates render per value

def test_flag_and_offline_messages_follow_their_code() -> None:
    with use_language("vi"):
        assert event_message("motion", {"device": "cam-1", "active": True}) == "Phát hiện chuyển động tại cam-1"
        assert event_message("motion", {"device": "cam-1", "active": False}) == "Hết chuyển động tại cam-1"
        assert event_message("power_lost", {"site": "kp3-tam"}) == "Mất điện lưới tại kp3-tam"
        said = {cause: event_message("camera_offline", {"device": "cam-1", "site": "kp3", "cause": cause})
                for cause in OFFLINE_CAUSES}
        assert said["site_power_lost"] == "Camera cam-1 ngoại tuyến do mất điện tại kp3"
        assert len(set(said.values())) == len(OFFLINE_CAUSES)  # one sentence per cause
    with use_language("en"):
        assert event_message("camera_offline", {"device": "c", "cause": "camera_down"}) == \
            "Camera c is offline: the camera alone is down"
    for type, spec in EVENTS.items():  # every event type has its own sentence, not its meaning
        assert spec.message and spec.message != spec.meaning, type


# ---------------------------------------------------------------- what the hub says, on MQTT

def _patterns(lang: str) -> list[re.Pattern[str]]:
    """Every sentence of the catalogs in ``lang`` (msgid for English) as a pattern, placeholders as .+
    (the texts the two languages write alike are left out: they tell no language apart)"""
    from babel.messages.pofile import read_po

    out = []
    for po in sorted((ROOT / "hub" / "i18n" / "locale" / "vi" / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as f:
            catalog = read_po(f)
        for m in catalog:
            text = m.id if lang == "en" else m.string
            if m.id and isinstance(text, str) and text and m.string != m.id:
                parts = PLACEHOLDER.split(text)
                out.append(re.compile(".+".join(re.escape(p) for p in parts), re.S))
    return out


async def _evening(lang: str, tmp_path: Path) -> tuple[list[dict], list[dict]]:
    """Play the demo's evening at 1200× in ``lang``; (every event, every light state) seen on MQTT."""
    demo = Demo(1200.0, free_port(), tmp_path, lang=lang)
    runner = asyncio.create_task(demo.run(0, view=False))
    try:
        for _ in range(400):
            if demo.running is not None and demo.officer is not None:
                break
            await asyncio.sleep(0.05)
        recorder = Recorder(demo.port, ("anninh/bridge/event", "anninh/+"))
        try:
            await asyncio.wait_for(demo.done.wait(), 60)
            await asyncio.sleep(1.0)
        finally:
            recorder.client.loop_stop()
            recorder.client.disconnect()
    finally:
        demo.stop.set()
        await asyncio.wait_for(runner, 30)
    events = [m.json() for m in recorder.messages if m.topic == "anninh/bridge/event"]
    lights = [m.json() for m in recorder.messages if m.topic.startswith("anninh/light-")
              and m.topic.count("/") == 1 and m.payload]
    return events, lights


@pytest.mark.parametrize("lang, other", [("vi", "en"), ("en", "vi")])
async def test_the_evening_speaks_the_hubs_language(lang: str, other: str, tmp_path: Path) -> None:
    events, lights = await _evening(lang, tmp_path)
    types = {e["type"] for e in events}
    assert {"power_lost", "camera_offline", "command", "on_battery"} <= types, types
    mine, theirs = _patterns(lang), _patterns(other)
    for event in events:
        fields = {k: v for k, v in event.items() if k not in ("type", "time", "message")}
        with use_language(lang):
            want = event_message(event["type"], fields)
        with use_language(other):
            wrong = event_message(event["type"], fields)
        said = event["message"]
        assert want != wrong, event  # the two catalogs differ for every event the evening brings
        assert said != wrong, event
        if said != want:  # an emitter that builds its own sentence (tickets: the fault and deadline spoken)
            assert any(p.fullmatch(said) for p in mine), (lang, event)
            assert not any(p.fullmatch(said) for p in theirs), (other, event)
    reasons = {s["reason"] for s in lights if s.get("reason")}
    codes = {s["reason_code"] for s in lights if s.get("reason_code")}
    assert {"night_rule_dark", "manual_officer", "released"} <= codes, codes
    for reason in reasons:
        assert any(p.fullmatch(reason) for p in mine), (lang, reason)
        assert not any(p.fullmatch(reason) for p in theirs), (other, reason)
    if lang == "vi":
        assert any("điểm đen" in r for r in reasons), reasons
        assert json.dumps(events, ensure_ascii=False).count("Mất điện lưới tại kp3-tam") == 1


def test_reason_codes_are_documented_and_the_night_rule_uses_them() -> None:
    from hub.api.lights import REASON_CODES
    from plugins.default_rules.night_light import REASONS

    doc = (ROOT / "docs" / "i18n.md").read_text(encoding="utf-8")
    assert all(f"| `{code}` |" in doc for code in REASON_CODES), [c for c in REASON_CODES if f"`{c}`" not in doc]
    assert {key.removesuffix("_brightness") for key in REASONS} <= set(REASON_CODES)


def test_check_speaks_vietnamese_by_default_and_keeps_file_line_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hub.cli import main

    cfg = tmp_path / "config.yaml"
    cfg.write_text("hub: {data_dir: ./data}\nsites: [{id: kp1}]\ndevices:\n"
                   "  - {id: ups-1, platform: ups_modbus, site: kp1, host: 127.0.0.1, port: 70000}\n"
                   "  - {id: ups-2, platform: ups_modbus, site: kp9, host: 'http://x'}\n")
    cfg.chmod(0o600)
    with pytest.raises(SystemExit):
        main(["check", "-c", str(cfg)])
    err = capsys.readouterr().err
    assert f"lỗi: {cfg}:4: devices[0].port: Giá trị phải nhỏ hơn hoặc bằng 65535 (nhận được 70000)" in err, err
    assert f"lỗi: {cfg}:5: devices[1].host: 'http://x': chỉ ghi địa chỉ, không kèm giao thức" in err, err
    assert "Input should" not in err and "error:" not in err
    cfg.write_text(cfg.read_text().replace("hub: {data_dir: ./data}", "hub: {data_dir: ./data, language: en}"))
    with pytest.raises(SystemExit):
        main(["check", "-c", str(cfg)])
    err = capsys.readouterr().err
    assert f"error: {cfg}:4: devices[0].port: Input should be less than or equal to 65535 (got 70000)" in err, err
    with pytest.raises(SystemExit):  # --lang wins over the config's hub.language
        main(["--lang", "vi", "check", "-c", str(cfg)])
    assert f"lỗi: {cfg}:4: devices[0].port: Giá trị phải nhỏ hơn" in capsys.readouterr().err
    cfg.write_text(cfg.read_text().replace("language: en", "language: fr"))
    with pytest.raises(SystemExit):
        main(["check", "-c", str(cfg)])
    assert f"{cfg}:1: hub.language: unsupported language 'fr'" in capsys.readouterr().err
