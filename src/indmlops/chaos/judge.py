"""The chaos suite's verdict on one experiment run, in two parts: what the stack alone answers for, and what takes
time (which a host that could not carry the run may explain, with its figures: indmlops.hostcheck).

Each finding is one sentence naming what broke, the bound and where it lives, and the traffic's own summary."""

from __future__ import annotations

from indmlops import intent
from indmlops.chaos import context
from indmlops.chaos.runner import ChaosRun
from indmlops.hostcheck.explain import Breach


def stack_findings(run: ChaosRun, broker_autosave: str) -> list[str]:
    """Whatever the host did: a fault that hit nothing, a run that did not complete or whose steady state did not
    hold, a loss (also one the publishers' outbox repaired), readings the broker never acknowledged, readings given
    up, duplicates beyond QoS1's redelivery window."""
    chaos = intent.load("slo")["chaos"]
    out = [why for why in run.failures("stop") if "InterruptExecution: lost:" in why]
    recoveries = run.recoveries()
    faults = run.outputs("kill") + run.outputs("hold")
    if not recoveries and not faults:
        out.append("no recovery recorded: the experiment killed nothing")
    elif not recoveries:
        why = run.failures("wait_ready") + run.failures("release")
        out.append(f"{', '.join(sorted({f['component'] for f in faults}))} killed, but no recovery was recorded"
                   + (f": {why[0]}" if why else ""))
    for rec in recoveries:
        if rec["new_identity"] == rec["old_identity"]:
            out.append(f"{rec['component']} was not replaced (still {rec['old_identity']})")
    if run.status != "completed" or run.journal.get("deviated"):
        out.append(f"the run did not complete: status {run.status}, deviated {run.journal.get('deviated')}")
    for when in ("before", "after"):
        if not run.hypothesis_met(when):
            out.append(f"steady state not met {when} the fault")
    kills = max(1, len(recoveries))
    # A run interrupted before its traffic was stopped (a recovery that failed) still accounted it in the rollback.
    for reports in run.rollback_outputs("stop_all"):
        for traffic in reports or []:
            if traffic.get("lost_acknowledged"):
                out.append(f"lost: {traffic['lost_acknowledged']} acknowledged readings got no prediction while later "
                           f"readings of their machines did (accounted after the run was interrupted): "
                           f"{traffic['summary']}")
    for record in run.records("stop"):
        traffic, faulted = record["output"], record["activity"]["provider"]["arguments"].get("bound_for")
        said = traffic["summary"]
        if traffic["acknowledged"] == 0:
            out.append(f"the traffic got no reading acknowledged: {said}")
        if traffic.get("predictions_below_qos1"):
            out.append(f"{traffic['predictions_below_qos1']} predictions arrived at QoS 0 on a QoS 1 subscription: "
                       f"the edge publishes them weaker than the contract (QoS 1), so a broker restart can drop "
                       f"them: {said}")
        if traffic["unacknowledged"]:
            out.append(f"{traffic['unacknowledged']} readings the broker never acknowledged (QoS1 publishes "
                       f"without a PUBACK; bound 0): {said}")
        if faulted is None:
            continue
        bound = context.loss_bound(faulted)
        if traffic["lost_acknowledged"] > bound:
            out.append(f"lost: {traffic['lost_acknowledged']} acknowledged readings, more than the {bound} allowed "
                       f"for a kill of {faulted} (fixtures/slo.yaml chaos.max_lost_acknowledged): {said}")
        # A loss the publishers' outbox repaired is still a loss of whoever dropped it: none may follow anything but
        # a broker kill, and a broker kill no more than its save policy leaves unsaved.
        resend = context.resend_bound(faulted, traffic["rate"], broker_autosave) * kills
        if traffic["resent_gap"] > resend:
            who = ("" if faulted == "mosquitto" else
                   ": the broker holds the edge's queue across its kill, so the edge or the broker dropped them")
            out.append(f"{traffic['resent_gap']} readings went missing after acknowledgement and had to be re-sent by "
                       f"the publisher (allowed {resend} for {kills} kill(s) of {faulted} under broker_autosave "
                       f"{broker_autosave}){who}: {said}")
        if traffic["outbox"]["given_up"]:
            out.append(f"{traffic['outbox']['given_up']} readings never got a prediction however often re-sent "
                       f"(e.g. {', '.join(traffic['outbox']['given_up_examples'])}): {said}")
        if traffic["duplicates"] > chaos["max_duplicates_per_kill"] * kills:
            out.append(f"{traffic['duplicates']} readings predicted twice, at most "
                       f"{chaos['max_duplicates_per_kill']} per kill (fixtures/slo.yaml): {said}")
    return out


def timing_findings(run: ChaosRun) -> list[str]:
    return [text for text, _b in timing_breaches(run)]


def timing_breaches(run: ChaosRun) -> list[tuple[str, Breach | None]]:
    """What takes time: recovery within its bound, the drain complete, the edge current again after each recovery
    within its catch-up bound (fixtures/slo.yaml chaos.catch_up); each with its numbers for hostcheck.explain (None:
    not a timing claim, which no host explains)."""
    out: list[tuple[str, Breach | None]] = []
    for rec in run.recoveries():
        if rec["recovery_s"] > rec["bound_s"]:
            out.append((f"{rec['component']} answered {rec['recovery_s']:.1f} s after the fault, bound "
                        f"{rec['bound_s']:g} s (fixtures/slo.yaml recovery_s)",
                        Breach(f"{rec['component']} recovery", rec["recovery_s"], rec["bound_s"], "s")))
    for record in run.records("stop"):
        traffic = record["output"]
        if traffic["undrained"]:
            out.append((f"not drained (late or stalled, not shown lost): {traffic['summary']}",
                        Breach("drain", None, 0.0, "")))
        if not traffic["catch_up"]:
            out.append(("no recovery recorded while the traffic ran: catch-up not judged", None))
        for i, c in enumerate(traffic["catch_up"], 1):
            if not c["met"]:
                out.append((f"recovery {i}: the edge was not current again within {c['bound_s']:g} s of ready "
                            f"(fixtures/slo.yaml chaos.catch_up): {traffic['summary']}",
                            Breach(f"catch-up after recovery {i}", c["catch_up_s"], c["bound_s"], "s")))
    return out
