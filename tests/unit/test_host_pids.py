"""A cluster on this host counts as the stack's own work: its pods' pids from the kubepods cgroups, kind's node
containers by their init pid. A cluster elsewhere has nothing here (process_roots None)."""

from __future__ import annotations

import stat
from pathlib import Path

from indmlops.targets.kubernetes import hostpids
from indmlops.targets.kubernetes.target import KubernetesTarget


def _procs(d: Path, *pids: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))


def test_pods_of_a_cgroup_v1_host_are_read_from_one_hierarchy(tmp_path):
    _procs(tmp_path / "pids" / "kubepods" / "burstable" / "pod-a" / "c1", 101, 102)
    _procs(tmp_path / "pids" / "kubepods" / "besteffort" / "pod-b" / "c2", 201)
    _procs(tmp_path / "pids" / "system.slice", 1, 2)  # not a pod
    _procs(tmp_path / "memory" / "kubepods" / "pod-a" / "c1", 101, 102)  # the same pods in another controller
    assert hostpids.pod_pids(tmp_path) == [101, 102, 201]


def test_pods_of_a_cgroup_v2_host_under_the_systemd_driver(tmp_path):
    _procs(tmp_path / "kubepods.slice" / "kubepods-burstable.slice" / "pod-a.slice" / "cri-x.scope", 7, 8)
    _procs(tmp_path / "user.slice", 3)
    assert hostpids.pod_pids(tmp_path) == [7, 8]


def test_no_kubelet_here_means_no_pod_pids(tmp_path):
    _procs(tmp_path / "cpu" / "system.slice", 1)
    assert hostpids.pod_pids(tmp_path) == []


def test_kind_node_containers_are_found_by_their_init_pid(tmp_path):
    engine = tmp_path / "docker"
    engine.write_text('#!/bin/sh\ncase "$4" in\n  kind-control-plane) echo 4242;;\n  gone) echo "no such" >&2; '
                      'exit 1;;\n  stopped) echo 0;;\nesac\n')
    engine.chmod(engine.stat().st_mode | stat.S_IEXEC)
    assert hostpids.container_init_pids(str(engine), ["kind-control-plane", "gone", "stopped"]) == [4242]


def test_a_kubernetes_target_maps_its_host_processes_only_when_told_where_they_are():
    elsewhere = KubernetesTarget.__new__(KubernetesTarget)
    elsewhere.host_roots = None
    assert elsewhere.process_roots() is None
    here = KubernetesTarget.__new__(KubernetesTarget)
    here.host_roots = lambda: [10, 11]
    assert here.process_roots() == [10, 11]
