import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test uses a private reference cache (shared within the session for speed)."""
    monkeypatch.setenv("MISHAUDIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def stop_after(n: int, seen: list):
    """An on_chunk callback for run_sweep that records the chunks and interrupts after the n-th."""

    def cb(i):
        seen.append(i)
        if len(seen) == n:
            raise KeyboardInterrupt

    return cb
