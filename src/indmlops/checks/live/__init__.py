"""Live checks: typed functions taking a target; the suites call them."""
