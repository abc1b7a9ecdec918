"""The one validation layer of the Python API (api.py): Python values in, checked values out.

Every message names the API argument and the CLI flag it comes from, e.g. "samples= (--samples)
must be a positive integer, not 1.5": the CLI (cli.py) passes its flags to the API unchanged and
rewords nothing. Wrong types are UserError too, never TypeError or AttributeError.

Accepted values (README, "Python API"):
    dtype          "fp16"/"float16"/..., a bit width 16, 32 or 64 (bf16 has none: name it), a numpy
                   float dtype (np.float32), or a list/tuple of these
    formulas       None (all), an id or pattern (str), or a list/tuple of them
    formula_dirs   a folder or file (str or os.PathLike), or a list/tuple of them
    domain         None, "LO:HI" (eval/inputs.py's parse_domain), or (lo, hi): numbers (int, float,
                   Fraction, numpy scalars), number texts, or None for an open end
    value_range    "LO:HI" or (lo, hi), finite (analysis/tune.py's parse_range)
    settings       None, "NAME=VALUE", a dict {name: value} (int, Fraction, number text; a float stands
                   for its exact binary64 value), or a list of "NAME=VALUE" texts / (name, value) pairs
    inputs         None, a file (str or os.PathLike), "linspace:LO:HI:N", "normal:MU:SIGMA:N", or an
                   array-like of real numbers (numpy array, list, torch tensor on the CPU)
    samples, seed, jobs, steps, show   integers (int or numpy integer, not bool or float)
"""

from __future__ import annotations

import math
import numbers
import os
from contextlib import contextmanager
from fractions import Fraction

from mishaudit.errors import UserError

FLAGS = {"dtype": "--dtype", "formulas": "--formula", "formula": "--formula", "formula_dirs": "--formulas",
         "compute_dtype": "--compute-dtype", "ftz": "--ftz", "domain": "--domain", "samples": "--samples",
         "seed": "--seed", "libm": "--libm", "jobs": "--jobs", "settings": "--set", "inputs": "--inputs",
         "value_range": "--range", "steps": "--steps", "by": "--by", "param": "--param",
         "thresholds": "--thresholds", "margin": "--margin", "device": "--device", "kernel": "KERNEL",
         "show": "--top", "scheduler": "--scheduler", "exhaustive": "--exhaustive", "resume": "--resume",
         "model": "MODEL", "keep_fused": "--keep-fused", "out": "--out", "spec": "--spec", "budget": "--budget",
         "penalty": "--penalty", "tau": "--tau", "ident": "--id", "rounds": "--rounds"}

DEFAULT_SAMPLES = 1 << 16
DEFAULT_SEED = 0


def arg(name: str) -> str:
    """How messages name an argument: `samples= (--samples)`."""
    flag = FLAGS.get(name)
    return f"{name}= ({flag})" if flag else f"{name}="


def _shown(v) -> str:
    text = repr(v)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} (type {type(v).__name__})"


@contextmanager
def about(name: str):
    """Re-raise a UserError of a lower layer (which names the CLI flag) naming the argument too."""
    try:
        yield
    except UserError as exc:
        msg, flag = str(exc), FLAGS.get(name, "")
        if msg.startswith(arg(name)) or msg.startswith(f"{name}="):
            raise
        if flag and msg.startswith(flag + " "):
            msg = f"{arg(name)} {msg[len(flag) + 1:]}"
        elif flag and msg.startswith(f"unknown {flag} "):
            msg = f"{arg(name)}: unknown {msg[len(flag) + 9:]}"
        else:
            msg = f"{arg(name)}: {msg}"
        raise UserError(msg) from None


def integer(name: str, v, lo: int, what: str) -> int:
    """An int (or numpy integer) >= lo; UserError naming `name` otherwise."""
    import numpy as np

    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise UserError(f"{arg(name)} must be {what}, not {_shown(v)}")
    if v < lo:
        raise UserError(f"{said(name, int(v))}: give {what}")
    return int(v)


def number(name: str, v, lo: float, what: str, strict: bool = False) -> float:
    """A finite real (int or float, not bool) >= lo (> lo when strict); UserError naming `name` otherwise."""
    import math

    import numpy as np

    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise UserError(f"{arg(name)} must be {what}, not {_shown(v)}")
    v = float(v)
    if not math.isfinite(v) or v < lo or (strict and v == lo):
        raise UserError(f"{said(name, v)}: give {what}")
    return v


def said(name: str, v) -> str:
    """An argument with its value, both ways: `jobs=-1 (--jobs -1)`."""
    flag = FLAGS.get(name)
    return f"{name}={v!r} ({flag} {v})" if flag else f"{name}={v!r}"


