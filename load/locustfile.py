"""Locust users for the edge: MQTT end to end (reading published → prediction received) and HTTP POST /predict.

    locust -f load/locustfile.py                        # web UI on :8089, against the local stack
    locust -f load/locustfile.py --headless -t 60s --shape step --mqtt-users 20 --rate-per-user 10
    locust -f load/locustfile.py --master / --worker    # distributed, when one generator is not enough

Endpoints and credentials default to the local stack's (`stack.json`); elsewhere give --mqtt HOST:PORT, --host
http://inference:8088 and the passwords in the environment variables named by --publisher-password-env and
--subscriber-password-env. Statistics: `mqtt:e2e` (reading's ts_ns → its prediction at our subscriber),
`mqtt:publish` (QoS1 PUBACK), `http:predict`. After the load, the matcher drains (waits while predictions keep
coming, printing progress) and accounts each acknowledged reading with indmlops.delivery: on time, late (more than
LATE_AFTER_S after it was published), lost (a later reading of its machine was predicted: it never will be), or
undrained (the drain ended first: not shown lost). Lost and undrained readings, and a second prediction of one
reading ("duplicate"), are failures of `mqtt:e2e`. Where the time went is sampled per prediction from its stamps:
broker → inference (`seg:broker-in`), inference (`seg:inference`), inference → our subscriber (`seg:broker-out`).
The suite (suites/latency) runs this file through Locust's library API, with the load of a fixtures/slo.yaml profile.
"""

from __future__ import annotations

import json
import os
import threading
import time
from itertools import count

import gevent
import gevent.lock
from locust import FastHttpUser, LoadTestShape, User, constant_throughput, events, task
from locust.exception import StopUser

from indmlops import wire
from indmlops.delivery import Accounting, Key, Ledger
from indmlops.simulator import Plant
from indmlops.slo import SHAPES, mqtt_users_at  # pure, shared with the suite's accounting
from indmlops.wire import Endpoint

LATE_AFTER_S = 5.0  # a prediction arriving more than this after its reading was published is late
ACK_WAIT_S = 5.0  # a stopping MQTT user waits this long for its in-flight PUBACKs
DRAIN_BOUND_S = 60.0  # after the load: wait for outstanding predictions at most this long ...
DRAIN_QUIET_S = 10.0  # ... and stop early when none has come for this long (the edge stopped handling them)
_user_numbers = count(1)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    g = parser  # Locust's include_in_web_ui works on the parser itself, not on argument groups
    g.add_argument("--shape", choices=SHAPES, default="steady", include_in_web_ui=True,
                   help="steady: all users for the run; step: a quarter more every quarter; spike: base, 2x, base")
    g.add_argument("--mqtt-users", type=int, default=10, include_in_web_ui=True, help="simulated machines")
    g.add_argument("--rate-per-user", type=float, default=10.0, include_in_web_ui=True,
                   help="readings per second per machine")
    g.add_argument("--http-users", type=int, default=2, include_in_web_ui=True, help="POST /predict users")
    g.add_argument("--http-rate-per-user", type=float, default=50.0, include_in_web_ui=True,
                   help="requests per second per HTTP user; 0 = closed loop (as fast as the service answers)")
    g.add_argument("--shape-seconds", type=float, default=60.0, help="length of one pass of the shape")
    g.add_argument("--mqtt", default="", help="broker HOST:PORT (default: the local stack's)")
    g.add_argument("--publisher-user", default="simulator")
    g.add_argument("--publisher-password-env", default="", help="env var with the publisher's password")
    g.add_argument("--subscriber-user", default="monitor")
    g.add_argument("--subscriber-password-env", default="", help="env var with the subscriber's password")
    g.add_argument("--max-inflight", type=int, default=20,
                   help="unacknowledged QoS1 readings per user before it waits: an unthrottled QoS1 generator "
                        "collapses Mosquitto")
    g.add_argument("--run-tag", default="", help="line name of this run's machines (default load-<pid>)")


