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


class IsolationNotEnforced(IndMLOpsError):
    """The cluster's network does not enforce NetworkPolicy: every isolation observation would be meaningless."""


class KubernetesError(IndMLOpsError):
    """The Kubernetes target could not do what a check asked; the message says where and how to reproduce."""

    status: int | None = None  # the API's HTTP status, when the API answered with an error


class NoClusterAtContext(KubernetesError):
    def __init__(self, context: str, kubeconfig: str, detail: str, available: list[str]) -> None:
        self.context = context
        have = ", ".join(available) if available else "none"
        super().__init__(
            f"no cluster at context {context!r} in kubeconfig {kubeconfig} ({detail}; contexts there: {have}): "
            "create it with `kind create cluster --config manifests/overlays/kind/kind-cluster.yaml`, or choose "
            "another with --context / --kubeconfig"
        )


class ApiUnreachable(KubernetesError):
    def __init__(self, context: str, host: str, action: str, detail: str) -> None:
        super().__init__(
            f"the Kubernetes API at {host} (context {context!r}) is unreachable while trying to {action}: {detail}; "
            f"is the cluster running? reproduce with `kubectl --context {context} cluster-info`"
        )


class ApiUnauthorized(KubernetesError):
    def __init__(self, context: str, host: str, action: str) -> None:
        super().__init__(
            f"the Kubernetes API at {host} rejected the credentials of context {context!r} (401 Unauthorized) "
            f"while trying to {action}: refresh them (for kind: `kind export kubeconfig --name indmlops`)"
        )


class RbacForbidden(KubernetesError):
    def __init__(self, context: str, verb: str, resource: str, namespace: str, detail: str) -> None:
        self.verb = verb
        self.resource = resource
        self.namespace = namespace
        super().__init__(
            f"RBAC forbids verb {verb!r} on resource {resource!r} in namespace {namespace!r} for context "
            f"{context!r} (403: {detail}): grant it with a Role/RoleBinding; check with "
            f"`kubectl --context {context} auth can-i {verb} {resource} -n {namespace}`"
        )


class ImageNotLoaded(NotReady):
    """A NotReady that waiting cannot cure: raised as soon as it is seen, not at the timeout."""

    def __init__(self, service: str, seconds: float, last_state: str, image: str) -> None:
        self.service = service
        self.image = image
        if image.split("/")[-1].startswith("indmlops-"):  # the project's own images are loaded, never pulled
            hint = (f"build it with scripts/build-images.sh (which tags localhost/<name>: `docker tag` it as {image}) "
                    f"and load it into the nodes: `kind load docker-image {image} --name indmlops` on kind; "
                    "--target cluster loads every image the manifests name that the engine has")
        else:
            hint = (f"the node found no registry answer for it; reproduce on a kind node with "
                    f"`docker exec indmlops-worker crictl pull {image}`")
        self.last_state = f"{last_state}; the node cannot pull image {image}: {hint}"
        IndMLOpsError.__init__(self, f"{service} cannot start (seen after {seconds:.0f} s): {self.last_state}")


class PortForwardFailed(KubernetesError):
    def __init__(self, what: str, command: str, detail: str) -> None:
        super().__init__(f"port-forward to {what} failed: {detail}; reproduce with `{command}`")
