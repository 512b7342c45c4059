"""Root conftest: loads the IndMLOps-Lab pytest plugin (logic lives in indmlops.plugin)."""

pytest_plugins = ["indmlops.plugin"]
