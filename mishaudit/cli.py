"""The command line: `mishaudit list`, `mishaudit compare`."""

from __future__ import annotations

import os
import sys

import click

from .errors import UserError


class _Group(click.Group):
    """Turns UserError (and click's usage errors) into one line on stderr and exit code 2."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except UserError as exc:
            click.echo(f"mishaudit: error: {exc}", err=True)
            sys.exit(2)
        except click.exceptions.Abort:
            click.echo("mishaudit: interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"mishaudit: error: {exc.format_message()} (see --help)", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("mishaudit: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug of ours: one line, exit 3 (1 means a gate limit broke)
            where = _innermost(exc)
            click.echo(f"mishaudit: internal error: {type(exc).__name__}: {exc} ({where}); this is a bug in "
                       "mishaudit: please report it with the command line that caused it", err=True)
            sys.exit(3)


def _innermost(exc: BaseException) -> str:
    """file:line of the innermost frame of mishaudit's own code in the traceback."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "mishaudit" in f.filename]
    f = (frames or traceback.extract_tb(exc.__traceback__) or [None])[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno}" if f else "no traceback"


@click.group(cls=_Group)
@click.version_option(package_name="mishaudit")
def main():
    """Audit the numerical accuracy of formulations of Mish, mish(x) = x*tanh(log1p(exp(x))).

    \b
    Example:
      mishaudit compare --dtype fp16
    """


def _console():
    """A rich console for stdout; a pipe or file gets 160 columns instead of being squeezed into 80."""
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=160)


_formulas_opt = click.option("--formulas", "formula_dirs", multiple=True, metavar="DIR",
                             help="Also load the .fpcore files in DIR (repeatable).")


_libm_opt = click.option(
    "--libm", "model", type=click.Choice(["cr", "numpy"]), default="cr", show_default=True,
    help="Elementary functions: cr = correctly rounded in the working format (the same bits on every "
         "machine); numpy = numpy's own kernels (figures hold for this CPU only).")


def _audit_options(f):
    for opt in reversed([
        click.option("--dtype", "dtypes", multiple=True, default=("fp16",), show_default=True, metavar="FMT",
                     help="Format: fp16, bf16, fp32, fp64 (repeatable)."),
        click.option("--formula", "formula_ids", multiple=True, metavar="ID", help="Formulation id (repeatable; default all)."),
        _formulas_opt,
        click.option("--compute-dtype", metavar="FMT", help="Round every operation to FMT, the result once to --dtype."),
        click.option("--ftz", is_flag=True, help="Flush subnormal inputs and results to zero."),
        click.option("--domain", metavar="LO:HI", help="Only inputs x with LO <= x <= HI."),
        click.option("--samples", default=1 << 16, show_default=True, type=click.IntRange(min=1),
                     help="Sample size for fp32/fp64."),
        click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
                     help="Seed of the fp32/fp64 sample (a non-negative integer)."),
        _libm_opt,
    ]):
        f = opt(f)
    return f


def _exhaustive_options(f):
    for opt in reversed([
        click.option("--exhaustive", is_flag=True,
                     help="fp32: stream every finite input instead of a sample (checkpointed)."),
        click.option("--jobs", default=0, show_default="all cores", help="Processes for --exhaustive."),
        click.option("--resume", is_flag=True, help="--exhaustive: continue an interrupted sweep from its checkpoint."),
    ]):
        f = opt(f)
    return f


def _check_exhaustive(exhaustive: bool, jobs: int, resume: bool, fmts=()) -> None:
    if jobs < 0:
        raise UserError(f"--jobs {jobs}: give a number of processes >= 1 (0 means all cores)")
    if resume and not exhaustive:
        raise UserError("--resume continues an --exhaustive sweep: add --exhaustive (and --dtype fp32)")
    if exhaustive and any(f.name == "fp64" for f in fmts):
        raise UserError("--exhaustive: fp64 has 2^64 inputs; use it with --dtype fp32 (fp16/bf16 are always exhaustive)")


def _parse_common(dtypes, compute_dtype, domain, formula_dirs, formula_ids):
    from .formats import get_format
    from .inputs import parse_domain
    from .registry import load_registry, select

    fmts = list(dict.fromkeys(get_format(d) for d in dtypes))
    comp = get_format(compute_dtype) if compute_dtype else None
    dom = parse_domain(domain)
    return fmts, comp, dom, select(load_registry(formula_dirs), formula_ids)


