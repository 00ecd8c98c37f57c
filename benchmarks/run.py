#!/usr/bin/env python3
"""Benchmarks for salt-workstation: unpack speed, converged apply, peak memory.

    .venv/bin/python benchmarks/run.py                 # default: 400 MiB / 16,000 files, 3 rounds
    .venv/bin/python benchmarks/run.py --quick         # ~40 MiB smoke run
    .venv/bin/python benchmarks/run.py --only unpack   # one section (unpack, converged, memory, profile)
    .venv/bin/python benchmarks/run.py --candidate ../worktree   # also time another checkout's engine

Everything generated lives under benchmarks/.work/ (git-ignored): the archives
(cached between runs), a masterless minion config, results.json, and a sparse
ext4 image loop-mounted at .work/mnt for the run (extractions, install roots and
the minion's cache go there; see Scratch). Run it as root on an otherwise quiet
machine. See docs/benchmarks.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import hashlib
import http.server
import io
import json
import os
import platform
import pstats
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = Path(sys.executable).parent
SALT_CALL = str(VENV_BIN / "salt-call")
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import archives  # noqa: E402  (benchmarks/archives.py)

TARGETS = {
    "engine_vs_curl_tar": 1.2,
    "stock_vs_engine": 2.0,
    "converged_vs_empty": 1.2,
    "rss_growth_mib": 64,
}
BIG_APP, BIG_VERSION = "bigdcc", "20.5.410"
MEM_APP = "middcc"
SMALL_APPS = ["alpha", "beta", "gamma", "delta", "epsilon"]
SMALL_VERSION = "1.0"
SETUP_TIMEOUT_S = 600  # untimed preparation (the first apply installs the 5 apps)


# ---- helpers -------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def settle(args, *paths: Path) -> None:
    """Delete what the last run wrote, outside any timed section, then sync and let the disk settle."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    os.sync()
    time.sleep(args.settle)


