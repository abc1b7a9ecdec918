"""The command line: a thin edge over the Python API (api.py) and the renderers (output/).

Conventions, the same in every command: `--output`/`--out` names the file (or folder) written,
atomically; `--format` picks table, markdown, csv or json where a table is printed; every option
has help; an option that does not apply is an error, not ignored. Exit codes: 0 ok, 1 a gate
limit broken, 2 bad input (one line naming the problem and the fix), 3 an internal error (one
line asking for a report), 130 interrupted.
"""

from __future__ import annotations

import os
import sys

import click

from mishaudit.errors import UserError
from mishaudit.eval.libm import MODELS

FORMATS = ("table", "markdown", "csv", "json")


class _Group(click.Group):
    """The one place where a command's end is decided: UserError and click's usage errors are one line
    on stderr and exit 2; so is a failing environment (a full disk, a read-only folder, standard output
    that cannot be written: an OSError); a closed pipe on standard output (`| head`) ends quietly, exit
    141 as if killed by SIGPIPE; Ctrl-C (SIGINT) is one line, `mishaudit: interrupted`, exit 130, with
    the worker processes stopped and nothing half-written (files.py renames nothing into place once it
    has been seen); anything else is a bug of ours: one line, exit 3. Never a traceback."""

    def main(self, *args, **kwargs):
        from mishaudit.files import check_interrupt

        kwargs["standalone_mode"] = False
        real_stdout, sys.stdout = sys.stdout, _GuardedStdout(sys.stdout)
        old_sigint = _catch_sigint()
        try:
            ended = None
            try:
                from mishaudit.eval.ftz import require_ieee

                require_ieee()  # a process left flushing subnormals (FTZ/DAZ) by another library is refused
                result = super().main(*args, **kwargs)
            except SystemExit as exc:  # check's exit 1, the sweep's own interrupted message
                ended, result = exc, None
            sys.stdout.flush()  # a full disk on standard output shows here, not at the interpreter's exit
            check_interrupt()  # a Ctrl-C swallowed on the way (in a finalizer) still ends the command
            if ended is not None:
                raise ended
            return result
        except UserError as exc:
            _fail(f"mishaudit: error: {exc}", 2)
        except (click.exceptions.Abort, KeyboardInterrupt, _Interrupted):
            from mishaudit.files import note_interrupt

            note_interrupt()  # (also for an interrupt that came before our handler was in place)
            if old_sigint is not None:  # from here on the command only ends: Ctrl-C again is ignored
                import signal

                signal.signal(signal.SIGINT, signal.SIG_IGN)
            if _PROCESS:  # the command's own process (run()): its one line, exit 130, and nothing after
                _exit_now(("\n" if _isatty(sys.stderr) else "") + "mishaudit: interrupted", 130, real_stdout)
            _fail(("\n" if _isatty(sys.stderr) else "") + "mishaudit: interrupted", 130)  # after the terminal's ^C
        except click.ClickException as exc:
            _fail(f"mishaudit: error: {exc.format_message()} (see --help)", 2)
        except _StdoutClosed:  # the reader went away (| head): nothing to say, exit as SIGPIPE would
            _silence(real_stdout)
            sys.exit(141)
        except OSError as exc:
            if getattr(exc, "mishaudit_stdout", False) or exc.errno in _ENVIRONMENT_ERRNOS:
                if getattr(exc, "mishaudit_stdout", False):
                    _silence(real_stdout)
                _fail(f"mishaudit: error: {_environment_error(exc)}", 2)
            _fail(_bug_line(exc), 3)
        except MemoryError:
            _fail("mishaudit: error: out of memory; give a smaller --samples or --domain, fewer formulations, "
                  "or run it where there is more memory", 2)
        except Exception as exc:  # a bug of ours: one line, exit 3 (1 means a gate limit broke)
            _fail(_bug_line(exc), 3)
        finally:
            sys.stdout = real_stdout
            if old_sigint is not None:
                import signal

                from mishaudit.files import interrupted

                # interrupted: the command is ending with its one line; a Ctrl-C still pending or sent
                # again is ignored, not given to Python's default handler (a KeyboardInterrupt traceback
                # during shutdown, death by SIGINT instead of exit 130)
                signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted() else old_sigint)


    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # past click's own handler, which prints an empty line first
            raise _Interrupted() from None


class _Interrupted(BaseException):
    """Ctrl-C on its way from a command to _Group.main."""


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _bug_line(exc: BaseException) -> str:
    return (f"mishaudit: internal error: {type(exc).__name__}: {exc} ({_innermost(exc)}); this is a bug "
            "in mishaudit: please report it with the command line that caused it")


_PROCESS = False  # True when this process is the command (run()), not a caller of main() such as a test


def run():
    """The `mishaudit` command: main() in a process of its own."""
    global _PROCESS
    _PROCESS = True
    main()


def _exit_now(line: str, code: int, real_stdout) -> None:
    """An interrupted command's end: what it printed flushed, its one line, then exit `code` at once.
    Every cleanup of the command has run (its finally blocks are inside) and its worker processes are
    terminated; what is skipped is the interpreter's shutdown, where a Ctrl-C that cut a library short (numba compiling, say) would print
    that library's complaints or end the process by SIGINT instead of `code`."""
    if "multiprocessing" in sys.modules:  # workers of a pool whose generator was never closed
        import multiprocessing

        for child in multiprocessing.active_children():
            try:
                child.terminate()
            except (OSError, ValueError, AttributeError):
                pass
    for stream in (sys.stdout, real_stdout):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        click.echo(line, err=True)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def _fail(line: str, code: int):
    """One line on stderr (even a broken stderr ends the command quietly), then exit `code`."""
    try:
        click.echo(line, err=True)
    except (OSError, ValueError):
        pass
    sys.exit(code)


