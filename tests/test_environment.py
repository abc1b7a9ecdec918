"""A failing environment is one line and exit 2 (a full disk, a bad device); Ctrl-C is one line and
exit 130 with nothing half-written; what a killed run left is cleaned; files honour the umask;
tables stay readable on a narrow terminal and whole in a file; tune's best lies in the range asked."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

FAST = ("--formula", "softplus-tanh", "--formula", "exp-rational")


def cli(*args, stdout=subprocess.PIPE, cwd=None, env=None, preexec_fn=None, timeout=120):
    """The real console entry in a subprocess, as a user runs it."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "mishaudit.cli", *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, cwd=cwd, env=full_env, preexec_fn=preexec_fn, timeout=timeout)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    return lines[0]


def full_device(tmp_path):
    """A private /dev/full (a char device that answers ENOSPC): a broken program can only replace this
    copy, never the machine's."""
    p = tmp_path / "full"
    try:
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        return p
    except (PermissionError, OSError):
        # the machine's own: the code writes into a device, never replaces it (checked after each use)
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
        return "/dev/full"


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_full_disk_on_stdout_is_exit_2_naming_it():
    with open("/dev/full", "w") as full:
        p = cli("compare", "--dtype", "fp16", *FAST, stdout=full)
    assert p.returncode == 2, p.stderr
    line = one_line(p.stderr)
    assert "standard output" in line and "No space left on device" in line and "free some space" in line


def test_full_disk_on_output_is_exit_2_naming_it(tmp_path):
    target = full_device(tmp_path)
    p = cli("compare", "--dtype", "fp16", *FAST, "--output", str(target))
    assert p.returncode == 2, p.stderr
    line = one_line(p.stderr)
    assert str(target) in line and "No space left on device" in line and "free some space" in line
    assert not os.path.isfile(target)  # written into, never replaced by a regular file


def test_unknown_device_is_one_line_exit_2():
    import torch  # noqa: F401  (a test extra: installed wherever the suite runs)
    p = cli("compare", "--dtype", "fp16", "--formula", "torch:mish", "--device", "tpu9")
    assert p.returncode == 2, p.stderr
    line = one_line(p.stderr)
    assert "tpu9" in line and "cpu" in line  # names the devices there are


def test_stale_temp_folder_of_a_dead_run_is_removed(tmp_path):
    stale = tmp_path / f".baseline.tmp-{dead_pid()}"
    (stale / "figures").mkdir(parents=True)
    (stale / "index.md").write_text("half")
    mine = tmp_path / f".baseline.tmp-{os.getpid()}"  # a live process's: left alone
    mine.mkdir()
    p = cli("report", "--dtype", "fp16", "--formula", "softplus-tanh", "--out", str(tmp_path / "baseline"))
    assert p.returncode == 0, p.stderr
    assert not stale.exists()
    assert mine.exists()
    assert (tmp_path / "baseline" / "index.html").exists()


