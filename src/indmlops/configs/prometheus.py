"""The shared scrape jobs (config/prometheus/scrape.yaml) both targets point Prometheus at."""

from __future__ import annotations

import yaml

from indmlops.paths import CONFIG_DIR


def scrape_jobs() -> list[dict]:
    return yaml.safe_load((CONFIG_DIR / "prometheus" / "scrape.yaml").read_text())["jobs"]