def _errnos(*names: str) -> frozenset:
    import errno

    return frozenset(getattr(errno, n) for n in names if hasattr(errno, n))


# OSErrors that say the machine is in the way (space, permissions, limits, a failing device), not a bug
_ENVIRONMENT_ERRNOS = _errnos("ENOSPC", "EDQUOT", "EFBIG", "EIO", "EROFS", "EACCES", "EPERM", "EMFILE", "ENFILE",
                              "ENOMEM", "EPIPE", "ENXIO", "ENODEV", "ESTALE", "ETXTBSY", "ENOLCK")


def _environment_error(exc: OSError) -> str:
    """'cannot write WHERE: WHY; FIX' for an OSError of the environment."""
    from mishaudit.files import fix_for

    why = exc.strerror or str(exc)
    if getattr(exc, "mishaudit_stdout", False):
        return f"cannot write to standard output: {why}; {fix_for(exc)}"
    where = f" {exc.filename}" if exc.filename else f" (at {_innermost(exc)})"
    return f"cannot use{where}: {why}; {fix_for(exc)}"


class _StdoutClosed(OSError):
    """The reader of standard output went away (EPIPE). Neither a BrokenPipeError nor errno EPIPE, so that
    no library on the way (rich and click exit 1 on those) decides the exit code: _Group.main ends quietly."""

    mishaudit_stdout = True


class _GuardedStdout:
    """sys.stdout while a command runs: the same stream, but an OSError writing it (a full disk, a
    closed pipe) is marked `mishaudit_stdout`, so _Group.main can name standard output as the cause."""

    def __init__(self, stream):
        self._stream = stream

    def _mark(self, exc: OSError):
        if isinstance(exc, BrokenPipeError):
            return _StdoutClosed(exc.strerror)  # no errno: click, too, would exit 1 on EPIPE
        exc.mishaudit_stdout = True
        return exc

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._mark(exc) from None

    def flush(self):
        try:
            return self._stream.flush()
        except OSError as exc:
            raise self._mark(exc) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _silence(stream) -> None:
    """Point standard output at /dev/null, so the interpreter's last flush of what could not be written
    prints no 'Exception ignored' at exit."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, stream.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass


def _catch_sigint():
    """Ctrl-C raises KeyboardInterrupt in this process and is remembered (files.note_interrupt), so that
    nothing is published even where the exception is swallowed; worker processes forked from here
    ignore it (their parent stops them). Returns the handler to restore (None when not installed)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    from mishaudit.files import interrupted, note_interrupt

    pid = os.getpid()

    def on_sigint(signum, frame):
        if os.getpid() != pid:  # a forked worker before its initializer ran: the parent handles it
            return
        if interrupted():  # the command is already ending: a second Ctrl-C must not cut its one line short
            return
        note_interrupt()
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGINT, on_sigint)
    except (ValueError, OSError):
        return None


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


def _options(*opts):
    def deco(f):
        for opt in reversed(opts):
            f = opt(f)
        return f

    return deco


FORMULAS_DIRS = click.option("--formulas", "formula_dirs", multiple=True, metavar="DIR",
                             help="Also load the .fpcore files in DIR (repeatable).")
NO_CACHE = click.option("--no-cache", is_flag=True, help="Recompute the exact reference; do not read or write the cache.")
DTYPES = click.option("--dtype", "dtypes", multiple=True, default=("fp16",), show_default=True, metavar="FMT",
                      help="Format: fp16, bf16, fp32, fp64 (repeatable).")
COMPUTE = click.option("--compute-dtype", metavar="FMT",
                       help="Round every operation to FMT, the result once to --dtype. FMT must hold every --dtype "
                            "value (at least its precision and exponent range: fp16 or bf16 in fp32, anything in "
                            "fp64); FMT = --dtype means native.")
FTZ = click.option("--ftz", type=click.Choice(["after", "before"]), is_flag=False, flag_value="after", default=None,
                   metavar="[after|before]",
                   help="Flush to zero: subnormal inputs and constants read as zero (DAZ) and tiny results flushed to "
                        "a zero of their sign (FTZ). after (a bare --ftz): tininess detected after rounding, as x86 "
                        "MXCSR.FTZ (|r| below 2^emin once rounded to p bits with an unbounded exponent); before: "
                        "|r| < 2^emin even where r rounds up to 2^emin (ARM, some GPUs). r is the exact result of "
                        "each operation; for elementary functions the operand is flushed, then the cr result is "
                        "flushed by the same rule applied to the function's exact value (numpy/torch: their "
                        "result, where subnormal).")
DOMAIN = click.option("--domain", metavar="LO:HI", help="Only inputs x with LO <= x <= HI.")
SAMPLES = click.option("--samples", default=1 << 16, show_default=True, type=int,
                       help="Sample size for fp32/fp64, at least 1, at most the format's finite values (fp32: "
                            "4,278,190,080) and what memory holds (about 280 bytes per input for one formulation, "
                            "+120 per further one). fp16 and bf16 use every input: only the default is accepted "
                            "for them alone.")