@pytest.mark.parametrize("delay", [2.5])
def test_sigint_during_report_is_one_line_exit_130(tmp_path, delay):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "old.txt").write_text("old report")
    proc = subprocess.Popen([sys.executable, "-m", "mishaudit.cli", "report", "--dtype", "fp16", *FAST,
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    time.sleep(delay)
    assert proc.poll() is None, "the report ended before the interrupt"
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the whole group, worker processes too
    t = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t < 10  # stops at once, not after finishing the report
    assert proc.returncode == 130, err
    assert one_line(err) == "mishaudit: interrupted"
    assert sorted(os.listdir(out)) == ["old.txt"] and (out / "old.txt").read_text() == "old report"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temporary folder left


def test_output_files_honour_the_umask(tmp_path):
    target = tmp_path / "list.csv"
    p = cli("list", "--format", "csv", "--output", str(target), preexec_fn=lambda: os.umask(0o022))
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


@pytest.fixture(scope="module")
def fp16_rows():
    from mishaudit import api
    from mishaudit.output import tables
    from mishaudit.output.frames import records

    df = api.compare(["fp16"])
    return tables.sort_rows(records(df), None), records(df.attrs["specials"]), df.attrs["meta"]


def test_narrow_terminal_keeps_every_formula_id_in_full(fp16_rows):
    import io

    from rich.console import Console

    from mishaudit.output import tables

    rows, specials, meta = fp16_rows
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    tables.print_table(rows, specials, meta, console)
    text = buf.getvalue()
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80
    body = [ln for ln in lines if ln.startswith("│")]
    for r in rows:
        assert any(f"│ {r['formula']} " in ln for ln in body), r["formula"]
    assert "max ulp" in text and "left out" in text


def test_redirected_table_is_never_cut(tmp_path):
    heads = ("formula", "max ulp", "mean ulp", "p99 ulp", "worst x", "CR", "faithful", "nonfinite", "±0",
             "formula ulp", "dULP 0/1/2/3/>3")
    env = {"COLUMNS": "", "LINES": ""}
    with open(tmp_path / "stdout.txt", "w") as f:
        p = cli("compare", "--dtype", "fp16", "--set", "threshold=15", stdout=f, env=env)
    assert p.returncode == 0, p.stderr
    p = cli("compare", "--dtype", "fp16", "--set", "threshold=15", "--output", str(tmp_path / "out.txt"), env=env)
    assert p.returncode == 0, p.stderr
    for name in ("stdout.txt", "out.txt"):
        text = (tmp_path / name).read_text()
        header = next(ln for ln in text.splitlines() if "max ulp" in ln)
        assert all(f" {h} " in header for h in heads), header
        assert "…" not in text


def test_tune_best_is_inside_the_range_and_the_default_apart():
    from mishaudit import api
    from mishaudit.output.frames import records
    from mishaudit.output.plots import tune_figure
    from mishaudit.output.tune_tables import _cells

    df = api.tune("softplus-threshold", "threshold", "1:6", ["fp16"], steps=21)
    rows, (s,) = records(df), records(df.attrs["summary"])
    inside = [r for r in rows if 1 <= r["value"] <= 6]
    best = [r for r in rows if r["best"]]
    assert len(best) == 1 and 1 <= best[0]["value"] <= 6
    # the summary names the best row's value, and the default is the file's threshold (20, read from
    # formulas/softplus-threshold.fpcore by hand), not a value of the range
    assert s["best_value"] == best[0]["value"] and s["default_value"] == 20.0
    assert best[0]["max_ulp"] == min(r["max_ulp"] for r in inside if not r["nonfinite"])
    default = next(r for r in rows if r["default"])
    assert default["value"] == 20.0 and not default["best"] and not default["as_good"]
    assert all(1 <= r["value"] <= 6 for r in rows if r["as_good"])
    cells = _cells(s)
    assert cells[1] != "20.0" and cells[8] == "20.0" and "outside the range" in cells[-1]
    fig = tune_figure(rows, [s])
    for line in fig.axes[0].get_lines():  # markers only: no line drawn across values never tried
        assert line.get_linestyle() in ("None", "none", "") or len(line.get_xdata()) == 1


def _on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run the CLI under a pseudo-terminal (stderr is a terminal there): (exit code, all it printed)."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI as a person runs it
        os.execv(sys.executable, [sys.executable, "-m", "mishaudit.cli", *args])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_progress_shows_on_a_terminal_only(tmp_path):
    """compare and check show what they are doing on a terminal (a transient line), and print no such line
    into a pipe."""
    code, text = _on_a_terminal(["compare", "--dtype", "fp16", "--formula", "softplus-tanh"])
    assert code == 0 and "auditing fp16" in text and "softplus-tanh" in text
    piped = subprocess.run([sys.executable, "-m", "mishaudit.cli", "compare", "--dtype", "fp16", "--formula",
                            "softplus-tanh"], capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "auditing fp16" not in piped.stderr + piped.stdout
    th = tmp_path / "t.toml"
    assert subprocess.run([sys.executable, "-m", "mishaudit.cli", "baseline", "--dtype", "fp16", "--formula",
                           "softplus-tanh", "--out", str(th)], capture_output=True, timeout=120).returncode == 0
    code, text = _on_a_terminal(["check", "--thresholds", str(th)])
    assert code == 0 and "checking the limits of" in text
    code, text = _on_a_terminal(["tune", "--formula", "softplus-threshold", "--param", "threshold", "--range", "2:4",
                                 "--steps", "3", "--dtype", "fp16"])
    assert code == 0 and "values of threshold" in text
    code, text = _on_a_terminal(["report", "--dtype", "fp16", "--formula", "softplus-tanh", "--out",
                                 str(tmp_path / "rep")])
    assert code == 0 and "overflow maps and timings" in text


def test_full_disk_while_writing_a_report_is_exit_2_and_leaves_the_old_report(tmp_path, monkeypatch):
    """ENOSPC from the figure writer in the middle of `report`: one line naming the cause, exit 2; the old
    report stays whole and no hidden temporary folder is left behind."""
    import errno

    import matplotlib.figure
    from click.testing import CliRunner

    from mishaudit.cli import main

    out = tmp_path / "rep"
    args = ["report", "--dtype", "fp16", "--formula", "softplus-tanh", "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = (out / "index.md").read_text()

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in r.stderr
    assert (out / "index.md").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("args, shown", [
    (["overflow", "--dtype", "fp16", "--formula", "softplus-tanh"], "overflow: auditing fp16"),
    (["identify", "torch:mish", "--dtype", "bf16", "--formula", "softplus-tanh"], "identify torch:mish in bf16"),
    (["plot", "--dtype", "fp16", "--formula", "softplus-tanh", "--out", "{tmp}/p.svg"], "auditing 1 formulations"),
    (["baseline", "--dtype", "fp16", "--formula", "softplus-tanh", "--out", "{tmp}/t.toml"], "baseline: auditing"),
])
def test_every_other_command_shows_progress_on_a_terminal(tmp_path, args, shown):
    code, text = _on_a_terminal([a.format(tmp=tmp_path) for a in args])
    assert code == 0 and shown in text and "Traceback" not in text
