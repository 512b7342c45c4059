"""The security and wiring rules on hand-made objects: right about why, and no finding where the API or the broker
would be satisfied."""

from __future__ import annotations

from pathlib import Path

from indmlops.checks.static.security_rules import check_broker_auth, check_sa_token
from indmlops.checks.static.wiring_rules import check_statefulset_service, rule_names
from indmlops.manifests import Manifests as _Manifests
from indmlops.manifests import Obj


def Manifests(objects: list[Obj]) -> _Manifests:
    return _Manifests(Path("."), objects, "yaml")


def pod(name: str, **spec) -> Obj:
    return Obj({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ns"},
                "spec": {"template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "c", "image": "x:1"}], **spec}}}}, "f.yaml")


def sa(name: str, automount: bool | None) -> Obj:
    body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "ns"}}
    if automount is not None:
        body["automountServiceAccountToken"] = automount
    return Obj(body, "sa.yaml")


def test_a_token_is_not_mounted_when_the_pod_or_its_service_account_says_false():
    assert check_sa_token(pod("a", automountServiceAccountToken=False), Manifests([]), ()) == []
    m = Manifests([sa("quiet", False)])
    assert check_sa_token(pod("b", serviceAccountName="quiet"), m, ()) == []
    # the pod's own true wins over its account's false, as the API decides
    assert check_sa_token(pod("c", serviceAccountName="quiet", automountServiceAccountToken=True), m, ())
    found = check_sa_token(pod("d"), Manifests([]), ())
    assert "ServiceAccount ns/default (not in the manifests)" in found[0]
    assert check_sa_token(pod("e"), Manifests([]), ("Deployment/ns/e",)) == []  # declared API user


def test_broker_auth_reads_directives_not_comments_and_knows_per_listener_settings():
    ok = "listener 1883\nallow_anonymous false  # never true\npassword_file /p\n"
    assert check_broker_auth("m.conf", ok) == []
    assert check_broker_auth("m.conf", "# allow_anonymous true\n" + ok) == []
    assert check_broker_auth("m.conf", "listener 1883\nallow_anonymous false\nplugin /auth.so\n") == []
    assert check_broker_auth("m.conf", "listener 1883\nallow_anonymous true\npassword_file /p\n") == [
        "m.conf: the broker has allow_anonymous true; expected false (every client authenticates)"]
    per = "per_listener_settings true\npassword_file /p\nallow_anonymous false\nlistener 1883\nlistener 8883\n"
    found = check_broker_auth("m.conf", per)  # global settings do not reach listeners with per_listener_settings
    assert len(found) == 2 and all("no password_file" in f for f in found) and "listener 8883" in found[1]


def test_statefulset_service_must_be_headless_and_select_its_pods():
    sts = Obj({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "ns"},
               "spec": {"serviceName": "db-h", "template": {"metadata": {"labels": {"app": "db"}}}}}, "db.yaml")

    def svc(**spec) -> Obj:
        return Obj({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db-h", "namespace": "ns"},
                    "spec": spec}, "svc.yaml")

    assert check_statefulset_service(sts, Manifests([sts, svc(clusterIP="None", selector={"app": "db"})])) == []
    found = check_statefulset_service(sts, Manifests([sts, svc(selector={"app": "db"})]))
    assert len(found) == 1 and "expected None (headless)" in found[0]
    found = check_statefulset_service(sts, Manifests([sts, svc(clusterIP="None", selector={"app": "other"})]))
    assert len(found) == 1 and "does not select the pods" in found[0]
    assert "no Service ns/db-h" in check_statefulset_service(sts, Manifests([sts]))[0]


def test_rule_names_are_alerts_and_records_and_nothing_from_a_broken_file():
    text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n  - record: r:x\n    expr: sum(up)\n"
    assert rule_names(text) == {"A", "r:x"}
    assert rule_names("groups: [") == set() and rule_names("[]") == set() and rule_names("groups: 3") == set()


def test_api_rules_mirror_what_the_api_server_rejects_and_accept_what_it_accepts():
    from indmlops.checks.static import api_rules

    job = Obj({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns"},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}, "j.yaml")
    assert "defaults it to Always" in api_rules.check_restart_policy(job)[0]  # a Job must say OnFailure or Never
    assert api_rules.check_restart_policy(pod("d")) == []  # unset is Always: what a Deployment needs
    c = {"name": "c", "image": "x:1", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                                     "limits": {"cpu": "0.5", "memory": "1024Mi"}}}
    assert api_rules.check_requests_within_limits(pod("q", containers=[c])) == []  # equal, spelled differently
    c["resources"]["requests"]["cpu"] = "501m"
    assert "requests.cpu '501m' is more than limits.cpu '0.5'" in api_rules.check_requests_within_limits(
        pod("q", containers=[c]))[0]
    bad = pod("p", containers=[{"name": "c", "image": "x:1", "ports": [{"name": "HTTP", "containerPort": 80},
                                                                        {"name": "9090", "containerPort": 90}],
                                "volumeMounts": [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/a"}]}],
              volumes=[{"name": "v", "emptyDir": {}}])
    found = " | ".join(api_rules.check_pod_names(bad))
    assert "'HTTP' is not a valid name" in found and "'9090' is not a valid name" in found
    assert "mountPath ['/a'] mounted twice" in found and "does not define" not in found
    assert api_rules.check_selector(pod("s")) and "expected matchLabels" in api_rules.check_selector(pod("s"))[0]


def test_a_rule_that_meets_a_malformed_value_fails_closed_with_a_finding_instead_of_raising():
    import yaml as _yaml

    from indmlops.checks.static.rules import StaticPolicy, cases, run
    from indmlops.manifests import load_cached

    repo = Path(__file__).resolve().parents[2]
    policy = StaticPolicy.from_fixture(_yaml.safe_load((repo / "fixtures" / "static.yaml").read_text()),
                                       repo / "images")
    shipped = load_cached(repo / "manifests" / "overlays" / "kind")
    import copy

    m = Manifests(copy.deepcopy(shipped.objects))  # load_cached's objects are shared by other tests
    grafana = m.find("Deployment/governance/grafana")
    grafana.body["spec"]["template"]["spec"]["containers"][0]["resources"] = True  # a bool where a map belongs
    case = next(c for c in cases(m, policy) if c.id == "Deployment/governance/grafana:resources")
    found = run(case, m, policy, None)
    assert len(found) == 1 and found[0].startswith("cannot be judged: a value this rule reads has an unexpected "
                                                   "type or shape (AttributeError"), found