SEED = click.option("--seed", default=0, show_default=True, type=int,
                    help="Seed of the fp32/fp64 sample (a non-negative integer; fp16/bf16 alone: only 0).")
LIBM = click.option("--libm", "model", type=click.Choice(list(MODELS)), default="cr", show_default=True,
                    help="Elementary functions: cr = correctly rounded in the working format (the same bits on "
                         "every machine); glibc = the C library's expf, logf, ... as a C program calls them; numpy "
                         "= numpy's own kernels; torch = torch's CPU functions (all but cr: figures hold for this "
                         "machine only).")
SET = click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
                   help="Set a parameter of the formulations declaring it (:mishaudit-params), e.g. --set "
                        "threshold=15 (an exact number; repeatable; `mishaudit list` shows them).")
def _audit_options(dtypes):
    return _options(
        dtypes,
        click.option("--formula", "formula_ids", multiple=True, metavar="ID",
                     help="Formulation id (repeatable; default all)."),
        FORMULAS_DIRS, COMPUTE, FTZ, DOMAIN, SAMPLES, SEED, LIBM, NO_CACHE,
        click.option("--device", default="cpu", show_default=True, metavar="DEV",
                     help="Where torch kernels (torch:mish, ...) run: cpu, or cuda where CUDA is present."),
        SET,
    )


AUDIT = _audit_options(DTYPES)
ONE_DTYPE = click.option("--dtype", "dtypes", multiple=True, default=("fp16",), show_default=True, metavar="FMT",
                         help="Format, one: fp16, bf16, fp32, fp64.")
JOBS = click.option("--jobs", default=0, type=int,
                    help="Processes for --exhaustive: 0 (default) all cores, or 1 to N; more than the cores "
                         "(os.cpu_count()) are clamped to them (the figures never depend on it).")
SWEEP = _options(
    click.option("--exhaustive", is_flag=True,
                 help="fp32: stream every finite input of the domain instead of a sample (checkpointed)."),
    JOBS,
    click.option("--resume", is_flag=True, help="--exhaustive: continue an interrupted sweep from its checkpoint."),
    click.option("--scheduler", metavar="ADDRESS|local:N",
                 help="--exhaustive: run the chunks on a Dask cluster, a scheduler's address (tcp://host:8786) or "
                      "local:N for N worker processes here (needs mishaudit[dask])."),
)


EXHAUSTIVE_KEPT = click.option("--exhaustive", is_flag=True,
                                help="fp32: every finite input of --domain instead of a sample; the errors are "
                                     "kept to draw them, so the domain's inputs must fit in memory (else one line "
                                     "says how much they need).")

INPUTS = click.option("--inputs", metavar="FILE|linspace:LO:HI:N|normal:MU:SIGMA:N",
                      help="Audit exactly these values (rounded to --dtype, duplicates counted): a .npy or text "
                           "file of numbers, evenly spaced ones, or seeded normal deviates (--seed).")


def _format_opt(default: str = "table"):
    return click.option("--format", "out_format", type=click.Choice(FORMATS), default=default, show_default=True,
                        help="table (rich, for a terminal), markdown, csv or json.")


def _output_opt(what: str = "FILE", help_text: str = "Write to FILE (atomically) instead of stdout.", required=False):
    return click.option("--output", "--out", "output", required=required, metavar=what,
                        type=click.Path(dir_okay=what != "FILE", file_okay=what == "FILE"), help=help_text)


def _emit(out_format: str, output, print_table, texts: dict) -> None:
    """Print or atomically write: a rich table (print_table(console)) or one of `texts` (name -> thunk)."""
    from mishaudit.files import write_output

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


class _SweepBar:
    """A progress bar for an exhaustive sweep (chunks, inputs/s, time left), on a terminal only; it
    remembers how far the sweep got, for the message when it is interrupted."""

    def __init__(self, what: str):
        import time

        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.time = time.perf_counter
        self.chunks = self.total = self.inputs = 0
        self.start = None
        self.bar = Progress(TextColumn(f"exhaustive fp32 {what}"), BarColumn(),
                            TextColumn("{task.completed}/{task.total} chunks"), TextColumn("{task.fields[rate]}"),
                            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                            disable=not sys.stderr.isatty())
        self.columns = self.bar.columns
        self.task = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)
        if exc[0] is KeyboardInterrupt and self.total:
            click.echo(f"mishaudit: interrupted after {self.chunks} of {self.total} chunks ({self.inputs:,} inputs); "
                       "run the same command with --resume to continue", err=True)
            sys.exit(130)

    def busy(self, text: str) -> None:
        """Show `text` with a pulsing bar until the command ends (work that is not a sweep); a sweep
        that starts later replaces it."""
        from rich.progress import TextColumn

        self.bar.columns = (TextColumn(text), *self.bar.columns[1:2])
        self.busy_task = self.bar.add_task("busy", total=None, rate="")

    def __call__(self, done: int, total: int, inputs: int) -> None:
        if getattr(self, "busy_task", None) is not None:  # the sweep's own columns from here on
            self.bar.remove_task(self.busy_task)
            self.bar.columns = self.columns
            self.busy_task = None
        if self.task is None:
            self.task = self.bar.add_task("sweep", total=total, rate="")
            self.start = (self.time(), inputs)
        t, i0 = self.start
        rate = (inputs - i0) / max(self.time() - t, 1e-9)
        self.chunks, self.total, self.inputs = done, total, inputs
        self.bar.update(self.task, completed=done, rate=f"{rate / 1e6:.2f} M inputs/s" if inputs > i0 else "")


