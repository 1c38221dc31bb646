"""Shared test set-up. tests/ mirrors python/blechrs/ (one folder per package); independent
reference implementations the tests compare against live in tests/support/ (scipy, plain numpy),
never in a test module, so no test imports another.

pytest puts this folder on sys.path (rootdir conftest, no __init__.py), which is what makes
``from support... import`` work from every sub-folder.
"""

import pytest

from support.sorting_reference import use_reference_engine


@pytest.fixture()
def reference_engine(monkeypatch):
    """The scipy reference extraction instead of the engine's, for this test."""
    use_reference_engine(monkeypatch)
