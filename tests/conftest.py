import os
import struct
import zlib

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test uses a private reference cache (shared within the session for speed)."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("MISHAUDIT_CACHE_DIR", str(base / "cache"))
    # compiled fused passes (eval/fused32.py, named by their source's digest) are shared by the
    # session's workers: each is compiled once per session
    monkeypatch.setenv("MISHAUDIT_CODE_DIR", str((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)
                                                 / "code"))


def stop_after(n: int, seen: list):
    """An on_chunk callback for run_sweep that records the chunks and interrupts after the n-th."""

    def cb(i):
        seen.append(i)
        if len(seen) == n:
            raise KeyboardInterrupt

    return cb


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG whose chunks are intact (CRCs) and whose image data inflates to exactly
    height rows of width pixels (8-bit samples)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + n
    w, h, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = {2: 3, 6: 4, 0: 1, 4: 2}[color]
    assert depth == 8 and len(zlib.decompress(chunks[b"IDAT"])) == h * (1 + w * channels) and b"IEND" in chunks
    return w, h


def fpcore_trees(consts: list, unary: list, binary: list, precs: list):
    """A hypothesis strategy of random FPCore bodies in x: leaves (x, let names, `consts`), `unary` and
    `binary` operations, fma, let*, if on a comparison (sometimes under or/not), and precision
    annotations from `precs` (tests/test_emit.py, tests/test_fused32.py)."""
    from hypothesis import strategies as st

    @st.composite
    def trees(draw, depth: int = 3, names: tuple = ("x",)) -> str:
        kinds = ["leaf", "un", "bin", "bin", "fma", "let", "if", "prec"] if depth else ["leaf"]
        kind = draw(st.sampled_from(kinds))

        def sub(ns=names):
            return draw(trees(depth - 1, ns))

        if kind == "leaf":
            return draw(st.sampled_from(list(names) * 4 + consts))
        if kind == "un":
            return f"({draw(st.sampled_from(unary))} {sub()})"
        if kind == "bin":
            return f"({draw(st.sampled_from(binary))} {sub()} {sub()})"
        if kind == "fma":
            return f"(fma {sub()} {sub()} {sub()})"
        if kind == "let":
            v = f"v{depth}"
            return f"(let* ([{v} {sub()}]) {sub(names + (v,))})"
        if kind == "if":
            cmp = f"({draw(st.sampled_from(['<', '>', '<=', '>=', '==', '!=']))} {sub()} {sub()})"
            if draw(st.booleans()):
                cmp = f"(or (not {cmp}) (< {sub()} {sub()}))"
            return f"(if {cmp} {sub()} {sub()})"
        return f"(! :precision {draw(st.sampled_from(precs))} {sub()})"

    return trees