def _audit_selection(dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, model, device, settings,
                     samples, seed, exhaustive=False, output=None, inputs=None):
    """The AUDIT options of plot and report checked by the API (sample options, kernel options; the output's
    folder here) and resolved: (formats, compute format, Domain, formulas, libm model, samples, given inputs
    or None); with `exhaustive`, the sample is every fp32 value of the domain (it must fit in memory); with
    `inputs`, the errors are those of the given inputs (the overflow maps stay on the format's inputs)."""
    from mishaudit import api
    from mishaudit import arguments as A

    samples, seed = api._sample_args(samples, seed)
    _check_output(output)
    sel = api.select_audit(dtypes, formula_ids, formula_dirs, compute_dtype, domain, model, settings)
    api.check_kernel_options(sel[3], sel[1], ftz, device)
    if inputs is not None and exhaustive:
        raise UserError("--inputs audits the given values, --exhaustive every fp32 value: give one of them")
    A.check_sample_options(sel[0], samples, seed, inputs, False)
    given = api.given_inputs(inputs, seed, False) if inputs is not None else None
    if exhaustive:
        samples = api.exhaustive_samples(sel[0], sel[2], len(sel[3]))
    elif given is None:
        A.check_samples(samples, sel[0], len(sel[3]))
    return (*sel, samples, given)


def _check_output(output, option: str = "--output") -> None:
    if output:
        from mishaudit.files import check_writable

        check_writable(output, option)


@main.command("list")
@FORMULAS_DIRS
@_format_opt()
@_output_opt()
def list_cmd(formula_dirs, out_format, output):
    """List the registered formulations and the framework kernels: id, description, source.

    \b
    Example:
      mishaudit list --formulas ./my-formulas
    """
    from mishaudit import api
    from mishaudit.output import tables

    _check_output(output)
    from mishaudit.eval.kernels import EXTRAS, KERNELS, describe

    rows = [{"id": f.id, "kind": "formulation", "spec": f.spec.name, "description": f.description,
             "params": f.param_defaults(), "source": f.source, "file": f.path}
            for f in sorted(api.load_formulas(*formula_dirs).values(), key=lambda f: f.id)]
    rows += [{"id": k.id, "kind": "kernel", "spec": k.spec.name,
              "description": k.description + f" (runs in {', '.join(k.formats)})",
              "source": describe(k.framework) if k.available() else
              f"unavailable: pip install 'mishaudit[{EXTRAS[k.framework]}]'", "params": None, "file": None}
             for k in KERNELS.values()]
    _emit(out_format, output, lambda c: tables.print_formulas(rows, c),
          {"markdown": lambda: tables.plain_markdown(rows), "csv": lambda: tables.plain_csv(rows),
           "json": lambda: tables.plain_json(rows)})


@main.command()
@AUDIT
@_format_opt()
@_output_opt()
@click.option("--sort", "sort_col", metavar="COLUMN", help="Sort by COLUMN, worst first (default: nonfinite, max_ulp).")
@SWEEP
@INPUTS
@click.pass_context
def compare(ctx, dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, no_cache,
            device, settings, out_format, output, sort_col, exhaustive, jobs, resume, scheduler, inputs):
    """Error of every formulation against the exact mish, per format.

    fp16 and bf16: every finite input. fp32 and fp64: a seeded stratified
    sample (every binade of both signs, plus the neighbourhood of every
    threshold and of exp's overflow and underflow points), or with
    --exhaustive every fp32 input. With --inputs: exactly the values given
    (rounded to --dtype, duplicates counted), and the table adds the mean
    absolute and mean relative error.

    \b
    Example:
      mishaudit compare --dtype fp16 --dtype bf16 --formula softplus-tanh --compute-dtype fp32
    """
    from mishaudit import api
    from mishaudit.output import tables
    from mishaudit.output.frames import records

    if sort_col is not None:
        tables.sort_rows([], sort_col)  # validates the column name before any work
    _check_output(output)
    with _SweepBar("compare") as bar:
        bar.busy(f"auditing {', '.join(dtypes)}")
        df = api.compare(list(dtypes), formula_ids, formula_dirs=formula_dirs, compute_dtype=compute_dtype, ftz=ftz,
                         domain=domain, samples=samples, seed=seed, libm=model, exhaustive=exhaustive, jobs=jobs,
                         resume=resume, use_cache=not no_cache, progress=sys.stderr.isatty(), on_sweep=bar,
                         device=device, settings=settings, inputs=inputs, scheduler=scheduler)
    rows = tables.sort_rows(records(df), sort_col)
    specials = records(df.attrs["specials"])
    _emit(out_format, output, lambda console: tables.print_table(rows, specials, df.attrs["meta"], console),
          {"markdown": lambda: tables.to_markdown(rows, specials), "csv": lambda: tables.to_csv(rows),
           "json": lambda: tables.to_json(rows)})