def cpu_stall_s() -> float:
    """Seconds some task on this machine waited for a CPU (PSI), to show contention from other work."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as handle:
            return int(handle.readline().split("total=")[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


def _vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class MethodTimeout(RuntimeError):
    """A timed command ran past --timeout-s and was killed; hwm_kib is its peak RSS until then."""

    def __init__(self, message: str, hwm_kib: int = 0):
        super().__init__(message)
        self.hwm_kib = hwm_kib


def run_child(
    argv, *, stdout=subprocess.DEVNULL, check=True, poll_hwm=False, env=None, timeout=None
):
    """Run a command (a string runs under bash -o pipefail) in a process group of its own.

    Returns {wall, cpu, user, sys, stall, hwm_kib}: cpu/user/sys cover the process and the children it
    reaped (curl and tar under bash). hwm_kib (poll_hwm only) is the peak of the process's VmHWM, polled
    every 10 ms: ru_maxrss is useless here, since Linux carries the parent's high-water mark over the
    (v)fork + exec into the child. Past `timeout` seconds the group is killed and MethodTimeout raised.
    """
    if isinstance(argv, str):
        argv = ["bash", "-o", "pipefail", "-c", argv]
    stall = cpu_stall_s()
    with tempfile.TemporaryFile() as errors:  # a pipe could fill up and stall a chatty child
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, stdout=stdout, stderr=errors, env=env, start_new_session=True
        )

        reaped = threading.Event()

        def kill():
            if not reaped.is_set():  # never signal a group id the kernel may since have reused
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        hwm = 0
        try:
            if poll_hwm:
                while True:
                    hwm = max(hwm, _vm_hwm_kib(process.pid))
                    pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                    if pid:
                        reaped.set()
                        break
                    time.sleep(0.01)
            else:
                _, status, usage = os.wait4(process.pid, 0)
                reaped.set()
        except BaseException:  # Ctrl-C: no child left running on the scratch filesystem
            kill()
            process.wait()
            raise
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - started
        stall = cpu_stall_s() - stall
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if timeout and wall >= timeout:
        raise MethodTimeout(
            f"{' '.join(map(str, argv))[:300]} ran past {timeout:g} s and was stopped", hwm
        )
    if check and process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} exited {process.returncode}:\n{stderr[-3000:]}"
        )
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "stall": stall,
        "hwm_kib": hwm,
        "rc": process.returncode,
    }


def median(values):
    return statistics.median(values) if values else None


def summarize(samples: dict, baseline: str) -> dict:
    """Median seconds per method; ratio of medians and median of per-round ratios to the baseline."""
    out = {}
    base = samples[baseline]
    for method, runs in samples.items():
        walls = [run["wall"] for run in runs]
        per_round = [run["wall"] / b["wall"] for run, b in zip(runs, base, strict=False)]
        out[method] = {
            "median_s": round(median(walls), 3),
            "min_s": round(min(walls), 3),
            "max_s": round(max(walls), 3),
            "median_cpu_s": round(median([run["cpu"] for run in runs]), 3),
            "median_user_s": round(median([run["user"] for run in runs]), 3),
            "median_sys_s": round(median([run["sys"] for run in runs]), 3),
            "median_cpu_stall_s": round(median([run["stall"] for run in runs]), 3),
            "ratio_to_baseline": round(median(walls) / median([b["wall"] for b in base]), 3),
            "median_round_ratio": round(median(per_round), 3),
            "runs": [round(w, 3) for w in walls],
        }
    return out


def order_for(round_index: int, methods: list) -> list:
    """A B C, then C B A: every method runs in alternation and none always goes first."""
    return list(methods) if round_index % 2 == 0 else list(reversed(methods))


# ---- the depot: a loopback HTTP server in its own process ------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(
            sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)
        ):  # a killed client
            super().handle_error(request, client_address)


def serve(directory: str) -> None:
    """`run.py --serve DIR`: serve DIR on 127.0.0.1, print the port, run until killed."""
    handler = lambda *a, **kw: _QuietHandler(*a, directory=directory, **kw)  # noqa: E731
    server = _QuietServer(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Depot:
    def __init__(self, directory: Path):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(directory)], stdout=subprocess.PIPE, text=True
        )
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self):
        self.process.terminate()
        self.process.wait(10)


# ---- the scratch filesystem everything is unpacked onto ---------------------------------------------


class Scratch:
    """Where the extractions, install roots and the minion's cache go.

    `loop` (the default, needs root): a fresh sparse image under .work, formatted ext4 with the
    default journal and loop-mounted, the way a workstation's /opt is usually laid out. It exists
    because this VM's root filesystem is ext4 *without* a journal: there, ext4's inode allocator
    skips every inode freed in the last 60 s (360 s while its inode-table block is dirty) and
    re-checks each one on every file it creates (fs/ext4/ialloc.c recently_deleted()), so after
    any big delete -- ours, or another process's -- unpacking 16,000 files costs 10 s or more of
    system time for every method alike, and no short sleep after `sync` clears it.
    `host`: .work/scratch on whatever filesystem .work is on; deletions then wait to the end of
    each section.
    """

    def __init__(self, work: Path, kind: str, size_gib: int):
        self.work, self.kind, self.size_gib = work, kind, size_gib
        self.image, self.mount = work / "scratch.img", work / "mnt"
        self.mounted = False
        self.note = ""

    def _umount_stale(self):
        if os.path.ismount(self.mount):
            subprocess.run(["umount", str(self.mount)], check=True)

    def open(self) -> Path:
        if self.kind == "loop":
            try:
                self._umount_stale()
                self.image.unlink(missing_ok=True)
                with open(self.image, "wb") as handle:
                    handle.truncate(self.size_gib << 30)
                subprocess.run(
                    ["mkfs.ext4", "-q", "-F", "-L", "wsbench", str(self.image)],
                    check=True,
                    capture_output=True,
                )
                self.mount.mkdir(exist_ok=True)
                subprocess.run(
                    ["mount", "-o", "loop", str(self.image), str(self.mount)],
                    check=True,
                    capture_output=True,
                )
                self.mounted = True
                return self.mount
            except (OSError, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", b"") or b""
                self.note = f"loop mount failed ({exc} {detail.decode(errors='replace').strip()}); using host"
                log(f"WARNING: {self.note}")
                self.image.unlink(missing_ok=True)
                self.kind = "host"
        path = self.work / "scratch"
        settle_paths = [path / name for name in ("runs", "converged")]
        for stale in settle_paths:
            shutil.rmtree(stale, ignore_errors=True)
        path.mkdir(exist_ok=True)
        return path

    def path(self) -> Path:
        return self.mount if self.mounted else self.work / "scratch"

    def describe(self) -> dict:
        found = subprocess.run(
            ["findmnt", "-no", "SOURCE,FSTYPE,OPTIONS", "-T", str(self.path())],
            capture_output=True,
            text=True,
        ).stdout.split()
        source = found[0] if found else "?"
        journal = None
        if source.startswith("/dev/"):
            jbd2 = Path("/proc/fs/jbd2")
            journal = jbd2.is_dir() and any(
                entry.name.startswith(Path(source).name + "-") for entry in jbd2.iterdir()
            )
        return {
            "kind": self.kind,
            "path": str(self.path()),
            "source": source,
            "fstype": found[1] if len(found) > 1 else "?",
            "options": found[2] if len(found) > 2 else "?",
            "journal": journal,
            "note": self.note,
        }

    def close(self):
        if not self.mounted:
            return
        for _ in range(10):  # a child that was just killed may still hold a file open there
            if subprocess.run(["umount", str(self.mount)], capture_output=True).returncode == 0:
                self.mounted = False
                self.image.unlink(missing_ok=True)
                return
            time.sleep(1)
        log(
            f"WARNING: could not unmount {self.mount}; run `umount {self.mount}` and delete {self.image}"
        )


# ---- a masterless minion -----------------------------------------------------------------------


def write_minion(work: Path, scratch: Path, depot_url: str, metas: dict) -> Path:
    """A minion config as a new user writes one: file_client local, roots + the workstation backend.

    Its root_dir (cache, where archive.extracted downloads to) and every install root lie on the
    scratch filesystem, beside the extraction folders.
    """
    conf = work / "minion"
    states, pillar_dir = conf / "states", conf / "pillar"
    states.mkdir(parents=True, exist_ok=True)
    pillar_dir.mkdir(parents=True, exist_ok=True)
    (conf / "minion").write_text(
        json.dumps(
            {
                "file_client": "local",
                "root_dir": str(scratch / "minion-root"),
                "fileserver_backend": ["roots", "workstation"],
                "file_roots": {"base": [str(states)]},
                "pillar_roots": {"base": [str(pillar_dir)]},
            },
            indent=1,
        )
        + "\n"
    )
    catalog = {}
    for app, meta in metas.items():
        version = BIG_VERSION if app in (BIG_APP, MEM_APP) else SMALL_VERSION
        catalog[app] = {
            "versions": {
                version: {
                    "source": meta["file"],
                    "hash": "sha256:" + meta["sha256"],
                    "strip_components": 1,
                    "launchers": {app: meta["launcher"]},
                }
            }
        }
    system = (
        scratch / "system"
    )  # the machine files the formula writes (launchers, license environment)
    for folder in ("usr/local/bin", "usr/local/share", "etc/xdg"):
        (system / folder).mkdir(parents=True, exist_ok=True)
    (system / "etc" / "fstab").touch()
    pillar = {
        "workstation": {
            "lookup": {
                "os": {
                    "bin_dir": str(system / "usr/local/bin"),
                    "xdg_data_dir": str(system / "usr/local/share"),
                    "xdg_config_dir": str(system / "etc/xdg"),
                    "fstab": str(system / "etc/fstab"),
                    "licenses": {"root": str(system)},
                }
            },
            "install_root": str(scratch / "converged" / "ours"),
            "depot": depot_url + "/",
            "retain": 1,
            "catalog": catalog,
            "productions": {
                "show": {"apps": {app: SMALL_VERSION for app in SMALL_APPS if app in metas}}
            },
        }
    }
    (pillar_dir / "top.sls").write_text(json.dumps({"base": {"*": ["workstation"]}}) + "\n")
    (pillar_dir / "workstation.sls").write_text(json.dumps(pillar, indent=1) + "\n")
    (states / "empty.sls").write_text("nothing-to-do:\n  test.succeed_without_changes: []\n")
    stock = {}
    for app in SMALL_APPS:
        if app in metas:
            stock[f"stock-{app}"] = {
                "archive.extracted": [
                    {"name": str(scratch / "converged" / "stock" / app)},
                    {"source": f"{depot_url}/{metas[app]['file']}"},
                    {"source_hash": "sha256=" + metas[app]["sha256"]},
                    {"enforce_toplevel": False},
                ]
            }
    (states / "stock.sls").write_text(json.dumps(stock, indent=1) + "\n")
    return conf


def salt_call(conf: Path, *args) -> list:
    return [SALT_CALL, "--local", "-c", str(conf), *args]


def stock_cache_paths(scratch: Path) -> list:
    """Where archive.extracted keeps its download and its listing hash."""
    cache = scratch / "minion-root" / "var" / "cache" / "salt" / "minion"
    return [cache / "extrn_files", cache / "archive_hash"]


# ---- section: unpacking one big archive ------------------------------------------------------------


def engine_install(root: Path, meta: dict, depot_url: str, app: str = BIG_APP):
    from salt_workstation import pillar
    from salt_workstation.engine import AppStore

    spec = pillar.resolve_spec(
        app,
        BIG_VERSION,
        {
            "source": meta["file"],
            "hash": "sha256:" + meta["sha256"],
            "strip_components": 1,
            "launchers": {app: meta["launcher"]},
        },
        depot_url + "/",
    )
    return AppStore(root).install(spec)


def time_in_process(fn) -> dict:
    """Like run_child's figures, for a call in this process (the depot runs in another process)."""
    before, stall = resource.getrusage(resource.RUSAGE_SELF), cpu_stall_s()
    started = time.perf_counter()
    fn()
    wall = time.perf_counter() - started
    after, stall = resource.getrusage(resource.RUSAGE_SELF), cpu_stall_s() - stall
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"wall": wall, "cpu": user + system, "user": user, "sys": system, "stall": stall}


