"""How a deployment is reached: the Target seam and its implementations."""

from indmlops.targets.base import Credentials, KillEvidence, ReadyEvidence, Target

__all__ = ["Credentials", "KillEvidence", "ReadyEvidence", "Target"]
