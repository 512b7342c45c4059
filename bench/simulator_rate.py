"""Benchmark: how fast the simulator publishes to the local broker, against bare paho in the same run.

Baseline: bare paho publishing one pre-encoded reading of the same size in a loop (same QoS, same in-flight
window): the floor set by the client library and the broker. The simulator adds signal generation, JSON
encoding and rate control on top. Also runs the issue's target, 5,000 msg/s sustained, and reports the
process's CPU use (user + sys over wall: 1.0 = one core busy).

    .venv/bin/python bench/simulator_rate.py [--count 50000] [--rate 5000 --seconds 10]
    (needs a running local stack: .venv/bin/indmlops up)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import threading
import time

from indmlops import wire
from indmlops.simulator import Plant
from indmlops.simulator.publish import publish
from indmlops.targets.factory import TargetSpec, open_target


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bare_paho(ep, user, password, payload: bytes, count: int, qos: int, window: int = 200) -> float:
    client = wire.mqtt_connect(ep, user, password)
    sem = threading.Semaphore(window)
    done = threading.Event()
    acked = 0

    def on_publish(*_a):
        nonlocal acked
        acked += 1
        if qos:
            sem.release()
        if acked == count:
            done.set()

    client.on_publish = on_publish
    t0 = time.perf_counter()
    for _ in range(count):
        if qos:
            sem.acquire()
        client.publish("factory/line-1/m-01/telemetry", payload, qos=qos)
    done.wait(60)
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=50_000, help="messages per unthrottled run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rate", type=float, default=5000.0, help="sustained-rate target, msg/s")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the sustained run")
    args = ap.parse_args()

    with open_target(TargetSpec("local", start=False)) as target:
        ep = target.endpoint("mosquitto")
        sim = target.credentials("mosquitto", "simulator")
    sample = json.dumps(next(Plant().readings()), separators=(",", ":")).encode()
    print(f"broker {ep}; reading size {len(sample)} B; {args.count} messages per run, median of {args.repeats}")
    print(f"{'QoS':<5}{'bare paho msg/s':>17}{'simulator msg/s':>17}{'simulator/bare':>16}")
    for qos in (0, 1):
        bare, simr = [], []
        for i in range(args.repeats):
            bare.append(bare_paho(ep, sim.username, sim.password, sample, args.count, qos))
            stats = publish(Plant(seed=i, lines=2, machines=5), endpoint=ep, username=sim.username,
                            password=sim.password, rate=0, count=args.count, qos=qos)
            assert qos == 0 or stats.acked == stats.published, stats.summary()
            simr.append(stats.rate)
        b, s = statistics.median(bare), statistics.median(simr)
        print(f"{qos:<5}{b:>17.0f}{s:>17.0f}{s / b:>15.2f}x")

    print(f"\nsustained {args.rate:.0f} msg/s for {args.seconds:.0f} s, QoS1, 2 lines x 5 machines:")
    c0, t0 = cpu(), time.perf_counter()
    stats = publish(Plant(seed=1, lines=2, machines=5), endpoint=ep, username=sim.username, password=sim.password,
                    rate=args.rate, duration=args.seconds, qos=1)
    wall, used = time.perf_counter() - t0, cpu() - c0
    print(f"  {stats.summary()}")
    print(f"  process CPU {used:.2f} s over {wall:.2f} s wall = {used / wall:.2f} cores")
    ok = stats.rate >= 0.99 * args.rate and stats.acked == stats.published and used / wall <= 1.0
    print(f"  goal >= {args.rate:.0f} msg/s on one core: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