def _emit(out_format: str, output, print_table, texts: dict) -> None:
    """Print or atomically write: a rich table (print_table(console)) or one of `texts` (name -> thunk)."""
    from .iofiles import write_output

    if out_format == "table":
        if output:
            from rich.console import Console

            with open(os.devnull, "w") as sink:
                console = Console(record=True, width=160, file=sink)
                print_table(console)
            write_output(output, console.export_text())
        else:
            print_table(_console())
        return
    text = texts[out_format]()
    if output:
        write_output(output, text)
    else:
        click.echo(text, nl=False)


@main.command("list")
@_formulas_opt
def list_cmd(formula_dirs):
    """List the registered formulations: id, description, source.

    \b
    Example:
      mishaudit list --formulas ./my-formulas
    """
    from rich.table import Table

    from .registry import load_registry

    reg = load_registry(formula_dirs)
    t = Table(title=f"{len(reg)} registered formulations", title_justify="left")
    for c in ("id", "description", "source"):
        t.add_column(c, overflow="fold")
    for k in sorted(reg):
        t.add_row(k, reg[k].description, reg[k].source)
    _console().print(t)


@main.command()
@_audit_options
@click.option("--format", "out_format", type=click.Choice(["table", "markdown", "csv", "json"]), default="table",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), help="Write to FILE (atomically) instead of stdout.")
@click.option("--sort", "sort_col", metavar="COLUMN", help="Sort by COLUMN, worst first (default: nonfinite, max_ulp).")
@click.option("--no-cache", is_flag=True, help="Recompute the mpmath reference; do not read or write the cache.")
@_exhaustive_options
def compare(dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, out_format, output,
            sort_col, no_cache, exhaustive, jobs, resume):
    """Error of every formulation against the exact mish, per format.

    fp16 and bf16: every finite input. fp32 and fp64: a seeded stratified
    sample (every binade of both signs, plus the neighbourhood of every
    threshold and of exp's overflow and underflow points).

    \b
    Example:
      mishaudit compare --dtype fp16 --dtype bf16 --formula softplus-tanh --compute-dtype fp32
    """
    from . import render
    from .audit import run_audit
    from .iofiles import check_writable

    if sort_col is not None:
        render.sort_rows([], sort_col)  # validates the column name before any work
    _check_exhaustive(exhaustive, jobs, resume)
    if output:
        check_writable(output)
    fmts, comp, dom, formulas = _parse_common(dtypes, compute_dtype, domain, formula_dirs, formula_ids)
    _check_exhaustive(exhaustive, jobs, resume, fmts)
    sampled = [f for f in fmts if not (exhaustive and f.name == "fp32")]
    audit = run_audit(formulas, sampled, comp, ftz, dom, samples, seed, use_cache=not no_cache,
                      progress=sys.stderr.isatty(), model=model)
    if exhaustive and len(sampled) < len(fmts):
        audit.rows += _exhaustive_rows(formulas, comp, ftz, dom, jobs, resume, audit, model)
    rows = render.sort_rows(audit.rows, sort_col)
    _emit(out_format, output, lambda console: render.print_table(rows, audit.specials, audit.meta, console),
          {"markdown": lambda: render.to_markdown(rows, audit.specials), "csv": lambda: render.to_csv(rows),
           "json": lambda: render.to_json(rows)})


