"""What the deploy tier needs of the machine: its tools (nginx, Chromium, podman, installed by
``scripts/deploy-deps.sh``), and screenshots for people to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver

from tests.utils.needs import unavailable
from tests.utils.paths import ARTIFACTS

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps dialling out, and this machine has no network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require(*tools: str) -> None:
    """Skip without these tools; in CI (``CI=true``) that is a failure."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed (run scripts/deploy-deps.sh)")


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path