@main.command()
@AUDIT
@_format_opt()
@_output_opt()
@SWEEP
@click.pass_context
def overflow(ctx, dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, no_cache,
             device, settings, out_format, output, exhaustive, jobs, resume, scheduler):
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
    from mishaudit import api
    from mishaudit.output import overflow_tables as ro

    _check_output(output)
    if device != "cpu":
        raise UserError(f"--device {device}: overflow maps evaluate FPCore formulations on numpy; kernels have no "
                        "intermediates to map: drop --device")
    with _SweepBar("overflow") as bar:
        bar.busy(f"overflow: auditing {', '.join(dtypes)}")
        events, culprits = api.overflow(list(dtypes), formula_ids, formula_dirs=formula_dirs,
                                        compute_dtype=compute_dtype, ftz=ftz, domain=domain, samples=samples,
                                        seed=seed, libm=model, exhaustive=exhaustive, jobs=jobs, resume=resume,
                                        on_sweep=bar, settings=settings, scheduler=scheduler)
    _emit(out_format, output, lambda console: ro.print_overflow(events, culprits, console),
          {"markdown": lambda: ro.to_markdown(events, culprits), "csv": lambda: ro.to_csv(events),
           "json": lambda: ro.to_json(events)})


@main.command()
@_audit_options(ONE_DTYPE)
@EXHAUSTIVE_KEPT
@INPUTS
@click.option("--kind", type=click.Choice(["error", "overflow", "cdf", "cost"]), default="error", show_default=True,
              help="error: ulp error against x; overflow: events per intermediate; cdf: error distribution; "
                   "cost: accuracy against measured speed.")
@click.option("--overlay", is_flag=True, help="--kind error: draw the formulations on one axes, not small multiples.")
@_output_opt(help_text="Figure file, .png or .svg.", required=True)
@click.pass_context
def plot(ctx, dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, no_cache, device,
         settings, exhaustive, inputs, kind, overlay, output):
    """Draw one figure (PNG or SVG) for one --dtype.

    \b
    Example:
      mishaudit plot --dtype fp16 --formula softplus-tanh --formula exp-rational --overlay --out err.png
    """
    import io
    from pathlib import Path

    from mishaudit.analysis.report_data import collect
    from mishaudit.files import atomic_write_bytes
    from mishaudit.output import plots

    if Path(output).suffix.lower() not in (".png", ".svg"):
        raise UserError(f"--output {output}: give a .png or .svg file name")
    if len(dtypes) != 1:
        raise UserError(f"plot draws one format: give one --dtype, not {len(dtypes)} (mishaudit report draws them all)")
    if overlay and kind != "error":
        raise UserError(f"--overlay draws --kind error on one axes; --kind {kind} has no overlay: drop --overlay")
    fmts, comp, dom, formulas, model, samples, given = _audit_selection(
        dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, model, device, settings, samples, seed,
        exhaustive, output, inputs)
    if kind == "overflow" and (len(formulas) != 1 or formulas[0].kernel):
        raise UserError("--kind overflow draws one formulation's intermediates: give exactly one FPCore --formula "
                        "(kernels have none)")
    _, per = collect(formulas, fmts, comp, ftz, dom, samples, seed, use_cache=not no_cache, model=model, device=device,
                     given=given)
    d, fmt = per[fmts[0].name], fmts[0]
    fig = {"error": lambda: plots.error_figure(d["series"], fmt.name, fmt.max, overlay=overlay),
           "overflow": lambda: plots.overflow_figure(d["maps"], formulas[0].id, fmt.name, fmt.max),
           "cdf": lambda: plots.cdf_figure(d["series"], fmt.name),
           "cost": lambda: plots.cost_figure(d["cost"], fmt.name)}[kind]()
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(output).suffix[1:].lower(), dpi=110)
    atomic_write_bytes(output, buf.getvalue())
    click.echo(f"wrote {output}", err=True)


@main.command()
@AUDIT
@EXHAUSTIVE_KEPT
@INPUTS
@_output_opt("DIR", help_text="Report folder (the old one is swapped for the new one at once).", required=True)
@click.pass_context
def report(ctx, dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, no_cache, device,
           settings, exhaustive, inputs, output):
    """Write a report folder: index.md, self-contained index.html, PNG/SVG figures, CSV tables, meta.json.

    \b
    Example:
      mishaudit report --dtype fp16 --dtype bf16 --dtype fp32 --out reports/baseline
    """
    from pathlib import Path

    from mishaudit.analysis.report_data import collect
    from mishaudit.output.report import report_meta, write_report

    parent = Path(output).resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"cannot write --output {output}: folder {parent} is missing or not writable; create it first")
    if Path(output).exists() and not Path(output).is_dir():
        raise UserError(f"--output {output} is a file: give a folder name")
    fmts, comp, dom, formulas, model, samples, given = _audit_selection(
        dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, model, device, settings, samples, seed,
        exhaustive, inputs=inputs)
    audit, per = collect(formulas, fmts, comp, ftz, dom, samples, seed, use_cache=not no_cache,
                         progress=sys.stderr.isatty(), model=model, device=device, given=given)
    write_report(Path(output), audit, per, report_meta(audit.meta, "mishaudit " + " ".join(sys.argv[1:])))
    click.echo(f"wrote {output}/index.html and index.md", err=True)


@main.command()
@click.argument("kernel")
@click.option("--dtype", default="fp16", show_default=True, metavar="FMT", help="The format to compare in (one).")
@click.option("--formula", "formula_ids", multiple=True, metavar="ID", help="Candidate formulation (repeatable; default all).")
@FORMULAS_DIRS
@click.option("--compute-dtype", "computes", metavar="FMT",
              help="Only this compute format as candidate (default: the storage format and every wider one).")
@click.option("--libm", "models", type=click.Choice(list(MODELS)),
              help="Only this libm model as candidate (default: cr, numpy, and torch where installed).")
