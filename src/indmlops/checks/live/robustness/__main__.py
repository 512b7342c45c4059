"""`python -m indmlops.checks.live.robustness replay DIR`."""

from indmlops.checks.live.robustness.replay import main

raise SystemExit(main())