def names(name: str, v, kind=str) -> tuple:
    """None -> (); one value -> (value,); a list or tuple -> its items; each of type `kind`."""
    if v is None:
        return ()
    items = (v,) if isinstance(v, (str, os.PathLike)) or not isinstance(v, (list, tuple)) else tuple(v)
    for item in items:
        if not isinstance(item, kind) or isinstance(item, bool):
            want = "a text" if kind is str else "a path (str or os.PathLike)"
            raise UserError(f"{arg(name)} must be {want} or a list of them, not {_shown(item)}")
    return items


def formats(name: str, v) -> list:
    """dtype -> [Format]: names, bit widths 16/32/64, numpy float dtypes, or a list of them."""
    import numpy as np

    from mishaudit.formats import FORMATS, get_format

    items = (v,) if not isinstance(v, (list, tuple)) else tuple(v)
    out = []
    for item in items:
        if isinstance(item, type(FORMATS[0])):
            out.append(item)
            continue
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            by_bits = {16: "fp16", 32: "fp32", 64: "fp64"}
            if int(item) not in by_bits:
                raise UserError(f"{arg(name)} {int(item)}: a bit width is 16, 32 or 64 (bf16 has no number: "
                                "give 'bf16')")
            item = by_bits[int(item)]
        elif not isinstance(item, str):
            try:
                dt = np.dtype(item)
            except TypeError:
                dt = None
            if dt is None or dt.kind != "f":
                raise UserError(f"{arg(name)} must be a format name (fp16, bf16, fp32, fp64), a bit width 16/32/64, "
                                f"a numpy float dtype, or a list of them, not {_shown(item)}")
            item = dt.name
        with about(name):
            out.append(get_format(item))
    if not out:
        raise UserError(f"{arg(name)} is empty: give one or more of fp16, bf16, fp32, fp64")
    return list(dict.fromkeys(out))


def _bound_text(name: str, v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise UserError(f"{arg(name)} bounds must be numbers (or None for an open end), not {_shown(v)}")
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, Fraction):
        return f"{v.numerator}/{v.denominator}"
    f = float(v)
    if math.isnan(f):
        raise UserError(f"{arg(name)} a bound is NaN; give numbers (inf and -inf are allowed)")
    return repr(f) if math.isfinite(f) else ("inf" if f > 0 else "-inf")


def pair_text(name: str, v) -> str:
    """(lo, hi) or [lo, hi] -> "LO:HI" (a str passes through); UserError for other types."""
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise UserError(f"{arg(name)} must be (lo, hi), two bounds, not {len(v)} values")
        return ":".join(_bound_text(name, b) for b in v)
    raise UserError(f"{arg(name)} must be (lo, hi) or a text 'LO:HI', not {_shown(v)}")


def domain(v):
    from mishaudit.eval.inputs import Domain, parse_domain

    if v is None or isinstance(v, Domain):
        return v if v is not None else Domain()
    text = pair_text("domain", v)
    with about("domain"):
        return parse_domain(text)


def value_range(v) -> tuple[float, float]:
    from mishaudit.analysis.tune import parse_range

    text = pair_text("value_range", v)
    with about("value_range"):
        return parse_range(text)


def _setting_value(k, val) -> str:
    if isinstance(val, str):
        return val
    if isinstance(val, bool) or not isinstance(val, numbers.Real):
        raise UserError(f"{arg('settings')} {k}: a value is a number or a number text, not {_shown(val)}")
    if isinstance(val, numbers.Integral):
        return str(int(val))
    q = Fraction(val) if math.isfinite(float(val)) else None
    if q is None:
        raise UserError(f"{arg('settings')} {k}: {val!r} is not finite; give a finite number")
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def settings(v) -> tuple:
    """settings -> ("name=value", ...) texts (lang/registry.py's parse_settings validates them)."""
    if v is None:
        return ()
    if isinstance(v, str):
        items = [v]
    elif isinstance(v, dict):
        items = [(k, val) for k, val in v.items()]
    elif isinstance(v, (list, tuple)):
        items = list(v)
    else:
        raise UserError(f"{arg('settings')} must be a dict {{name: value}}, a text 'NAME=VALUE' or a list of them, "
                        f"not {_shown(v)}")
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            out.append(f"{item[0]}={_setting_value(item[0], item[1])}")
        else:
            raise UserError(f"{arg('settings')} must be a dict {{name: value}}, a text 'NAME=VALUE' or a list of them; "
                            f"not {_shown(item)}")
    from mishaudit.lang.registry import parse_settings

    with about("settings"):
        parse_settings(out)
    return tuple(out)