def section_unpack(args, scratch: Path, conf: Path, depot: Depot, meta: dict) -> dict:
    runs = scratch / "runs"
    runs.mkdir(exist_ok=True)
    cache = stock_cache_paths(scratch)
    url = f"{depot.url}/{meta['file']}"
    launcher = Path(meta["launcher"])

    def curl_tar(target: Path):
        target.mkdir(parents=True)
        result = run_child(f"curl -sSf '{url}' | tar -xzf - -C '{target}'", timeout=args.timeout_s)
        assert (target / meta["top"] / launcher).exists()
        return result

    def engine(target: Path):
        result = time_in_process(functools.partial(engine_install, target, meta, depot.url))
        assert (target / "apps" / BIG_APP / BIG_VERSION / launcher).exists()
        return result

    def engine_salt_call(target: Path, env=None):
        out = target.with_name(target.name + ".out")
        with open(out, "wb") as handle:
            result = run_child(
                salt_call(
                    conf,
                    "--out=json",
                    "dcc.install",
                    BIG_APP,
                    BIG_VERSION,
                    f"install_root={target}",
                ),
                stdout=handle,
                env=env,
                timeout=args.timeout_s,
            )
        returned = json.loads(out.read_text())["local"]
        out.unlink()
        if "error" in returned or not (target / "apps" / BIG_APP / BIG_VERSION / launcher).exists():
            raise RuntimeError(f"dcc.install failed: {returned}")
        return result

    def stock(target: Path):
        out = target.with_name(target.name + ".out")
        with open(out, "wb") as handle:  # the default highstate outputter, as a new user sees it
            result = run_child(
                salt_call(
                    conf,
                    "--retcode-passthrough",
                    "state.single",
                    "archive.extracted",
                    f"name={target}",
                    f"source={url}",
                    f"source_hash=sha256={meta['sha256']}",
                    "enforce_toplevel=False",
                ),
                stdout=handle,
                timeout=args.timeout_s,
            )
        out.unlink()
        assert (target / meta["top"] / launcher).exists()
        return result

    def startup(target: Path):
        return run_child(salt_call(conf, "test.true"), timeout=args.timeout_s)

    def engine_child(root: Path):
        """The engine in a fresh interpreter whose salt_workstation comes from `root`."""
        script = _ENGINE_CHILD.format(paths=[str(root)])
        spec = json.dumps(
            {
                "source": meta["file"],
                "hash": "sha256:" + meta["sha256"],
                "strip_components": 1,
                "launchers": {BIG_APP: meta["launcher"]},
            }
        )

        def method(target: Path):
            result = run_child(
                [
                    sys.executable,
                    "-c",
                    script,
                    "install",
                    str(target),
                    depot.url + "/",
                    BIG_APP,
                    BIG_VERSION,
                    spec,
                    str(root),
                ],
                timeout=args.timeout_s,
            )
            assert (target / "apps" / BIG_APP / BIG_VERSION / launcher).exists()
            return result

        return method

    methods = {
        "curl | tar -xz": curl_tar,
        "engine (in-process)": engine,
        "salt-call dcc.install": engine_salt_call,
        "stock archive.extracted": stock,
        "salt-call test.true (startup only)": startup,
    }
    if args.candidate:
        methods["engine subprocess (this checkout)"] = engine_child(REPO)
        methods["engine subprocess (candidate)"] = engine_child(args.candidate.resolve())
        # Salt's loader follows the package it imports: PYTHONPATH wins over the editable install.
        candidate_env = {**os.environ, "PYTHONPATH": str(args.candidate.resolve())}
        methods["salt-call dcc.install (candidate)"] = lambda target: engine_salt_call(
            target, candidate_env
        )
    skip = set(args.skip_method or [])
    methods = {name: fn for name, fn in methods.items() if name.split()[0] not in skip}
    samples = {name: [] for name in methods}
    timed_out = {}
    settle(args, *cache)
    for index in range(args.rounds):
        for name in order_for(index, list(methods)):
            if name in timed_out:
                continue
            target = (
                runs / f"{''.join(c if c.isalnum() else '-' for c in name).strip('-')}-r{index}"
            )
            if name.startswith("stock") and args.defer_delete:
                # A new user's first run finds an empty minion cache: move the last download aside.
                for path in cache:
                    if path.exists():
                        path.rename(runs / f"{path.name}-r{index}")
            try:
                result = methods[name](target)
            except MethodTimeout as exc:
                timed_out[name] = str(exc)
                log(
                    f"unpack round {index + 1}/{args.rounds}: {name:26s} TIMED OUT after {args.timeout_s:g} s; "
                    "its remaining rounds are skipped"
                )
            else:
                samples[name].append(result)
                log(
                    f"unpack round {index + 1}/{args.rounds}: {name:26s} {result['wall']:7.2f} s (user "
                    f"{result['user']:.2f} s, sys {result['sys']:.2f} s, cpu stall {result['stall']:.2f} s)"
                )
            if args.defer_delete:
                os.sync()
                time.sleep(args.settle)
            else:
                settle(args, *runs.iterdir(), *cache)
    settle(args, runs, *cache)
    if "curl | tar -xz" in timed_out or not samples.get("curl | tar -xz"):
        raise RuntimeError(
            f"the curl | tar baseline did not complete: {timed_out.get('curl | tar -xz')}"
        )
    measured = summarize(
        {name: runs_ for name, runs_ in samples.items() if name not in timed_out}, "curl | tar -xz"
    )
    summary = {
        name: measured.get(name)
        or {
            "timed_out_after_s": args.timeout_s,
            "error": timed_out[name],
            "completed_runs": [round(run["wall"], 3) for run in samples[name]],
        }
        for name in methods
    }
    engine_s = summary.get("engine (in-process)", {}).get("median_s")
    if engine_s and "median_s" in summary.get("stock archive.extracted", {}):
        for name in ("engine (in-process)", "salt-call dcc.install"):
            if "median_s" in summary.get(name, {}):
                summary["stock archive.extracted"][
                    f"ratio_to_{name.split()[0].replace('-', '_')}"
                ] = round(
                    summary["stock archive.extracted"]["median_s"] / summary[name]["median_s"], 3
                )
    return summary


