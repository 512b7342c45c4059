"""Fixtures shared by the suites."""

import pytest

from indmlops import intent


@pytest.fixture(scope="session")
def smoke_intent() -> dict:
    return intent.load("smoke")