def given(v, seed: int):
    """inputs -> eval/given.py's Given (None for None): a file or generator text, or an array-like."""
    import numpy as np

    from mishaudit.eval.given import Given, parse_inputs

    if v is None:
        return None
    if isinstance(v, (str, os.PathLike)):
        with about("inputs"):
            return parse_inputs(os.fspath(v), seed)
    if isinstance(v, (dict, set, bytes)):
        raise UserError(f"{arg('inputs')} must be a file, 'linspace:LO:HI:N', 'normal:MU:SIGMA:N' or an array of "
                        f"numbers, not {_shown(v)}")
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor
        v = v.detach().cpu().float().numpy() if str(getattr(v, "dtype", "")) == "torch.bfloat16" else v.detach().cpu().numpy()
    try:
        arr = np.asarray(v)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{arg('inputs')} is not an array of numbers ({exc}): give a numpy array or a list of "
                        "numbers") from None
    if arr.dtype.kind not in "fiu" or (arr.dtype.kind == "f" and arr.dtype.itemsize > 8):
        raise UserError(f"{arg('inputs')} must hold real numbers (float16/32/64 or integers), not {arr.dtype} values")
    flat = arr.ravel()
    if not len(flat):
        raise UserError(f"{arg('inputs')} is empty: give at least one value")
    exact = {}
    if flat.dtype.kind in "iu":  # integers beyond 2^53 are not binary64 values: keep them exactly
        big = np.flatnonzero(np.abs(flat.astype(np.float64)) > 2.0**53)
        exact = {int(i): Fraction(int(flat[i])) for i in big}
    return Given(flat.astype(np.float64), f"array of {len(flat)} {arr.dtype} values", exact)


def max_jobs() -> int:
    return os.cpu_count() or 1


def jobs(v) -> int:
    """jobs -> processes: 0 (all cores) or 1.., clamped to os.cpu_count() (the figures never depend on it)."""
    n = integer("jobs", v, 0, "a number of processes >= 1 (0 means all cores)")
    return min(n, max_jobs())


# --- what a sample costs -------------------------------------------------------------------------------

BYTES_PER_INPUT = 160  # the sample's values and bits, its exact reference (measured: compare --dtype fp32)
BYTES_PER_INPUT_PER_FORMULA = 120  # each formulation's own input set, reference slice, evaluation and errors


def finite_count(fmt) -> int:
    """The finite values of a binary format, both zeros counted: 2^bits - 2^p (fp32: 4,278,190,080)."""
    return (1 << fmt.bits) - (1 << fmt.p)


def available_memory() -> int | None:
    """Bytes of memory available now: psutil where installed, else /proc/meminfo's MemAvailable, else the
    physical memory (os.sysconf)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.0f} MB"


def check_samples(samples: int, fmts, n_formulas: int, sampled: bool = True) -> None:
    """samples within what each sampled format has and what the memory holds (before anything is allocated)."""
    if not sampled:
        return
    for fmt in fmts:
        if fmt.bits == 16:
            continue
        have = finite_count(fmt)
        if samples > have:
            raise UserError(f"{said('samples', samples)} is more than {fmt.name} has finite values ({have:,}): give "
                            "at most that" + (" (or exhaustive= (--exhaustive) for every one)" if fmt.name == "fp32" else ""))
    if not any(f.bits != 16 for f in fmts):
        return
    check_memory(samples, n_formulas, said("samples", samples))


def check_memory(count: int, n_formulas: int, what: str) -> None:
    """UserError when `count` inputs of `n_formulas` formulations cannot fit in the memory available."""
    per = BYTES_PER_INPUT + BYTES_PER_INPUT_PER_FORMULA * max(1, n_formulas)
    need = count * per
    mem = available_memory()
    if mem is not None and need > mem:
        raise UserError(f"{what} needs about {_gb(need)} of memory ({per} bytes per input for "
                        f"{max(1, n_formulas)} formulation(s): {BYTES_PER_INPUT} for the sample and its exact reference, "
                        f"{BYTES_PER_INPUT_PER_FORMULA} per formulation), and {_gb(mem)} is available: give at most "
                        f"{mem // per:,}")


def check_sample_options(fmts, samples: int, seed: int, inputs, exhaustive: bool) -> None:
    """samples= and seed= size and seed the fp32/fp64 sample: their defaults are always accepted; another
    value where no format is sampled (fp16/bf16 alone, inputs=) is an error, not ignored."""
    if inputs is not None:
        if samples != DEFAULT_SAMPLES:
            raise UserError(f"{said('samples', samples)} sizes the fp32/fp64 sample; {arg('inputs')} gives the "
                            "values: drop --samples")
        if seed != DEFAULT_SEED and not (isinstance(inputs, str) and inputs.startswith("normal:")):
            raise UserError(f"{said('seed', seed)} seeds a sample or inputs='normal:...'; these inputs take none: "
                            "drop --seed")
        return
    if all(f.bits == 16 for f in fmts):
        for name, v, default in (("samples", samples, DEFAULT_SAMPLES), ("seed", seed, DEFAULT_SEED)):
            if v != default:
                raise UserError(f"{said(name, v)} sets the fp32/fp64 sample; fp16 and bf16 use every input: drop "
                                f"{name} (its default, {default}, is accepted)")