# ---- section: converged apply ------------------------------------------------------------------------


def _outside(scratch: Path, states: dict) -> list:
    """States (from a test=True run) that would change a path outside the scratch filesystem."""
    found = []
    for key, value in states.items():
        name = key.split("_|-")[2] if key.count("_|-") >= 3 else ""
        would_change = value.get("result") is None or value.get("changes")
        if (
            would_change
            and name.startswith("/")
            and not Path(name).resolve().is_relative_to(scratch.resolve())
        ):
            found.append(f"{key.split('_|-')[0]}.{key.split('_|-')[-1]} {name}")
    return found


def section_converged(args, work: Path, scratch: Path, conf: Path) -> dict:
    log(
        "converged: first apply of the 5-app production (ours) and the 5 archive.extracted states (stock)"
    )
    for sls in ("workstation", "stock"):
        # The formula also writes machine files (launchers, license environment ...): write_minion
        # points those under the scratch filesystem; refuse to apply if anything still lands outside.
        out = work / f"plan-{sls}.json"
        with open(out, "wb") as handle:
            run_child(
                salt_call(conf, "--out=json", "state.apply", sls, "test=True"),
                stdout=handle,
                check=False,
                timeout=SETUP_TIMEOUT_S,
            )
        outside = _outside(scratch, json.loads(out.read_text()).get("local") or {})
        if outside:
            raise RuntimeError(
                f"state.apply {sls} would write outside {scratch}: {outside}; redirect those paths "
                "in write_minion (workstation:lookup:os) before benchmarking"
            )
        out = work / f"setup-{sls}.json"
        with open(out, "wb") as handle:
            wall = run_child(
                salt_call(conf, "--out=json", "--retcode-passthrough", "state.apply", sls),
                stdout=handle,
                timeout=SETUP_TIMEOUT_S,
            )["wall"]
        log(f"  first state.apply {sls}: {wall:.2f} s")
    checks = {}
    for sls in ("workstation", "workstation.apps", "stock"):
        out = work / f"check-{sls}.json"
        with open(out, "wb") as handle:
            run_child(
                salt_call(conf, "--out=json", "--retcode-passthrough", "state.apply", sls),
                stdout=handle,
                timeout=SETUP_TIMEOUT_S,
            )
        states = json.loads(out.read_text())["local"]
        changed = [key for key, value in states.items() if value.get("changes")]
        if changed:
            raise RuntimeError(f"state.apply {sls} is not converged after its first run: {changed}")
        checks[sls] = len(states)
    methods = {
        "state.apply empty": ("empty",),
        "state.apply workstation (converged)": ("workstation",),
        "state.apply workstation.apps (converged)": ("workstation.apps",),
        "state.apply stock (converged)": ("stock",),
    }
    samples = {name: [] for name in methods}
    for index in range(args.converged_rounds):
        for name in order_for(index, list(methods)):
            samples[name].append(
                run_child(
                    salt_call(conf, "--retcode-passthrough", "state.apply", *methods[name]),
                    timeout=args.timeout_s,
                )
            )
        log(
            f"converged round {index + 1}/{args.converged_rounds}: "
            + ", ".join(f"{name.split()[1]} {samples[name][-1]['wall']:.2f} s" for name in methods)
        )
    summary = summarize(samples, "state.apply empty")
    summary["_states"] = {**checks, "empty": 1}
    return summary