def _settings(opts) -> dict:
    """Broker, credentials and inference URL: from the options, else from the local stack."""
    out = {"mqtt": opts.mqtt, "pub_user": opts.publisher_user, "sub_user": opts.subscriber_user,
           "pub_password": os.environ.get(opts.publisher_password_env, "") if opts.publisher_password_env else "",
           "sub_password": os.environ.get(opts.subscriber_password_env, "") if opts.subscriber_password_env else ""}
    if not out["mqtt"] or not out["pub_password"] or not out["sub_password"]:
        from indmlops.targets.factory import TargetSpec, open_target

        with open_target(TargetSpec("local", start=False)) as target:
            ep = target.endpoint("mosquitto")
            out["mqtt"] = out["mqtt"] or f"{ep.host}:{ep.port}"
            out["pub_password"] = out["pub_password"] or target.credentials("mosquitto", out["pub_user"]).password
            out["sub_password"] = out["sub_password"] or target.credentials("mosquitto", out["sub_user"]).password
            if not getattr(opts, "host", None):
                opts.host = target.endpoint("inference").url
    return out


def _client(settings: dict, user: str, password: str, client_id: str):
    """Connected (CONNACK accepted, Nagle off) or NoAnswer naming the broker, the user and the reason."""
    host, _, port = settings["mqtt"].rpartition(":")
    return wire.mqtt_connect(Endpoint("mosquitto", host, int(port), "mqtt"), user, password, timeout=10,
                               client_id=client_id)


class Matcher:
    """One subscriber per generator process: matches predictions to the readings this process published."""

    def __init__(self, environment, settings: dict) -> None:
        self.env = environment
        self.ledger = Ledger()
        self.stamps: dict[Key, int] = {}  # published_ns of a reading's first prediction: a redelivery repeats it
        self.published = self.matched = self.duplicates = 0
        self.weak_qos = 0  # predictions of ours that arrived below QoS 1 (subscribed at 1: published at 0)
        self.accounting: Accounting | None = None
        self.samples: list[tuple[float, str, float]] = []  # (wall time s, operation, ms): exact, for the suite
        self.client = _client(settings, settings["sub_user"], settings["sub_password"],
                              f"indmlops-load-sub-{os.getpid()}")
        self.client.on_message = self._on_prediction
        wire.mqtt_subscribe(self.client, "factory/+/+/prediction", qos=1, timeout=10)

    def _on_prediction(self, _c, _u, msg) -> None:
        now = time.time_ns()
        try:
            doc = json.loads(msg.payload)
            key, ts = (f"{doc['line']}/{doc['machine']}", doc["seq"]), doc["ts_ns"]
        except (ValueError, KeyError, TypeError):
            return  # not a prediction of ours (another publisher's format): nothing to match
        first = key not in self.stamps
        repeat = not first and doc.get("published_ns") == self.stamps[key]  # the broker redelivered one message
        if not self.ledger.predicted(*key, distinct=not repeat, at=now / 1e9):
            return  # the background simulator's readings and other runs' are not ours
        if msg.qos < 1:
            self.weak_qos += 1
        if not first:
            self.duplicates += 1
            self.env.events.request.fire(request_type="MQTT", name="mqtt:e2e", response_time=0,
                                         response_length=0, exception=RuntimeError("duplicate prediction"))
            return
        self.stamps[key] = doc.get("published_ns")
        self.matched += 1
        ms = (now - ts) / 1e6
        t = now / 1e9
        self.samples.append((t, "mqtt:e2e", ms))
        if isinstance(doc.get("received_ns"), int) and isinstance(doc.get("published_ns"), int):
            self.samples += [(t, "seg:broker-in", (doc["received_ns"] - ts) / 1e6),
                             (t, "seg:inference", (doc["published_ns"] - doc["received_ns"]) / 1e6),
                             (t, "seg:broker-out", (now - doc["published_ns"]) / 1e6)]
        self.env.events.request.fire(request_type="MQTT", name="mqtt:e2e", response_time=ms,
                                     response_length=len(msg.payload), exception=None)

    def settle(self) -> None:
        """After the load: drain, then account; lost and undrained readings are failures of mqtt:e2e."""
        drain = self.ledger.drain(bound_s=DRAIN_BOUND_S, quiet_s=DRAIN_QUIET_S, sleep=gevent.sleep,
                                  progress=lambda line: print(f"loadrun: {line}", flush=True))
        self.accounting = acc = self.ledger.account(LATE_AFTER_S, drain)
        print(f"loadrun: {acc.summary()}", flush=True)
        for why, n in (("lost: a later reading of its machine was predicted", acc.lost),
                       (f"undrained: no prediction when the drain ended ({drain.detail})", acc.undrained)):
            for _ in range(n):
                self.env.events.request.fire(request_type="MQTT", name="mqtt:e2e", response_time=0,
                                             response_length=0, exception=RuntimeError(why))
        self.client.disconnect()
        self.client.loop_stop()


