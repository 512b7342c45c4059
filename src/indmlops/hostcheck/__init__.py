"""Can this host carry a load profile right now, and did it while a run went on: measured figures (`measure`), whose
CPU it was (`attribution`), and the shortfalls and verdict that blame the environment, not the stack (`verdict`)."""

from indmlops.hostcheck.attribution import (
    CpuShare, OwnRoots, Snapshot, attribute, parse_cpu_stat, parse_pid_stat, snapshot)
from indmlops.hostcheck.measure import (
    FSYNC_PAYLOAD, HostFigures, HostMonitor, MonitorSummary, Pressure, fsync_once, measure_fsync, measure_generator,
    measure_loopback_rtt, parse_psi, preflight, read_psi)
from indmlops.hostcheck.verdict import (
    CHANGES_PER_READING, HOST_FILE, Demand, EnvironmentVerdict, HostFileError, HostFit, Shortfall, Thresholds, assess,
    assess_run, judge)

__all__ = [
    "CHANGES_PER_READING", "FSYNC_PAYLOAD", "HOST_FILE", "CpuShare", "Demand", "EnvironmentVerdict", "HostFigures",
    "HostFileError", "HostFit", "HostMonitor", "MonitorSummary", "OwnRoots", "Pressure", "Shortfall", "Snapshot",
    "Thresholds", "assess", "assess_run", "attribute", "fsync_once", "judge", "measure_fsync", "measure_generator",
    "measure_loopback_rtt", "parse_cpu_stat", "parse_pid_stat", "parse_psi", "preflight", "read_psi", "snapshot"]
