"""Can this host carry a load profile right now, and did it while a run went on: measured figures (`measure`,
`monitor`), whose CPU (`attribution`) and disk writes (`diskio`) they were, and the shortfalls and verdict that
blame the environment, not the stack (`verdict`)."""

from indmlops.hostcheck.attribution import (
    CpuShare,
    OwnRoots,
    Snapshot,
    attribute,
    parse_cpu_stat,
    parse_pid_stat,
    snapshot,
)
from indmlops.hostcheck.diskio import (
    Devices,
    DiskCounters,
    IoShare,
    IoSnapshot,
    attribute_io,
    devices_for,
    io_snapshot,
    parse_diskstats,
    parse_pid_io,
)
from indmlops.hostcheck.explain import Breach, Envelope, envelope, explained, judge, timing_failure
from indmlops.hostcheck.fit import HostFit
from indmlops.hostcheck.measure import (
    FSYNC_PAYLOAD,
    HostFigures,
    Pressure,
    SlowFsync,
    fsync_once,
    measure_fsync,
    measure_fsync_under,
    measure_generator,
    measure_loopback_rtt,
    parse_psi,
    preflight,
    read_psi,
)
from indmlops.hostcheck.monitor import HostMonitor, MonitorSummary
from indmlops.hostcheck.verdict import (
    CHANGES_PER_READING,
    HOST_FILE,
    Demand,
    EnvironmentVerdict,
    HostFileError,
    Shortfall,
    Thresholds,
    assess,
    assess_run,
    context,
)

__all__ = [
    "CHANGES_PER_READING", "FSYNC_PAYLOAD", "HOST_FILE", "Breach", "CpuShare", "Demand", "Devices", "DiskCounters",
    "Envelope", "EnvironmentVerdict", "HostFigures", "HostFileError", "HostFit", "HostMonitor", "IoShare",
    "IoSnapshot", "MonitorSummary", "OwnRoots", "Pressure", "Shortfall", "SlowFsync", "Snapshot", "Thresholds",
    "assess", "assess_run", "attribute", "attribute_io", "context", "devices_for", "envelope", "explained",
    "fsync_once", "io_snapshot", "judge", "measure_fsync", "measure_fsync_under", "measure_generator",
    "measure_loopback_rtt", "parse_cpu_stat", "parse_diskstats", "parse_pid_io", "parse_pid_stat", "parse_psi",
    "preflight", "read_psi", "snapshot", "timing_failure"]