_matcher: Matcher | None = None
_matcher_lock = threading.Lock()  # gevent's, once Locust has patched: users start concurrently


def matcher(environment) -> Matcher:
    global _matcher
    with _matcher_lock:
        if _matcher is None:
            _matcher = Matcher(environment, _settings(environment.parsed_options))
    return _matcher


@events.test_start.add_listener
def _subscribe_first(environment, **_kw) -> None:
    from locust.runners import MasterRunner

    if isinstance(environment.runner, MasterRunner):
        return  # users, and so readings, live on the workers
    if environment.parsed_options is not None and environment.parsed_options.mqtt_users:
        matcher(environment)  # before the first reading goes out


@events.test_stop.add_listener
def _settle(environment, **_kw) -> None:
    if _matcher is not None:
        _matcher.settle()


class EdgeMqttUser(User):
    """One machine: publishes readings from the reference simulator at --rate-per-user, QoS1."""

    weight = 1

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.settings = _settings(opts)
        self.match = matcher(self.environment)
        n = next(_user_numbers)
        self.line, self.machine = opts.run_tag or f"load-{os.getpid()}", f"m-{n:03d}"
        self.readings = Plant(seed=n, lines=1, machines=1).readings()
        self._wait = constant_throughput(opts.rate_per_user)
        self.window = gevent.lock.Semaphore(opts.max_inflight)
        self.sent_at: dict[int, tuple[int, Key]] = {}  # mid → (ts_ns, ledger key) until acknowledged
        self.early: set[int] = set()  # mids acknowledged before publish() returned them
        self.client = _client(self.settings, self.settings["pub_user"], self.settings["pub_password"],
                              f"indmlops-load-{os.getpid()}-{n}")
        self.client.on_publish = self._on_publish

    def wait_time(self) -> float:
        return self._wait(self)

    def _on_publish(self, _c, _u, mid, _rc, _p) -> None:
        sent = self.sent_at.pop(mid, None)
        self.window.release()
        if sent is None:
            self.early.add(mid)
        else:
            t0, key = sent
            self.match.ledger.acknowledged(key)
            ms = (time.time_ns() - t0) / 1e6
            self.match.samples.append((time.time(), "mqtt:publish", ms))
            self.environment.events.request.fire(request_type="MQTT", name="mqtt:publish", response_time=ms,
                                                 response_length=0, exception=None)

    @task
    def publish_reading(self) -> None:
        reading = next(self.readings)
        reading["line"], reading["machine"] = self.line, self.machine
        if not self.window.acquire(timeout=30):
            raise StopUser(f"broker acknowledged nothing for 30 s ({self.settings['mqtt']})")
        reading["ts_ns"] = ts = time.time_ns()
        key = self.match.ledger.published(f"{self.line}/{self.machine}", reading["seq"], at=ts / 1e9)
        self.match.published += 1
        info = self.client.publish(f"factory/{self.line}/{self.machine}/telemetry",
                                   json.dumps(reading, separators=(",", ":")), qos=1)
        if info.mid in self.early:
            self.early.discard(info.mid)
            self.match.ledger.acknowledged(key)
        else:
            self.sent_at[info.mid] = (ts, key)
        if info.rc != 0:
            self.match.ledger.abandoned(key)  # not sent now: no acknowledgement to wait for (one that comes counts)
            self.window.release()
            self.environment.events.request.fire(request_type="MQTT", name="mqtt:publish", response_time=0,
                                                 response_length=0, exception=ConnectionError(f"rc={info.rc}"))

    def on_stop(self) -> None:
        if getattr(self, "client", None) is None:  # on_start may have failed before connecting
            return
        # Readings in flight get their PUBACK for a moment; what is still unacknowledged then is given up in the
        # ledger (this publisher leaves: no acknowledgement will be reported), so the drain does not wait for it.
        deadline = time.monotonic() + ACK_WAIT_S
        while self.sent_at and time.monotonic() < deadline:
            gevent.sleep(0.05)
        for ts, key in list(self.sent_at.values()):
            self.match.ledger.abandoned(key)
            # Never acknowledged: it counts in the publish percentiles at the time it was waited for (censored, at
            # least that long), so a broker that stalls or drops at the end does not drop out of its own p99.
            ms = (time.time_ns() - ts) / 1e6
            self.match.samples.append((time.time(), "mqtt:publish", ms))
            self.environment.events.request.fire(request_type="MQTT", name="mqtt:publish", response_time=ms,
                                                 response_length=0,
                                                 exception=TimeoutError("no PUBACK before the publisher left"))
        self.client.disconnect()
        self.client.loop_stop()


