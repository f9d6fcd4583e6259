#!/usr/bin/env bash
# Everything the tests need on a fresh Debian/Ubuntu machine, then the whole suite.
#   bash scripts/test.sh            (as root, or with sudo available)
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
# GStreamer's RTSP server, driven by the system python3, serves the image-health tests' clips
[ -n "$(ls /usr/lib/*/girepository-1.0/GstRtspServer-1.0.typelib 2>/dev/null)" ] || \
  need="$need python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav"
# clockoverlay (the clips' camera-style time stamp) is in Debian's gstreamer1.0-x, not plugins-base
[ -n "$(ls /usr/lib/*/gstreamer-1.0/libgstpango.so 2>/dev/null)" ] || need="$need gstreamer1.0-x"
if [ -n "$need" ]; then
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test,dev]"
python3 -m ruff check hub plugins tests bench
python3 -m pytest -q
