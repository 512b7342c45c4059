"""Root conftest: loads the IndMLOps-Lab pytest plugin (logic lives in indmlops.pytest_plugin)."""

pytest_plugins = ["indmlops.pytest_plugin"]
