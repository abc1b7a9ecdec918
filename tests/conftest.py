import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test uses a private reference cache (shared within the session for speed)."""
    monkeypatch.setenv("MISHAUDIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
