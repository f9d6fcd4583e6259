"""Issue 15's command flood: one account publishes malformed commands at 20,000/s for 5 s (QoS 1,
through a real Mosquitto, `mosquitto_pub -l` paced by a helper process) at a hub running as
`anninh run` with a light on the relay-board simulator, while an officer sends valid light commands
(ON/OFF with a hold) every ~0.2 s.

    python bench/bench_command_flood.py [--rate 20000] [--seconds 5] [--valid 20]

Prints: valid commands carried out and audited (target: all), their latency under the flood,
rejections reported (events) against rejections counted, the history's growth (target < 1 MB) and
any message the broker dropped. Before issue 15 the same flood cost one event, one audit row and
one history row per rejection (49.7 MB for 100,000).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.flood import flood  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=20000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--valid", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = flood(Path(tmp), rate=args.rate, seconds=args.seconds, valid=args.valid)
    print(f"flood: {r['flood_sent']:,} malformed commands in {r['flood_seconds']:.1f} s "
          f"({r['flood_sent'] / r['flood_seconds']:,.0f}/s) from one account")
    print(f"valid officer commands: {r['valid_sent']} sent, {r['valid_audited']} carried out and audited, "
          f"{r['valid_applied']} seen applied within 15 s; latency p50 {r['latency_p50'] * 1000:.0f} ms, "
          f"max {r['latency_max'] * 1000:.0f} ms")
    print(f"rejections: {r['rejected_counted']:,} counted in {r['rejected_events']} command_rejected event(s)")
    print(f"history growth: {r['history_growth'] / 1e6:.3f} MB in {r['history_rows']} rows (states, events, "
          f"audit)   (target < 1 MB)")
    print(f"broker: {len(r['broker_warnings'])} drop warning(s) {r['broker_warnings']}")
    return 0 if r["valid_audited"] == r["valid_sent"] and r["history_growth"] < 1_000_000 else 1


if __name__ == "__main__":
    sys.exit(main())
