"""Benchmark: cost of the ups_modbus driver (decode, status, events) over raw pymodbus reads.

Runs a simulator with N APC units on loopback and polls every unit R rounds, once with raw
pymodbus block reads (the floor: same requests, no decoding) and once through UpsDriver.poll().
Prints polls/s and the ratio driver/raw. Usage: python bench/bench_modbus_plugins.py [N] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support from the source tree


from pymodbus.client import AsyncModbusTcpClient

from plugins.ups_modbus.driver import UpsConfig, make_driver
from plugins.ups_modbus.maps import APC_SMT
from plugins.ups_modbus.simulator import UpsSimulator
from tests.support.context import FakeDeviceContext


async def main(n: int, rounds: int) -> None:
    sim = await UpsSimulator({u: "apc_smt" for u in range(1, n + 1)}, port=0).start()
    try:
        clients = [AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=3, retries=0) for _ in range(n)]
        await asyncio.gather(*(c.connect() for c in clients))

        async def raw(unit: int, c: AsyncModbusTcpClient) -> None:
            for b in APC_SMT.blocks:
                rr = await c.read_holding_registers(b.address, count=b.count, device_id=unit)
                assert not rr.isError()

        drivers = [make_driver(UpsConfig.model_validate({"id": f"u{u}", "platform": "ups_modbus",
                                                         "host": "127.0.0.1", "port": sim.port, "unit": u,
                                                         "model": "apc_smt"}), FakeDeviceContext("bench"))
                   for u in range(1, n + 1)]
        await asyncio.gather(*(d.connect() for d in drivers))
        results: dict[str, float] = {}
        jobs = (("raw pymodbus", lambda: asyncio.gather(*(raw(u + 1, c) for u, c in enumerate(clients)))),
                ("UpsDriver.poll", lambda: asyncio.gather(*(d.poll() for d in drivers))))
        for _rep in range(3):  # alternate, keep the best of three for each (order effects, warm-up)
            for name, job in jobs:
                await job()
                t0 = time.perf_counter()
                for _ in range(rounds):
                    await job()
                results[name] = max(results.get(name, 0.0), n * rounds / (time.perf_counter() - t0))
        for c in clients:
            c.close()
        for d in drivers:
            await d.close()
        floor = results["raw pymodbus"]
        print(f"{n} APC units x {rounds} rounds, {len(APC_SMT.blocks)} block reads per poll, one process")
        for name, rate in results.items():
            print(f"  {name:16s} {rate:8.0f} polls/s   ratio to raw {rate / floor:5.2f}")
    finally:
        await sim.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 5))