@DOMAIN
@SAMPLES
@SEED
@click.option("--device", default="cpu", show_default=True, metavar="DEV", help="Where a torch kernel runs: cpu or cuda.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1), help="Candidates to show.")
@SET
@_format_opt()
@_output_opt()
@click.pass_context
def identify(ctx, kernel, dtype, formula_ids, formula_dirs, computes, models, domain, samples, seed, device, top,
             settings, out_format, output):
    """Which formulation is this kernel? Rank every (formulation, compute dtype, libm model) by the share
    of inputs on which it reproduces the kernel bit for bit, and show where the best one differs.

    \b
    Example:
      mishaudit identify torch:mish --dtype bf16
    """
    from mishaudit import api
    from mishaudit.output import tables
    from mishaudit.output.frames import records

    _check_output(output)
    from mishaudit.progress import phase

    with phase(f"identify {kernel} in {dtype}"):
        df = api.identify(kernel, dtype, formula_ids, formula_dirs=formula_dirs, compute_dtype=computes, libm=models,
                          domain=domain, samples=samples, seed=seed, device=device, settings=settings)
    rows = [dict(r) for r in records(df.head(top))]
    diffs = records(df.attrs["differences"])
    _emit(out_format, output, lambda c: tables.print_identify(df.attrs["kernel"], df.attrs["dtype"], rows, diffs, c),
          {"markdown": lambda: tables.plain_markdown(rows) + "\n" + tables.plain_markdown(diffs),
           "csv": lambda: tables.plain_csv(records(df)), "json": lambda: tables.plain_json(records(df))})


@main.command("import")
@click.argument("model", type=click.Path())
@click.option("--out", "out_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="Write each Mish found as DIR/ID.fpcore (atomically); without it, only print what was found.")
@click.option("--keep-fused", is_flag=True,
              help="Keep ONNX's Mish and Softplus as one operation each (default: their ONNX function bodies).")
@FORMULAS_DIRS
@_format_opt()
@click.option("--output", "output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the summary to FILE (atomically) instead of stdout.")
def import_cmd(model, out_dir, keep_fused, formula_dirs, out_format, output):
    """Find every Mish in an exported model (.onnx, .mlpackage, .mlmodel) and write it as an FPCore file,
    operation for operation in the graph's precisions; say which registered formulation it equals.

    Then audit it: mishaudit compare --formulas imported/ --formula model --dtype fp16

    \b
    Example:
      mishaudit import model.onnx --out imported/
    """
    from mishaudit import api
    from mishaudit.output import tables
    from mishaudit.output.frames import records

    _check_output(output)
    df = api.import_model(model, out_dir, keep_fused=keep_fused, formula_dirs=formula_dirs)
    rows = [dict(r) for r in records(df)]
    short = [{k: r[k] for k in tables.IMPORT_COLUMNS} for r in rows]
    _emit(out_format, output, lambda c: tables.print_imports(df.attrs, rows, c),
          {"markdown": lambda: tables.plain_markdown(short), "csv": lambda: tables.plain_csv(rows),
           "json": lambda: tables.plain_json(rows)})


@main.command("emit")
@click.option("--formula", "formula_id", required=True, metavar="ID", help="The formulation (one; `mishaudit list`).")
@click.option("--lang", default="c", show_default=True, metavar="LANG",
              help="c (C99, bits of --libm glibc), cuda, torch (bits of --libm torch) or numpy (of --libm numpy).")
@click.option("--dtype", default="fp32", show_default=True, metavar="FMT", help="Format: fp16, bf16, fp32 or fp64.")
@click.option("--formulas", "--formula-dir", "formula_dirs", multiple=True, metavar="DIR",
              help="Also load the .fpcore files in DIR (repeatable).")
@_output_opt()
def emit_cmd(formula_id, lang, dtype, formula_dirs, output):
    """Write a formulation as source code: a function performing exactly the evaluator's operations,
    each rounded once to the format (the header comment says the model and the compile flags).

    \b
    Example:
      mishaudit emit --formula softplus-tanh --lang c --dtype fp16 --output mish.h
    """
    from mishaudit import api
    from mishaudit.files import write_output

    _check_output(output)
    text = api.emit(formula_id, lang, dtype, formula_dirs=formula_dirs)
    if output:
        write_output(output, text)
    else:
        click.echo(text, nl=False)


@main.command()
@click.option("--dtype", default="fp16", show_default=True, metavar="FMT", help="The format (one): fp16, bf16, fp32, fp64.")
@click.option("--spec", default="mish", show_default=True, type=click.Choice(["mish", "mish'"]),
              help="What to approximate: mish, or its derivative mish'.")
@COMPUTE
@LIBM
@click.option("--budget", default=3, show_default=True, type=int, metavar="N",
              help="At most N elementary-function calls on any path (candidates costing more are left out).")
@click.option("--penalty", default=256.0, show_default=True, type=float, metavar="LOSS",
              help="The price of one more branch, in incorrectly rounded inputs (larger: fewer regimes).")
@click.option("--tau", default=1.0, show_default=True, type=float, metavar="ULPS",
              help="Errors above TAU ulps cost 10^4 (u - TAU)^2 more each: the bound the search defends.")
@click.option("--samples", default=1 << 18, show_default=True, type=int,
              help="fp32/fp64: inputs the regimes are chosen on (half over every binade, half where mish is "
                   "neither -0 nor x); branch points are then refined over every value between them.")
@SEED
@click.option("--rounds", default=3, show_default=True, type=int, metavar="N",
              help="fp32/fp64: proofs above --tau add the inputs around their worst input and search again, N times "
                   "at most.")
@click.option("--id", "ident", metavar="ID", help="The result's id (default mishaudit-DTYPE, mishaudit-grad-DTYPE).")
@FORMULAS_DIRS
@click.option("--out", "out", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the result as an FPCore file (atomically); without it the file's text is printed.")
@click.option("--no-proof", is_flag=True, help="Skip the audit of the result (its figures) and the timing.")
@SWEEP
@_format_opt()
@click.option("--output", "output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the summary to FILE (atomically) instead of stdout.")
def synthesize(dtype, spec, compute_dtype, model, budget, penalty, tau, samples, seed, rounds, ident, formula_dirs,
               out, no_proof, exhaustive, jobs, resume, scheduler, out_format, output):
    """Search for the most accurate formulation of mish (or mish') in a format and prove it.

    Every candidate (the registered formulations, the arms of their branches,
    and forms derived per region of x with constants tuned to the format) is
    measured on every input (fp32: a sample); regimes are inferred by dynamic
    programming over x as Herbie does, with a penalty per branch; the result
    is audited over every finite input (fp32 through the exhaustive sweep).

    \b
    Example:
      mishaudit synthesize --dtype fp16 --out mishaudit-fp16.fpcore
    """
    from mishaudit import api
    from mishaudit.output import synth_tables as st
    from mishaudit.output import tables
    from mishaudit.output.frames import records

    if exhaustive or resume or scheduler:
        raise UserError("synthesize audits its result over every input by itself: drop --exhaustive, --resume and "
                        "--scheduler (--jobs sets the sweep's processes)")
    _check_output(output)
    _check_output(out, "--out")
    with _SweepBar("synthesize") as bar:
        df = api.synthesize(dtype, spec, compute_dtype=compute_dtype, libm=model, budget=budget, penalty=penalty,
                            tau=tau, samples=samples, seed=seed, ident=ident, formula_dirs=formula_dirs, out=out,
                            prove=not no_proof, timing=not no_proof, rounds=rounds, jobs=jobs, on_sweep=bar)
    rows = [dict(r) for r in records(df)]
    attrs = df.attrs

    def as_json():
        import json

        return json.dumps({"id": attrs["id"], "spec": attrs["spec"], "dtype": attrs["dtype"],
                           "command": attrs["command"], "proof": attrs["proof"], "cost": attrs["cost"],
                           "figures": {k: v for k, v in (attrs["figures"] or {}).items() if k != "specials"} or None,
                           "regimes": rows, "fpcore": attrs["fpcore"], "written": attrs["written"]},
                          indent=2, default=str) + "\n"

    _emit(out_format, output, lambda c: st.print_synthesis(attrs, rows, c),
          {"markdown": lambda: st.synth_markdown(attrs, rows), "csv": lambda: tables.plain_csv(rows),
           "json": as_json})


@main.command()
@click.option("--formula", "formula_id", required=True, metavar="ID", help="The formulation (one).")
@click.option("--param", required=True, metavar="NAME", help="Its parameter to sweep (`mishaudit list` shows them).")
@click.option("--range", "value_range", required=True, metavar="LO:HI", help="The parameter's values to try.")
@click.option("--steps", type=int, metavar="N",
              help="Try N evenly spaced values (rounded to the working format) instead of every one of them.")
@click.option("--by", type=click.Choice(["max_ulp", "mean_ulp", "cr_frac"]), default="max_ulp", show_default=True,
              help="The criterion of the best value (nonfinite outputs rank first under each).")
@click.option("--dtype", "dtypes", multiple=True, default=("fp16", "bf16", "fp32"), show_default=True, metavar="FMT",
              help="Format (repeatable).")
@FORMULAS_DIRS
@COMPUTE
@FTZ
@DOMAIN
@SAMPLES
@SEED
@LIBM
@NO_CACHE
@SET
@INPUTS
@SWEEP
@click.option("--plot", "plot_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also draw the error against the parameter, one line per format (.png or .svg).")
@_format_opt()
@_output_opt()
@click.pass_context
def tune(ctx, formula_id, param, value_range, steps, by, dtypes, formula_dirs, compute_dtype, ftz, domain, samples,
         seed, model, no_cache, settings, inputs, exhaustive, jobs, resume, scheduler, plot_path, out_format, output):
    """Sweep one parameter of a formulation (a threshold, a clamp) and find its best value per format.

    Every value runs on the same inputs against one exact reference: fp16/bf16
    every input, fp32/fp64 the sample (or --exhaustive with a --domain around
    the inputs the parameter affects), or the --inputs given. The table shows,
    per format, the best value by --by, the range of values as good, and
    today's default beside it; --format csv/json give every value tried.

    \b
    Example:
      mishaudit tune --formula softplus-threshold --param threshold --range 5:40 --plot threshold.png
    """
    from pathlib import Path

    from mishaudit import api
    from mishaudit.output import tables, tune_tables
    from mishaudit.output.frames import records

    if plot_path and Path(plot_path).suffix.lower() not in (".png", ".svg"):
        raise UserError(f"--plot {plot_path}: give a .png or .svg file name")
    _check_output(output)
    _check_output(plot_path, "--plot")
    with _SweepBar("tune") as bar:
        df = api.tune(formula_id, param, value_range, list(dtypes), steps=steps, by=by, formula_dirs=formula_dirs,
                      compute_dtype=compute_dtype, ftz=ftz, domain=domain, samples=samples, seed=seed, libm=model,
                      inputs=inputs, exhaustive=exhaustive, jobs=jobs, resume=resume, use_cache=not no_cache,
                      progress=sys.stderr.isatty(), on_sweep=bar, settings=settings, scheduler=scheduler)
    rows, summary = records(df), records(df.attrs["summary"])
    if plot_path:
        import io

        from mishaudit.files import atomic_write_bytes
        from mishaudit.output.plots import tune_figure

        buf = io.BytesIO()
        tune_figure(rows, summary).savefig(buf, format=Path(plot_path).suffix[1:].lower(), dpi=110)
        atomic_write_bytes(plot_path, buf.getvalue())
        click.echo(f"wrote {plot_path}", err=True)
    _emit(out_format, output, lambda c: tune_tables.print_tune(summary, c),
          {"markdown": lambda: tune_tables.tune_markdown(summary), "csv": lambda: tables.plain_csv(rows),
           "json": lambda: tables.plain_json(rows)})


@main.command()
@click.option("--thresholds", "thresholds_path", metavar="FILE",
              help="The thresholds file (TOML) to check (default: reports/thresholds.toml, else thresholds.toml, in "
                   "the current folder).")
@FORMULAS_DIRS
@click.option("--junit", metavar="FILE", type=click.Path(dir_okay=False), help="Also write JUnit XML, one test case per limit.")
@_format_opt()
@_output_opt()
@NO_CACHE
def check(thresholds_path, formula_dirs, junit, out_format, output, no_cache):
    """Fail (exit 1) when a formulation's error breaks a limit of the thresholds file.

    Runs exactly the audits the file names, prints every limit with its measured
    value and verdict, and lists the limits that could be tightened. Exit codes:
    0 all limits hold, 1 a limit is broken, 2 bad input, 3 an internal error.

    \b
    Example:
      mishaudit check --thresholds reports/thresholds.toml --junit check.xml
    """
    import time

    from mishaudit import api
    from mishaudit.files import atomic_write_bytes
    from mishaudit.gate.check import dispatch_warnings
    from mishaudit.gate.thresholds import read_thresholds
    from mishaudit.output import tables
    from mishaudit.output import verdicts as vt
    from mishaudit.output.frames import records

    thresholds_path = api.find_thresholds(thresholds_path)
    _check_output(output)
    _check_output(junit, "--junit")
    t0 = time.perf_counter()
    for w in dispatch_warnings(read_thresholds(thresholds_path, set(api.load_formulas(*formula_dirs)))):
        click.echo(f"mishaudit: warning: {w}", err=True)
    from mishaudit.progress import phase

    with phase(f"checking the limits of {thresholds_path}"):
        df = api.check(thresholds_path, formula_dirs, use_cache=not no_cache, progress=sys.stderr.isatty())
    verdicts = df.attrs["verdicts"]
    if junit:
        try:
            atomic_write_bytes(junit, vt.junit_xml(verdicts, time.perf_counter() - t0))
        except OSError as exc:
            raise UserError(f"cannot write --junit {junit}: {exc.strerror}; choose a writable location") from None
    rows = records(df)
    _emit(out_format, output, lambda c: vt.print_verdicts(verdicts, f"mishaudit check: {thresholds_path}", c),
          {"markdown": lambda: vt.verdicts_markdown(verdicts), "csv": lambda: tables.plain_csv(rows),
           "json": lambda: tables.plain_json(rows)})
    failed = [v for v in verdicts if not v.ok]
    for v in failed:
        click.echo("mishaudit: check failed: " + v.line(), err=True)
    sys.exit(1 if failed else 0)


@main.command()
@AUDIT
@_output_opt(help_text="Where to write the thresholds file (TOML).", required=True)
@click.option("--margin", default=0.05, show_default=True, type=float,
              help="Relative slack added to each measured value: a fraction in [0, 1).")
@SWEEP
@INPUTS
@click.pass_context
def baseline(ctx, dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, model, no_cache,
             device, settings, output, margin, exhaustive, jobs, resume, scheduler, inputs):
    """Write a thresholds file from a current run, so a project adopts the gate in one command.

    With --exhaustive (fp32) the limits say exhaustive = true, with --inputs
    they name the inputs (a file relative to the thresholds file's folder);
    `mishaudit check` audits the same way.

    \b
    Example:
      mishaudit baseline --dtype fp16 --dtype bf16 --formulas ./mine --formula my-mish --out thresholds.toml
    """
    from mishaudit import api
    from mishaudit.files import write_output

    _check_output(output)
    command = "mishaudit baseline " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "mishaudit baseline"
    with _SweepBar("baseline") as bar:
        bar.busy(f"baseline: auditing {', '.join(dtypes)}")
        text = api.baseline(list(dtypes), formula_ids, output=output, margin=margin, formula_dirs=formula_dirs,
                            compute_dtype=compute_dtype, ftz=ftz, domain=domain, samples=samples, seed=seed,
                            libm=model, exhaustive=exhaustive, jobs=jobs, resume=resume, inputs=inputs,
                            use_cache=not no_cache, progress=sys.stderr.isatty(), on_sweep=bar, device=device,
                            settings=settings, scheduler=scheduler, command=command)
    write_output(output, text, "--output")
    click.echo(f"wrote {text.count('[[limit]]')} limits to {output}", err=True)


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
    run()
