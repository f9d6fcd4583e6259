#!/usr/bin/env bash
# Everything the tests need on a fresh Debian/Ubuntu machine, then the whole suite.
#   bash scripts/test.sh            (as root, or with sudo available)
#   bash scripts/test.sh tests/test_demo.py -x     (arguments go to pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need=""
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || need="$need mosquitto mosquitto-clients"
# mosquitto_pub paces the command-flood test (tests/test_fuzz_command.py, bench/bench_command_flood.py)
command -v mosquitto_pub >/dev/null 2>&1 || need="$need mosquitto-clients"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v ffmpeg >/dev/null 2>&1 || need="$need ffmpeg"
command -v upsc >/dev/null 2>&1 || need="$need nut-client"   # NUT's own client, a witness for the nut_ups simulator
# the web console's browser tests (tests/test_web_browser.py): Debian's browser and its WebDriver, never a download
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
command -v pdftotext >/dev/null 2>&1 || need="$need poppler-utils"   # the report test reads the PDF's text back
# GStreamer's RTSP server, driven by the system python3, serves the image-health tests' clips
# (hub/camera/rtsp_server.py): present only if the bindings load and every element of its pipeline exists
# (clockoverlay is in gstreamer1.0-x, x264enc in -ugly, h264parse in -bad, rtph264pay in -good)
gst_ok() {
  /usr/bin/python3 - <<'PY' 2>/dev/null
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: F401
Gst.init(None)
missing = [e for e in ("appsrc", "videoconvert", "clockoverlay", "x264enc", "h264parse", "rtph264pay")
           if Gst.ElementFactory.find(e) is None]
raise SystemExit(1 if missing else 0)
PY
}
gst_ok || need="$need python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav gstreamer1.0-x"
# Debian's and Ubuntu's own python3 refuses pip installs (PEP 668, "externally managed"): then
# the packages go into a venv beside the checkout, .venv
py=python3
if python3 -c 'import os, sys, sysconfig
sys.exit(sys.prefix != sys.base_prefix
         or not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
  py=.venv/bin/python
  [ -x "$py" ] || python3 -c 'import ensurepip, venv' 2>/dev/null || need="$need python3-venv"
fi
if [ -n "$need" ]; then
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
[ "$py" = python3 ] || [ -x "$py" ] || python3 -m venv .venv
"$py" -m pip install -q --disable-pip-version-check -e ".[test,dev]"
"$py" -m ruff check hub plugins tests bench examples scripts
"$py" -m mypy   # the files and options are in pyproject.toml, [tool.mypy]
"$py" -m pytest -q "$@"
