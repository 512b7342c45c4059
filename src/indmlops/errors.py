"""Typed errors with messages a user can act on: what failed, where, and what to do."""

from __future__ import annotations


class IndMLOpsError(Exception):
    """Base class: every error the CLI prints without a traceback."""


class MissingDependency(IndMLOpsError):
    def __init__(self, what: str, install: str) -> None:
        self.what = what
        self.install = install
        super().__init__(f"{what} is not installed: {install}")


class PortInUse(IndMLOpsError):
    def __init__(self, service: str, port: int, holder: str = "") -> None:
        self.service = service
        self.port = port
        held = f" (held by {holder})" if holder else ""
        super().__init__(
            f"port 127.0.0.1:{port} for {service} is already in use{held}: stop that process, or choose "
            f"another port with --port {service}=<port> or INDMLOPS_PORT_OFFSET"
        )


class StateDirError(IndMLOpsError):
    """The state directory cannot be created, written, or reached by a service's user."""


class ServiceExited(IndMLOpsError):
    def __init__(self, service: str, detail: str, log_path: str, log_tail: str) -> None:
        self.service = service
        self.log_tail = log_tail
        super().__init__(
            f"{service} exited during start ({detail}); last lines of {log_path}:\n{log_tail}"
        )


class NotReady(IndMLOpsError):
    def __init__(self, service: str, timeout: float, last_state: str) -> None:
        self.service = service
        self.last_state = last_state
        super().__init__(f"{service} was not ready after {timeout:.0f} s; last observed: {last_state}")


class StackNotRunning(IndMLOpsError):
    def __init__(self, state_dir: str) -> None:
        super().__init__(
            f"no local stack is running for state directory {state_dir}: start it with `indmlops up`"
        )


class UnknownComponent(IndMLOpsError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown component {name!r}: expected one of {', '.join(known)}")


class NotSupportedByTarget(IndMLOpsError):
    """Raised by a target for an operation it cannot perform; checks turn it into a skip with the reason."""

    def __init__(self, target: str, operation: str, reason: str) -> None:
        self.target = target
        self.operation = operation
        self.reason = reason
        super().__init__(f"{operation} is not supported by the {target} target: {reason}")