# ---- section: peak memory ------------------------------------------------------------------------------

_ENGINE_CHILD = """
import json, pathlib, sys
sys.path[:0] = {paths!r}
import salt_workstation
from salt_workstation import pillar
from salt_workstation.engine import AppStore
mode, root, depot, app, version, spec, expected = sys.argv[1:8]
if not pathlib.Path(salt_workstation.__file__).resolve().is_relative_to(pathlib.Path(expected).resolve()):
    sys.exit(f"salt_workstation came from {{salt_workstation.__file__}}, not {{expected}}")
AppStore(root).install(pillar.resolve_spec(app, version, json.loads(spec), depot))
"""

_MEMORY_CHILD = """
import json, sys
sys.path[:0] = {paths!r}
from salt_workstation import pillar
from salt_workstation.engine import AppStore
import libarchive, urllib.request
mode, root, depot, app, version, spec = sys.argv[1:7]
if mode == "install":
    AppStore(root).install(pillar.resolve_spec(app, version, json.loads(spec), depot))
"""


def section_memory(args, scratch: Path, conf: Path, depot: Depot, metas: dict) -> dict:
    child = _MEMORY_CHILD.format(paths=[str(REPO)])
    rows = {}
    for label, app in (("mid", MEM_APP), ("big", BIG_APP)):
        meta = metas[app]
        spec = json.dumps(
            {
                "source": meta["file"],
                "hash": "sha256:" + meta["sha256"],
                "strip_components": 1,
                "launchers": {app: meta["launcher"]},
            }
        )
        target = scratch / "runs" / f"memory-{label}"
        results = {}
        for variant, argv_idle, argv_install in (
            (
                "python engine",
                [
                    sys.executable,
                    "-c",
                    child,
                    "idle",
                    str(target),
                    depot.url + "/",
                    app,
                    BIG_VERSION,
                    spec,
                ],
                [
                    sys.executable,
                    "-c",
                    child,
                    "install",
                    str(target),
                    depot.url + "/",
                    app,
                    BIG_VERSION,
                    spec,
                ],
            ),
            (
                "salt-call",
                salt_call(conf, "test.true"),
                salt_call(
                    conf, "--out=json", "dcc.install", app, BIG_VERSION, f"install_root={target}"
                ),
            ),
        ):
            settle(args, target)
            idle_kib = run_child(argv_idle, poll_hwm=True, timeout=args.timeout_s)["hwm_kib"]
            try:
                measured = run_child(argv_install, poll_hwm=True, timeout=args.timeout_s)
                wall, peak_kib, note = measured["wall"], measured["hwm_kib"], ""
                if not (target / "apps" / app / BIG_VERSION / meta["launcher"]).exists():
                    raise RuntimeError(f"memory run {variant} {app} did not install")
            except MethodTimeout as exc:  # the peak until then still counts
                wall, peak_kib, note = (
                    args.timeout_s,
                    exc.hwm_kib,
                    f"timed out after {args.timeout_s:g} s",
                )
            results[variant] = {
                "idle_mib": round(idle_kib / 1024, 1),
                "peak_mib": round(peak_kib / 1024, 1),
                "growth_mib": round((peak_kib - idle_kib) / 1024, 1),
                "wall_s": round(wall, 2),
            }
            if note:
                results[variant]["note"] = note
            log(
                f"memory {label} ({meta['unpacked_bytes'] / 2**20:.0f} MiB) {variant}: idle "
                f"{idle_kib / 1024:.1f} MiB, peak {peak_kib / 1024:.1f} MiB {note}"
            )
        settle(args, target)
        rows[label] = {
            "archive_unpacked_mib": round(meta["unpacked_bytes"] / 2**20, 1),
            "archive_compressed_mb": round(meta["compressed_bytes"] / 1e6, 1),
            "files": meta["files"],
            **results,
        }
    return rows


# ---- section: where the engine's time goes ---------------------------------------------------------------