def _run_sweep(sweep, jobs: int, resume: bool):
    """Run a sweep with a progress bar (chunks, inputs/s, time left); Ctrl-C says how far it got."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .sweep import run_sweep

    state = {"chunks": 0, "inputs": 0, "start": None}
    with Progress(TextColumn(f"exhaustive fp32 {sweep.mode}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} chunks"), TextColumn("{task.fields[rate]}"),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                  disable=not sys.stderr.isatty()) as prog:
        task = prog.add_task("sweep", total=sweep.nchunks, rate="")

        def progress(done, total, inputs):
            if state["start"] is None:
                state["start"] = (time.perf_counter(), inputs)
            t, i0 = state["start"]
            rate = (inputs - i0) / max(time.perf_counter() - t, 1e-9)
            state.update(chunks=done, inputs=inputs)
            prog.update(task, completed=done, rate=f"{rate / 1e6:.2f} M inputs/s" if inputs > i0 else "")

        try:
            return run_sweep(sweep, jobs=jobs, resume=resume, progress=progress)
        except KeyboardInterrupt:
            click.echo(f"mishaudit: interrupted after {state['chunks']} of {sweep.nchunks} chunks "
                       f"({state['inputs']:,} inputs); run the same command with --resume to continue", err=True)
            sys.exit(130)


def _exhaustive_rows(formulas, comp, ftz, dom, jobs, resume, audit, model) -> list:
    """Stream every fp32 input (mishaudit.sweep) into the compare rows."""
    import time

    from .audit import approx_row, check_specials, policy_for
    from .formats import FP32
    from .sweep import Sweep, summary_row

    policy = policy_for(FP32, comp, ftz, model)
    sweep = Sweep(formulas, policy, dom)
    t0 = time.perf_counter()
    job = _run_sweep(sweep, jobs, resume)
    merged = job.accs
    audit.meta.setdefault("reference", {})["fp32"] = {"inputs": int(next(iter(merged.values())).counts[0]),
                                                      "mpmath_fallback": job.fallback,
                                                      "seconds": time.perf_counter() - t0}
    rows = []
    for f in formulas:
        row = {"formula": f.id, "dtype": "fp32", "compute_dtype": policy.work.name, "ftz": ftz, "libm": model,
               "strategy": "exhaustive"}
        row.update(summary_row(merged[f.id]))
        row.update(approx_row(None))
        sp = check_specials(f, policy)
        row["specials_wrong"] = sum(not s["ok"] for s in sp)
        audit.specials += sp
        rows.append(row)
    return rows


@main.command()
@_audit_options
@click.option("--format", "out_format", type=click.Choice(["table", "markdown", "csv", "json"]), default="table",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), help="Write to FILE (atomically) instead of stdout.")
@_exhaustive_options
def overflow(dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, out_format, output,
             exhaustive, jobs, resume):
    """Which intermediate overflows, turns NaN, underflows, goes subnormal or absorbs, for which inputs.

    Intervals are exact: every input for fp16/bf16 (and fp32 with --exhaustive);
    for fp32/fp64 every edge is found by bisection on the format's lattice and
    only interiors are sampled. Each interval is marked harmful
    (the result is nonfinite or > 1 ulp off in it) or absorbed, and the inputs
    with large errors are attributed to the operation with the largest local error.

    \b
    Example:
      mishaudit overflow --dtype fp16 --formula exp-rational --formula pytorch-75251
    """
    from . import render_overflow as ro
    from .audit import policy_for
    from .iofiles import check_writable
    from .overflow import overflow_map

    _check_exhaustive(exhaustive, jobs, resume)
    if output:
        check_writable(output)
    fmts, comp, dom, formulas = _parse_common(dtypes, compute_dtype, domain, formula_dirs, formula_ids)
    _check_exhaustive(exhaustive, jobs, resume, fmts)
    maps, attributions = [], []
    for fmt in fmts:
        policy = policy_for(fmt, comp, ftz, model)
        if exhaustive and fmt.name == "fp32":
            from .sweep import Sweep

            job = _run_sweep(Sweep(formulas, policy, dom, mode="overflow"), jobs, resume)
            for f in formulas:
                m, a = job.result(f)
                maps += m
                attributions.append(a)
            continue
        for f in formulas:
            m, a = overflow_map(f, policy, dom, samples, seed)
            maps += m
            attributions.append(a)
    _emit(out_format, output, lambda console: ro.print_overflow(maps, attributions, console),
          {"markdown": lambda: ro.to_markdown(maps, attributions), "csv": lambda: ro.to_csv(maps),
           "json": lambda: ro.to_json(maps, attributions)})


@main.command()
@_audit_options
@click.option("--kind", type=click.Choice(["error", "overflow", "cdf", "cost"]), default="error", show_default=True,
              help="error: ulp error against x; overflow: events per intermediate; cdf: error distribution; "
                   "cost: accuracy against measured speed.")
@click.option("--overlay", is_flag=True, help="error: draw the chosen formulations on one axes instead of small multiples.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Figure file; .png or .svg.")
@click.option("--no-cache", is_flag=True, help="Recompute the mpmath reference; do not read or write the cache.")
def plot(dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, kind, overlay, out_path,
         no_cache):
    """Draw one figure (PNG or SVG) for the first --dtype.

    \b
    Example:
      mishaudit plot --dtype fp16 --formula softplus-tanh --formula exp-rational --overlay --out err.png
    """
    from pathlib import Path

    from . import plots
    from .iofiles import atomic_write_bytes, check_writable
    from .report import collect

    if Path(out_path).suffix.lower() not in (".png", ".svg"):
        raise UserError(f"--out {out_path}: give a .png or .svg file name")
    check_writable(out_path, "--out")
    fmts, comp, dom, formulas = _parse_common(dtypes[:1], compute_dtype, domain, formula_dirs, formula_ids)
    if kind == "overflow" and len(formulas) != 1:
        raise UserError("--kind overflow draws one formulation: give exactly one --formula")
    _, per = collect(formulas, fmts, comp, ftz, dom, samples, seed, use_cache=not no_cache, model=model)
    d = per[fmts[0].name]
    name = fmts[0].name
    fig = {"error": lambda: plots.error_figure(d["series"], name, fmts[0].max, overlay=overlay),
           "overflow": lambda: plots.overflow_figure(d["maps"], formulas[0].id, name, fmts[0].max),
           "cdf": lambda: plots.cdf_figure(d["series"], name),
           "cost": lambda: plots.cost_figure(d["cost"], name)}[kind]()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(out_path).suffix[1:].lower(), dpi=110)
    atomic_write_bytes(out_path, buf.getvalue())
    click.echo(f"wrote {out_path}", err=True)


@main.command()
@_audit_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Report folder (replaced atomically).")
@click.option("--no-cache", is_flag=True, help="Recompute the mpmath reference; do not read or write the cache.")
def report(dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, out_dir, no_cache):
    """Write a report folder: index.md, self-contained index.html, PNG/SVG figures, CSV tables, meta.json.

    \b
    Example:
      mishaudit report --dtype fp16 --dtype bf16 --dtype fp32 --out reports/baseline
    """
    from pathlib import Path

    from .report import collect, report_meta, write_report

    parent = Path(out_dir).resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"cannot write --out {out_dir}: folder {parent} is missing or not writable; create it first")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UserError(f"--out {out_dir} is a file: give a folder name")
    fmts, comp, dom, formulas = _parse_common(dtypes, compute_dtype, domain, formula_dirs, formula_ids)
    audit, per = collect(formulas, fmts, comp, ftz, dom, samples, seed, use_cache=not no_cache,
                         progress=sys.stderr.isatty(), model=model)
    cmd = "mishaudit " + " ".join(sys.argv[1:])
    write_report(Path(out_dir), audit, per, report_meta(audit.meta, cmd))
    click.echo(f"wrote {out_dir}/index.html and index.md", err=True)


@main.command()
@click.option("--thresholds", "thresholds_path", default="reports/thresholds.toml", show_default=True, metavar="FILE",
              help="The thresholds file (TOML) to check.")
@_formulas_opt
@click.option("--junit", metavar="FILE", type=click.Path(dir_okay=False), help="Also write JUnit XML, one test case per limit.")
@click.option("--format", "out_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--no-cache", is_flag=True, help="Recompute the mpmath reference; do not read or write the cache.")
def check(thresholds_path, formula_dirs, junit, out_format, no_cache):
    """Fail (exit 1) when a formulation's error breaks a limit of the thresholds file.

    Runs exactly the audits the file names, prints every limit with its measured
    value and verdict, and lists the limits that could be tightened. Exit codes:
    0 all limits hold, 1 a limit is broken, 2 bad input.

    \b
    Example:
      mishaudit check --thresholds reports/thresholds.toml --junit check.xml
    """
    import json
    import time

    from rich.table import Table

    from .audit import run_audit
    from .formats import get_format
    from .gate import judge, junit_xml
    from .inputs import Domain
    from .iofiles import atomic_write_bytes, check_writable
    from .libm import numpy_dispatch
    from .registry import load_registry
    from .thresholds import read_thresholds

    t0 = time.perf_counter()
    reg = load_registry(formula_dirs)
    th = read_thresholds(thresholds_path, set(reg))
    if junit:
        check_writable(junit, "--junit")
    verdicts = []
    modes = list(dict.fromkeys(e.mode for e in th.entries))
    here = numpy_dispatch()
    for e in th.entries:
        if e.libm == "numpy" and e.numpy_dispatch and e.numpy_dispatch != here:
            click.echo(f"mishaudit: warning: {e.label()} (line {e.line}) was measured with {e.numpy_dispatch}; "
                       f"this machine has {here}: numpy's kernels differ between CPUs, so this limit may pass or "
                       "fail for that reason alone (libm = \"cr\" gives the same verdict everywhere)", err=True)
    for mode in modes:
        entries = [e for e in th.entries if e.mode == mode]
        dtype, compute, ftz, dom, samples, seed, model = mode
        fids = list(dict.fromkeys(e.formula for e in entries))
        audit = run_audit([reg[f] for f in fids], [get_format(dtype)], get_format(compute), ftz,
                          Domain(*dom) if dom else Domain(), samples, seed, use_cache=not no_cache,
                          progress=sys.stderr.isatty(), with_formula_error=False, model=model)
        rows = {r["formula"]: r for r in audit.rows}
        for e in entries:
            verdicts += judge(e, rows[e.formula])
    failed = [v for v in verdicts if not v.ok]
    if junit:
        try:
            atomic_write_bytes(junit, junit_xml(verdicts, time.perf_counter() - t0))
        except OSError as exc:
            raise UserError(f"cannot write --junit {junit}: {exc.strerror}; choose a writable location") from None
    if out_format == "json":
        click.echo(json.dumps([{"formula": v.entry.formula, "dtype": v.entry.dtype, "compute_dtype": v.entry.compute_dtype,
                                "ftz": v.entry.ftz, "libm": v.entry.libm,
                                "domain": list(v.entry.domain) if v.entry.domain else None,
                                "measure": v.measure, "measured": v.measured, "limit": v.limit, "ok": v.ok,
                                "can_tighten": v.slack} for v in verdicts], indent=2))
    else:
        console = _console()
        t = Table(title=f"mishaudit check: {thresholds_path}", title_justify="left")
        for c in ("audit", "measure", "measured", "limit", "verdict"):
            t.add_column(c, justify="right" if c in ("measured", "limit") else "left")
        from .gate import _fmt
        from .thresholds import AT_LEAST

        for v in verdicts:
            rel = ">=" if v.measure in AT_LEAST else "<="
            t.add_row(v.entry.label(), v.measure, _fmt(v.measured), f"{rel} {_fmt(v.limit)}",
                      "[green]ok[/]" if v.ok else "[bold red]FAILED[/]")
        console.print(t)
        slack = [v for v in verdicts if v.slack]
        if slack:
            console.print(f"{len(slack)} limit(s) could be tightened (measured more than 10% better), e.g.:")
            for v in slack[:10]:
                console.print("  " + v.line())
        console.print(f"{len(verdicts) - len(failed)} passed, {len(failed)} failed")
    for v in failed:
        click.echo("mishaudit: check failed: " + v.line(), err=True)
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the thresholds file.")
@_audit_options
@click.option("--margin", default=0.05, show_default=True, help="Relative slack added to each measured value.")
@click.option("--no-cache", is_flag=True, help="Recompute the mpmath reference; do not read or write the cache.")
def baseline(out_path, dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, margin,
             no_cache):
    """Write a thresholds file from a current run, so a project adopts the gate in one command.

    \b
    Example:
      mishaudit baseline --dtype fp16 --dtype bf16 --formulas ./mine --formula my-mish --out thresholds.toml
    """
    from .audit import run_audit
    from .iofiles import check_writable, write_output
    from .thresholds import baseline_text

    if not (0 <= margin < 1):
        raise UserError(f"--margin {margin}: give a fraction in [0, 1), e.g. 0.05")
    check_writable(out_path, "--out")
    fmts, comp, dom, formulas = _parse_common(dtypes, compute_dtype, domain, formula_dirs, formula_ids)
    audit = run_audit(formulas, fmts, comp, ftz, dom, samples, seed, use_cache=not no_cache,
                      progress=sys.stderr.isatty(), with_formula_error=False, model=model)
    command = "mishaudit baseline " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "mishaudit baseline"
    from .libm import numpy_dispatch

    text = baseline_text(audit.rows, margin, command, samples, seed, dom, numpy_dispatch())
    write_output(out_path, text, "--out")
    click.echo(f"wrote {len(audit.rows)} limits to {out_path}", err=True)


def _examples_last(group) -> None:
    """Move each help text's worked example after the options, so --help ends with it."""
    for cmd in [group, *group.commands.values()]:
        head, sep, example = (cmd.help or "").partition("\b\n    Example:")
        if sep:
            cmd.help = head.rstrip()
            cmd.epilog = "\b\nExample:" + "\n".join(line[4:] if line.startswith("    ") else line
                                                   for line in example.splitlines())


_examples_last(main)

if __name__ == "__main__":
    main()
