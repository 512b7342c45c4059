"""Static checks: the manifests alone (schemas, API invariants, wiring, security, the isolation matrix); no target."""