class PredictHttpUser(FastHttpUser):
    """Closed loop on POST /predict with the simulator's readings."""

    fixed_count = 2  # set from --http-users at init

    def on_start(self) -> None:
        self.readings = Plant(seed=10_000 + next(_user_numbers), lines=1, machines=1).readings()
        rate = self.environment.parsed_options.http_rate_per_user
        self._wait = constant_throughput(rate) if rate > 0 else (lambda _u: 0)

    def wait_time(self) -> float:
        return self._wait(self)

    @task
    def predict(self) -> None:
        body = json.dumps(next(self.readings), separators=(",", ":"))
        t = time.perf_counter()
        with self.client.post("/predict", data=body, headers={"Content-Type": "application/json"},
                              name="http:predict", catch_response=True) as resp:
            ms = (time.perf_counter() - t) * 1e3
            if resp.status_code != 200:
                why = resp.error if resp.status_code == 0 else (resp.text or "")[:200]  # 0: no connection
                resp.failure(f"HTTP {resp.status_code}: {why}")
            else:
                matcher(self.environment).samples.append((time.time(), "http:predict", ms))


@events.init.add_listener
def _configure(environment, **_kw) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    _settings(opts)  # fills --host from the local stack when not given
    if environment.host is None:
        environment.host = opts.host
    PredictHttpUser.fixed_count = opts.http_users
    PredictHttpUser.host = opts.host
    if opts.http_users == 0 and PredictHttpUser in environment.user_classes:
        environment.user_classes.remove(PredictHttpUser)  # fixed_count 0 would mean "by weight", not "none"
    if opts.mqtt_users == 0 and EdgeMqttUser in environment.user_classes:
        environment.user_classes.remove(EdgeMqttUser)


class EdgeShape(LoadTestShape):
    """--shape steady | step | spike over --shape-seconds, repeated until --run-time ends the test."""

    def tick(self):
        opts = self.runner.environment.parsed_options
        if opts.run_time and self.get_run_time() >= opts.run_time:  # Locust leaves -t to the shape
            return None
        mqtt = mqtt_users_at(opts.shape, opts.mqtt_users, self.get_run_time(), opts.shape_seconds)
        total = mqtt + opts.http_users
        return total, max(50, total)  # spawn everyone within a second: the shape, not the ramp, sets the load
