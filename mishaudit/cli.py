"""The command line: `mishaudit list`, `mishaudit compare`."""

from __future__ import annotations

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


@click.group(cls=_Group)
@click.version_option(package_name="mishaudit")
def main():
    """Audit the numerical accuracy of formulations of Mish, mish(x) = x*tanh(log1p(exp(x))).

    \b
    Example:
      mishaudit compare --dtype fp16
    """


_formulas_opt = click.option("--formulas", "formula_dirs", multiple=True, metavar="DIR",
                             help="Also load the .fpcore files in DIR (repeatable).")


@main.command("list")
@_formulas_opt
def list_cmd(formula_dirs):
    """List the registered formulations: id, description, source.

    \b
    Example:
      mishaudit list --formulas ./my-formulas
    """
    from rich.console import Console
    from rich.table import Table

    from .registry import load_registry

    reg = load_registry(formula_dirs)
    t = Table(title=f"{len(reg)} registered formulations", title_justify="left")
    for c in ("id", "description", "source"):
        t.add_column(c, overflow="fold")
    for k in sorted(reg):
        t.add_row(k, reg[k].description, reg[k].source)
    Console().print(t)


@main.command()
@click.option("--dtype", "dtypes", multiple=True, default=("fp16",), show_default=True, metavar="FMT",
              help="Format: fp16, bf16, fp32, fp64 (repeatable).")
@click.option("--formula", "formula_ids", multiple=True, metavar="ID", help="Formulation id (repeatable; default all).")
@_formulas_opt
@click.option("--compute-dtype", metavar="FMT", help="Round every operation to FMT, the result once to --dtype.")
@click.option("--ftz", is_flag=True, help="Flush subnormal inputs and results to zero.")
@click.option("--domain", metavar="LO:HI", help="Only inputs x with LO <= x <= HI.")
@click.option("--samples", default=1 << 16, show_default=True, help="Sample size for fp32/fp64.")
@click.option("--seed", default=0, show_default=True, help="Seed of the fp32/fp64 sample.")
@click.option("--format", "out_format", type=click.Choice(["table", "markdown", "csv", "json"]), default="table",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), help="Write to FILE (atomically) instead of stdout.")
@click.option("--sort", "sort_col", metavar="COLUMN", help="Sort by COLUMN, worst first (default: nonfinite, max_ulp).")
@click.option("--no-cache", is_flag=True, help="Recompute the mpmath reference; do not read or write the cache.")
def compare(dtypes, formula_ids, formula_dirs, compute_dtype, ftz, domain, samples, seed, out_format, output,
            sort_col, no_cache):
    """Error of every formulation against the exact mish, per format.

    fp16 and bf16: every finite input. fp32 and fp64: a seeded stratified
    sample (every binade of both signs, plus the neighbourhood of every
    threshold and of exp's overflow and underflow points).

    \b
    Example:
      mishaudit compare --dtype fp16 --dtype bf16 --formula softplus-tanh --compute-dtype fp32
    """
    from rich.console import Console

    from . import render
    from .audit import run_audit
    from .formats import get_format
    from .inputs import parse_domain
    from .iofiles import check_writable, write_output
    from .registry import load_registry, select

    fmts = list(dict.fromkeys(get_format(d) for d in dtypes))
    comp = get_format(compute_dtype) if compute_dtype else None
    dom = parse_domain(domain)
    if sort_col is not None and sort_col not in render.ALL_KEYS:
        render.sort_rows([], sort_col)
    if output:
        check_writable(output)
    formulas = select(load_registry(formula_dirs), formula_ids)
    audit = run_audit(formulas, fmts, comp, ftz, dom, samples, seed, use_cache=not no_cache,
                      progress=sys.stderr.isatty())
    rows = render.sort_rows(audit.rows, sort_col)
    if out_format == "table":
        if output:
            console = Console(record=True, width=200, file=open("/dev/null", "w"))
            render.print_table(rows, audit.specials, audit.meta, console)
            write_output(output, console.export_text())
        else:
            console = Console()
            if not console.is_terminal:  # a pipe or a file: do not squeeze the table into 80 columns
                console = Console(width=160)
            render.print_table(rows, audit.specials, audit.meta, console)
        return
    text = {"markdown": lambda: render.to_markdown(rows, audit.specials), "csv": lambda: render.to_csv(rows),
            "json": lambda: render.to_json(rows)}[out_format]()
    if output:
        write_output(output, text)
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":
    main()