def section_profile(args, work: Path, scratch: Path, depot: Depot, meta: dict) -> dict:
    """Break an engine install down into stages, and cProfile one whole install."""
    import libarchive

    from salt_workstation.depot import HashingReader
    from salt_workstation.unpack import READ_BLOCK

    url = f"{depot.url}/{meta['file']}"

    def http_read_hash():
        reader = HashingReader(urllib.request.urlopen(url), "sha256")
        reader.drain(READ_BLOCK)
        reader.close()

    def decompress_parse_hash():
        """HTTP + archive hash + gunzip + tar parsing, every data block read, nothing written."""
        import ctypes

        from libarchive import ffi

        reader = HashingReader(urllib.request.urlopen(url), "sha256")
        buff, size, offset = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_longlong()
        with libarchive.stream_reader(reader, block_size=READ_BLOCK) as archive:
            for entry in archive:
                while (
                    ffi.read_data_block(
                        entry._archive_p,
                        ctypes.byref(buff),
                        ctypes.byref(size),
                        ctypes.byref(offset),
                    )
                    != ffi.ARCHIVE_EOF
                ):
                    pass
        reader.drain()
        reader.close()

    def per_file_sha256():
        """sha256 over the unpacked byte count, in 64 KiB pieces (what per-file hashing adds)."""
        block = os.urandom(64 << 10)
        digest = hashlib.sha256()
        for _ in range(meta["unpacked_bytes"] // len(block)):
            digest.update(block)

    python_stages = {
        "http read + sha256 (python)": http_read_hash,
        "+ gunzip + tar parse (libarchive, no writes)": decompress_parse_hash,
        "sha256 of all unpacked bytes (per-file hashing)": per_file_sha256,
    }
    names = [
        "curl | gzip -dc > /dev/null",
        "curl | tar -xz (reference)",
        *python_stages,
        "engine install (in-process)",
    ]
    stages = {name: [] for name in names}
    for _ in range(args.profile_rounds):
        stages["curl | gzip -dc > /dev/null"].append(
            run_child(f"curl -sSf '{url}' | gzip -dc > /dev/null")["wall"]
        )
        target = scratch / "runs" / "profile-curltar"
        target.mkdir(parents=True, exist_ok=True)
        stages["curl | tar -xz (reference)"].append(
            run_child(f"curl -sSf '{url}' | tar -xzf - -C '{target}'")["wall"]
        )
        settle(args, target)
        for name, fn in python_stages.items():
            stages[name].append(time_in_process(fn)["wall"])
        target = scratch / "runs" / "profile-engine"
        stages["engine install (in-process)"].append(
            time_in_process(functools.partial(engine_install, target, meta, depot.url))["wall"]
        )
        settle(args, target)
    result = {name: round(median(walls), 3) for name, walls in stages.items()}
    for name, value in result.items():
        log(f"profile: {name:50s} {value:6.2f} s")

    target = scratch / "runs" / "profile-cprofile"
    profiler = cProfile.Profile()
    profiler.enable()
    engine_install(target, meta, depot.url)
    profiler.disable()
    settle(args, target)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
    stats.print_stats(25)
    (work / "profile-engine.txt").write_text(text.getvalue())
    top = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in sorted(
        stats.stats.items(), key=lambda item: item[1][2], reverse=True
    )[:12]:
        top.append(
            {
                "function": f"{Path(filename).name}:{line}:{function}",
                "calls": calls,
                "tottime_s": round(tottime, 3),
                "cumtime_s": round(cumtime, 3),
            }
        )
    return {
        "stages_median_s": result,
        "cprofile_top_tottime": top,
        "cprofile_file": str(work / "profile-engine.txt"),
    }


# ---- report ------------------------------------------------------------------------------------------------


def table(rows: list, headers: list) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def report(results: dict) -> str:
    parts = []
    for section in ("converged", "unpack", "memory", "profile"):
        if isinstance(results.get(section), dict) and "error" in results[section]:
            parts.append(f"Section {section} FAILED: {results[section]['error'][-1500:]}\n")
    results = {
        key: value
        for key, value in results.items()
        if not (isinstance(value, dict) and "error" in value)
    }
    unpack = results.get("unpack")
    if unpack:
        meta = results["archives"][BIG_APP]
        parts.append(
            f"Unpack {meta['unpacked_bytes'] / 2**20:.0f} MiB / {meta['files']} files "
            f"({meta['compressed_bytes'] / 1e6:.0f} MB tar.gz) over loopback HTTP, "
            f"{results['args']['rounds']} rounds, alternating:"
        )
        rows = []
        for name, row in unpack.items():
            if "timed_out_after_s" in row:
                done = " ".join(f"{r:.2f}" for r in row["completed_runs"])
                rows.append(
                    [name, f">{row['timed_out_after_s']:g}", "", "", "", "timed out", "", done]
                )
                continue
            rows.append(
                [
                    name,
                    f"{row['median_s']:.2f}",
                    f"{row['median_user_s']:.2f}",
                    f"{row['median_sys_s']:.2f}",
                    f"{row['median_cpu_stall_s']:.2f}",
                    f"{row['ratio_to_baseline']:.2f}x",
                    f"{row['median_round_ratio']:.2f}x",
                    " ".join(f"{r:.2f}" for r in row["runs"]),
                ]
            )
        parts.append(
            table(
                rows,
                [
                    "method",
                    "median s",
                    "user s",
                    "sys s",
                    "stall s",
                    "vs curl|tar",
                    "per-round",
                    "runs",
                ],
            )
        )
    converged = results.get("converged")
    if converged:
        parts.append(
            f"\nConverged apply ({results['args']['converged_rounds']} rounds, alternating):"
        )
        rows = [
            [
                name,
                f"{row['median_s']:.2f}",
                f"{row['median_user_s']:.2f}",
                f"{row['median_sys_s']:.2f}",
                f"{row['median_cpu_stall_s']:.2f}",
                f"{row['ratio_to_baseline']:.2f}x",
                f"{row['median_round_ratio']:.2f}x",
                " ".join(f"{r:.2f}" for r in row["runs"]),
            ]
            for name, row in converged.items()
            if not name.startswith("_")
        ]
        parts.append(
            table(
                rows,
                [
                    "method",
                    "median s",
                    "user s",
                    "sys s",
                    "stall s",
                    "vs empty",
                    "per-round",
                    "runs",
                ],
            )
        )
    memory = results.get("memory")
    if memory:
        parts.append("\nPeak RSS of one install (VmHWM, polled every 10 ms):")
        rows = []
        for _label, row in memory.items():
            for variant in ("python engine", "salt-call"):
                cell = row[variant]
                rows.append(
                    [
                        f"{row['archive_unpacked_mib']:.0f} MiB / {row['files']} files",
                        variant,
                        f"{cell['idle_mib']:.1f}",
                        f"{cell['peak_mib']:.1f}",
                        f"+{cell['growth_mib']:.1f}",
                        f"{cell['wall_s']:.2f}",
                        cell.get("note", ""),
                    ]
                )
        parts.append(
            table(rows, ["archive", "process", "idle MiB", "peak MiB", "growth MiB", "wall s", ""])
        )
    profile = results.get("profile")
    if profile:
        parts.append("\nWhere an engine install's time goes (medians):")
        parts.append(
            table([[k, f"{v:.2f}"] for k, v in profile["stages_median_s"].items()], ["stage", "s"])
        )
        parts.append("cProfile, top by own time:")
        parts.append(
            table(
                [
                    [r["function"], r["calls"], f"{r['tottime_s']:.2f}", f"{r['cumtime_s']:.2f}"]
                    for r in profile["cprofile_top_tottime"]
                ],
                ["function", "calls", "tottime", "cumtime"],
            )
        )
    verdict = results.get("targets")
    if verdict:
        parts.append("\nTargets:")
        parts.append(
            table(
                [
                    [k, v["target"], v["measured"], "PASS" if v["ok"] else "MISS"]
                    for k, v in verdict.items()
                ],
                ["target", "want", "measured", ""],
            )
        )
    return "\n".join(parts)


def verdicts(results: dict) -> dict:
    out = {}
    unpack = results.get("unpack") or {}
    if "ratio_to_baseline" in unpack.get("engine (in-process)", {}):
        ratio = unpack["engine (in-process)"]["ratio_to_baseline"]
        out["engine / curl|tar"] = {"target": "<= 1.2", "measured": ratio, "ok": ratio <= 1.2}
    if "salt-call dcc.install" in unpack:
        row = unpack["salt-call dcc.install"]
        if "timed_out_after_s" in row:
            out["salt-call dcc.install / curl|tar"] = {
                "target": "<= 1.2",
                "ok": False,
                "measured": f"timed out (>{row['timed_out_after_s']:g} s)",
            }
        else:
            ratio = row["ratio_to_baseline"]
            out["salt-call dcc.install / curl|tar"] = {
                "target": "<= 1.2",
                "measured": ratio,
                "ok": ratio <= 1.2,
            }
    stock = unpack.get("stock archive.extracted", {})
    if "ratio_to_engine" in stock:
        out["stock / engine"] = {
            "target": ">= 2.0",
            "measured": stock["ratio_to_engine"],
            "ok": stock["ratio_to_engine"] >= 2.0,
        }
    if "ratio_to_salt_call" in stock:
        out["stock / salt-call dcc.install"] = {
            "target": ">= 2.0",
            "measured": stock["ratio_to_salt_call"],
            "ok": stock["ratio_to_salt_call"] >= 2.0,
        }
    converged = results.get("converged") or {}
    if "state.apply workstation (converged)" in converged:
        ratio = converged["state.apply workstation (converged)"]["ratio_to_baseline"]
        out["converged workstation / empty"] = {
            "target": "<= 1.2",
            "measured": ratio,
            "ok": ratio <= 1.2,
        }
    memory = results.get("memory") or {}
    for label, row in memory.items():
        for variant in ("python engine", "salt-call"):
            growth = row[variant]["growth_mib"]
            out[f"RSS growth {label} ({variant})"] = {
                "target": "<= +64 MiB",
                "measured": growth,
                "ok": growth <= 64,
            }
    return out


# ---- main ----------------------------------------------------------------------------------------------------

DEFAULTS = {
    "size_mib": 400,
    "files": 16000,
    "rounds": 3,
    "converged_rounds": 9,
    "small_mib": 20,
    "mid_mib": 100,
    "settle": 2.0,
    "profile_rounds": 2,
}
QUICK = {
    "size_mib": 40,
    "files": 1600,
    "rounds": 2,
    "converged_rounds": 3,
    "small_mib": 4,
    "mid_mib": 10,
    "settle": 0.5,
    "profile_rounds": 1,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size-mib", type=float, help="unpacked size of the big archive (MiB) [400; quick 40]"
    )
    parser.add_argument("--files", type=int, help="files in the big archive [16000; quick 1600]")
    parser.add_argument(
        "--rounds", type=int, help="alternating rounds of the unpack section [3; quick 2]"
    )
    parser.add_argument(
        "--converged-rounds",
        type=int,
        help="alternating rounds of the converged section [9; quick 3]",
    )
    parser.add_argument(
        "--small-mib",
        type=float,
        help="unpacked size of each of the 5 production apps [20; quick 4]",
    )
    parser.add_argument(
        "--mid-mib", type=float, help="the smaller archive of the memory section [100; quick 10]"
    )
    parser.add_argument(
        "--settle", type=float, help="seconds to sleep after each delete + sync [2; quick 0.5]"
    )
    parser.add_argument(
        "--profile-rounds", type=int, help="rounds of the profile section's stages [2; quick 1]"
    )
    parser.add_argument(
        "--quick", action="store_true", help="~40 MiB smoke run (4 MiB apps, 10 MiB memory archive)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["unpack", "converged", "memory", "profile"],
        help="run only these sections (repeatable); profile also runs when the engine misses 1.2x",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the profile section")
    parser.add_argument(
        "--skip-method",
        action="append",
        choices=["curl", "engine", "salt-call", "stock"],
        help="leave one unpack method out (repeatable); salt-call drops the startup row too",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=90,
        help="a timed command running longer is killed and reported as timed out (its other "
        "rounds are skipped), so one regression cannot stall the whole run",
    )
    parser.add_argument(
        "--fs",
        choices=["loop", "host"],
        default="loop",
        help="unpack onto a fresh loop-mounted journaled ext4 image (default; needs root) or onto "
        "the filesystem .work is on (see Scratch in run.py)",
    )
    parser.add_argument("--fs-size-gib", type=int, default=16, help="size of the sparse loop image")
    parser.add_argument(
        "--candidate",
        type=Path,
        help="a folder holding another salt_workstation package (a worktree with a proposed change): "
        "the unpack section then also times it and this checkout's engine, each in a fresh "
        "interpreter",
    )
    parser.add_argument("--work", type=Path, default=HERE / ".work")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    presets = QUICK if args.quick else DEFAULTS
    for key, value in presets.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _package_version() -> str:
    try:
        from salt_workstation import __version__
    except ImportError:
        return "?"
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "salt_workstation", "formulas"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{__version__} ({commit}{', with uncommitted changes' if dirty else ''})"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sections = set(args.only or ["unpack", "converged", "memory", "profile"])
    started = time.monotonic()

    depot_dir = work / "depot"
    metas = {}
    wanted = [(BIG_APP, args.size_mib, args.files, 20_505_410)]
    if "memory" in sections:
        wanted.append(
            (
                MEM_APP,
                args.mid_mib,
                max(100, round(args.files * args.mid_mib / args.size_mib)),
                10_505,
            )
        )
    if "converged" in sections:
        wanted += [
            (
                app,
                args.small_mib,
                max(50, round(args.files * args.small_mib / args.size_mib)),
                100 + i,
            )
            for i, app in enumerate(SMALL_APPS)
        ]
    for app, size, files, seed in wanted:
        version = SMALL_VERSION if app in SMALL_APPS else BIG_VERSION
        name = f"{app}-{version}-{size:g}MiB-{files}f.tar.gz"
        log(f"archive {name}: building or reusing the cached one")
        metas[app] = archives.build(
            depot_dir / name,
            app=app,
            version=version,
            size_mib=size,
            files=files,
            seed=seed,
            launcher=app,
        )
        meta = metas[app]
        log(
            f"  {meta['unpacked_bytes'] / 2**20:.1f} MiB unpacked, {meta['files']} files, "
            f"{meta['compressed_bytes'] / 1e6:.1f} MB compressed (ratio "
            f"{meta['compressed_bytes'] / meta['unpacked_bytes']:.3f}), built in {meta['build_seconds']} s"
        )
    for meta in metas.values():  # the depot's files come from the page cache for every method alike
        with open(depot_dir / meta["file"], "rb") as handle:
            while handle.read(8 << 20):
                pass

    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg(),
        },
        "args": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "archives": metas,
    }
    depot = Depot(depot_dir)
    scratch = Scratch(work, args.fs, args.fs_size_gib)
    try:
        scratch_dir = scratch.open()
        args.defer_delete = scratch.kind == "host"
        results["scratch_fs"] = scratch.describe()
        log(f"scratch filesystem: {results['scratch_fs']}")
        conf = write_minion(work, scratch_dir, depot.url, metas)
        report_lines = subprocess.run(
            [SALT_CALL, "--versions-report"], capture_output=True, text=True
        ).stdout
        results["versions"] = {
            name.strip(): value.strip()
            for name, _, value in (line.partition(":") for line in report_lines.splitlines())
            if name.strip() in ("Salt", "Python", "libarchive-c", "Jinja2") and value.strip()
        }
        results["versions"]["salt-workstation"] = _package_version()
        run_child(salt_call(conf, "test.true"))  # compile the loader's bytecode once, untimed

        def guarded(section, function, *arguments):
            """One section failing (a formula broken mid-change, say) leaves the others' figures."""
            try:
                results[section] = function(*arguments)
            except Exception as exc:
                log(f"section {section} failed: {exc}")
                results[section] = {"error": str(exc)[-4000:]}

        if "converged" in sections:
            guarded("converged", section_converged, args, work, scratch_dir, conf)
        if "unpack" in sections:
            guarded("unpack", section_unpack, args, scratch_dir, conf, depot, metas[BIG_APP])
        if "memory" in sections:
            guarded("memory", section_memory, args, scratch_dir, conf, depot, metas)
        engine_row = (results.get("unpack") or {}).get("engine (in-process)")
        missed = engine_row and engine_row["ratio_to_baseline"] > TARGETS["engine_vs_curl_tar"]
        if ("profile" in sections or missed) and not args.no_profile:
            guarded("profile", section_profile, args, work, scratch_dir, depot, metas[BIG_APP])
    finally:
        depot.close()
        scratch.close()
    results["targets"] = verdicts(
        {
            key: value
            for key, value in results.items()
            if not (isinstance(value, dict) and "error" in value)
        }
    )
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    text = json.dumps(results, indent=1)
    (work / "results.json").write_text(text)
    (work / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)  # earlier runs stay
    print()
    print(report(results))
    print(f"\nresults: {work / 'results.json'} (total {results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
