"""The deploy tier: the service behind a real nginx, in a real browser, in a real container.

It needs nginx, Chromium + ChromeDriver and podman (``scripts/deploy-deps.sh`` installs them).
Where they are missing the tests skip, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.utils.deploy import CHROMIUM_FLAGS, require

# Selenium must use the Debian ChromeDriver given below, never fetch one.
os.environ.setdefault("SE_OFFLINE", "true")


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    require("chromium", "chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument("--window-size=1280,1400")
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()
