#!/usr/bin/env python3
"""Benchmarks for installs at studio scale (issue #16): parallel installs, version bumps that reuse
the disk, depot mirror failover, and the first install against `curl | tar -xz`.

    .venv/bin/python benchmarks/scale.py            # 5 apps of 100 MiB, 3 rounds (a few minutes)
    .venv/bin/python benchmarks/scale.py --quick    # 5 apps of 20 MiB, 2 rounds: a smoke run
    .venv/bin/python benchmarks/scale.py --only bump,failover

Sizes are small on purpose: the whole run takes a few minutes on a 2-core machine shared with
other work. Every method of a section runs in each round, in alternating order, and the figures
are ratios of medians measured side by side; the spread is each method's min..max over rounds.

The depot is a loopback HTTP server in a process of its own that sends each response at a fixed
rate per connection (`--rate-mib`, like a WAN link or an object store); the first-install and bump
sections use it unthrottled, as the unpack benchmark in run.py does. Everything lives under
benchmarks/.work/scale (git-ignored). Results go to benchmarks/.work/scale/results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.server
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import archives  # noqa: E402  (benchmarks/archives.py)
from run import run_child, salt_call  # noqa: E402  (benchmarks/run.py)

APPS = ["alpha", "beta", "gamma", "delta", "epsilon"]
VERSION, BUMP = "1.0", "1.1"
TARGETS = {
    "parallel_vs_slowest_single": 1.3,
    "bump_vs_curl_tar": 1.0,
    "bump_extra_disk_share": 0.10,
    "first_install_vs_curl_tar": 1.2,
    "failover_refused_added_s": 1.0,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- the depot: a rate-limited loopback server in a process of its own -----------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    rate = 0  # bytes per second per connection; 0: as fast as it goes
    stall = False  # send the headers and nothing more

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        if self.stall:
            time.sleep(3600)
        if not self.rate:
            return super().copyfile(source, outputfile)
        step, started, sent = max(1, self.rate // 50), time.monotonic(), 0
        while chunk := source.read(step):
            outputfile.write(chunk)
            sent += len(chunk)
            ahead = sent / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        return None


def serve(directory: str, rate: int, stall: bool) -> None:
    handler = type("Handler", (_Handler,), {"rate": rate, "stall": stall})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **kw: handler(*a, directory=directory, **kw)
    )
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Depot:
    def __init__(self, directory: Path, rate: int = 0, stall: bool = False):
        argv = [sys.executable, __file__, "--serve", str(directory), str(rate)]
        self.process = subprocess.Popen(
            [*argv, *(["--stall"] if stall else [])], stdout=subprocess.PIPE, text=True
        )
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def close(self):
        self.process.terminate()
        self.process.wait(10)


@contextlib.contextmanager
def depot(directory: Path, rate: int = 0, stall: bool = False):
    server = Depot(directory, rate, stall)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def refusing_url():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused at once
        yield f"http://127.0.0.1:{holder.getsockname()[1]}"


# ---- archives ---------------------------------------------------------------------------------


def build_apps(work: Path, size_mib: float, files: int) -> dict:
    metas = {}
    for index, app in enumerate(APPS):
        path = work / "depot" / f"{app}-{VERSION}.tar.gz"
        metas[app] = archives.build(
            path,
            app=app,
            version=VERSION,
            size_mib=size_mib,
            files=files,
            seed=1600 + index,
            launcher=app,
        )
    return metas


def build_bump(work: Path, meta: dict, changed_share: float) -> dict:
    """The next version of an app: the same tree, with every 1/changed_share-th file's bytes new."""
    source = work / "depot" / meta["file"]
    app = meta["params"]["app"]
    target = work / "depot" / f"{app}-{BUMP}.tar.gz"
    sidecar = target.with_suffix(".json")
    params = {"from": meta["sha256"], "changed_share": changed_share}
    if target.exists() and sidecar.exists() and json.loads(sidecar.read_text())["params"] == params:
        return json.loads(sidecar.read_text())
    rng, every = random.Random(16), round(1 / changed_share)
    changed = regular = unpacked = changed_bytes = 0
    with (
        tarfile.open(source, "r:gz") as old,
        open(target, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.GNU_FORMAT) as new,
    ):
        for member in old:
            member.name = member.name.replace(f"-{VERSION}", f"-{BUMP}", 1)
            data = old.extractfile(member).read() if member.isfile() else None
            if member.isfile():
                regular += 1
                unpacked += len(data)
                if regular % every == 0:
                    data = rng.randbytes(len(data))
                    changed += 1
                    changed_bytes += len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
    meta = {
        "params": params,
        "file": target.name,
        "sha256": archives_sha256(target),
        "files": regular,
        "changed_files": changed,
        "changed_bytes": changed_bytes,
        "unpacked_bytes": unpacked,
        "launcher": meta["launcher"],
    }
    sidecar.write_text(json.dumps(meta, indent=1))
    return meta


def archives_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---- a masterless minion ------------------------------------------------------------------------


def catalog_entry(meta: dict, source=None) -> dict:
    return {
        "source": source or meta["file"],
        "hash": "sha256:" + meta["sha256"],
        "strip_components": 1,
        "launchers": {meta["launcher"].rsplit("/", 1)[1]: meta["launcher"]},
    }


def write_minion(work: Path, install_root: Path, depot_url, catalog: dict, apps: dict, **top):
    conf = work / "minion"
    pillar_dir = conf / "pillar"
    pillar_dir.mkdir(parents=True, exist_ok=True)
    (conf / "states").mkdir(exist_ok=True)
    (conf / "minion").write_text(
        json.dumps(
            {
                "file_client": "local",
                "root_dir": str(work / "minion-root"),
                "fileserver_backend": ["roots", "workstation"],
                "file_roots": {"base": [str(conf / "states")]},
                "pillar_roots": {"base": [str(pillar_dir)]},
            }
        )
    )
    system = work / "system"
    for folder in ("usr/local/bin", "usr/local/share", "etc/xdg"):
        (system / folder).mkdir(parents=True, exist_ok=True)
    (system / "etc" / "fstab").touch()
    pillar = {
        "lookup": {
            "os": {
                "bin_dir": str(system / "usr/local/bin"),
                "xdg_data_dir": str(system / "usr/local/share"),
                "xdg_config_dir": str(system / "etc/xdg"),
                "fstab": str(system / "etc/fstab"),
                "licenses": {"root": str(system)},
            }
        },
        "install_root": str(install_root),
        "depot": depot_url,
        "retain": 1,
        "catalog": catalog,
        "productions": {"show": {"apps": apps}},
        **top,
    }
    (pillar_dir / "top.sls").write_text(json.dumps({"base": {"*": ["workstation"]}}))
    (pillar_dir / "workstation.sls").write_text(json.dumps({"workstation": pillar}))
    return conf


def apply(conf: Path, timeout: float) -> dict:
    out = conf / "apply.out"
    with open(out, "wb") as handle:
        result = run_child(
            salt_call(conf, "--out=json", "state.apply", "workstation"),
            stdout=handle,
            timeout=timeout,
            check=False,
        )
    states = json.loads(out.read_text())["local"]
    failed = {key: value["comment"] for key, value in states.items() if value["result"] is not True}
    if failed:
        raise RuntimeError(f"the apply failed: {failed}")
    result["states"] = states
    return result


def own_bytes(folder: Path, others: Path) -> int:
    """Disk blocks of what `folder` holds that `others` does not share (by inode): the extra disk
    a version takes beside another. Counted per inode, so other work on the disk does not count."""

    def inodes(top: Path) -> set:
        found = set()
        for parent, dirs, files in os.walk(top):
            for name in dirs + files:
                info = os.lstat(os.path.join(parent, name))
                found.add((info.st_dev, info.st_ino))
        return found

    shared, total = inodes(others), 0
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            info = os.lstat(os.path.join(parent, name))
            if (info.st_dev, info.st_ino) not in shared:
                total += info.st_blocks * 512
                shared.add((info.st_dev, info.st_ino))  # a hardlink inside the version counts once
    return total


def clean(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    os.sync()


def spread(runs: list) -> dict:
    return {
        "median_s": round(statistics.median(runs), 3),
        "min_s": round(min(runs), 3),
        "max_s": round(max(runs), 3),
        "runs": [round(run, 3) for run in runs],
    }


def alternate(round_index: int, methods: list) -> list:
    return list(methods) if round_index % 2 == 0 else list(reversed(methods))


# ---- sections -----------------------------------------------------------------------------------


def section_parallel(args, work: Path, metas: dict) -> dict:
    """5 apps from a rate-limited depot: the apply with parallel installs, the same apply with one
    worker (today's sequential apply), the slowest app alone, and the engine's own process pool."""
    rate = int(args.rate_mib * (1 << 20))
    catalog = {app: {"versions": {VERSION: catalog_entry(meta)}} for app, meta in metas.items()}
    everything = {app: VERSION for app in metas}
    slowest = max(metas, key=lambda app: metas[app]["compressed_bytes"])
    root = work / "scratch" / "parallel"
    samples: dict = {"parallel": [], "sequential": [], "slowest_alone": [], "engine_pool": []}
    with depot(work / "depot", rate) as server:

        def run_apply(apps: dict, workers: int) -> float:
            conf = write_minion(work, root, server.url, catalog, apps, install_workers=workers)
            result = apply(conf, args.timeout_s)
            return result["wall"]

        def engine_pool() -> float:
            code = (
                "import concurrent.futures as f, sys, json;"
                "from salt_workstation import pillar, engine;"
                "c=json.loads(sys.argv[1]);"
                "specs=[pillar.resolve_spec(a, v, s, c['depot']) for a, v, s in c['specs']];"
                "store=engine.AppStore(c['root']);"
                "ex=f.ProcessPoolExecutor(c['workers']);"
                "list(ex.map(store.install, specs))"
            )
            config = {
                "depot": server.url,
                "root": str(root),
                "workers": args.workers,
                "specs": [[app, VERSION, catalog[app]["versions"][VERSION]] for app in metas],
            }
            return run_child([sys.executable, "-c", code, json.dumps(config)])["wall"]

        methods = {
            "parallel": lambda: run_apply(everything, args.workers),
            "sequential": lambda: run_apply(everything, 1),
            "slowest_alone": lambda: run_apply({slowest: VERSION}, 1),
            "engine_pool": engine_pool,
        }
        for round_index in range(args.rounds):
            for method in alternate(round_index, list(methods)):
                clean(root)
                samples[method].append(methods[method]())
                log(f"parallel round {round_index + 1}: {method} {samples[method][-1]:.2f} s")
        clean(root)
    figures = {method: spread(runs) for method, runs in samples.items()}
    base = statistics.median(samples["slowest_alone"])
    return {
        "apps": len(metas),
        "unpacked_mib_each": round(
            statistics.mean(m["unpacked_bytes"] for m in metas.values()) / 2**20, 1
        ),
        "compressed_mib_each": round(
            statistics.mean(m["compressed_bytes"] for m in metas.values()) / 2**20, 1
        ),
        "rate_mib_per_connection": args.rate_mib,
        "workers": args.workers,
        "figures": figures,
        "parallel_vs_slowest_single": round(statistics.median(samples["parallel"]) / base, 3),
        "sequential_vs_slowest_single": round(statistics.median(samples["sequential"]) / base, 3),
        "parallel_vs_sequential": round(
            statistics.median(samples["parallel"]) / statistics.median(samples["sequential"]), 3
        ),
        "engine_pool_vs_parallel_apply": round(
            statistics.median(samples["engine_pool"]) / statistics.median(samples["parallel"]), 3
        ),
    }


def section_bump(args, work: Path, metas: dict) -> dict:
    """A version bump with 95% of the files unchanged, beside the installed version: salt-call
    dcc.install of the new version against `curl | tar -xz` of its archive, and the extra disk."""
    app = APPS[0]
    old, new = metas[app], build_bump(work, metas[app], 0.05)
    catalog = {
        app: {"versions": {VERSION: catalog_entry(old), BUMP: catalog_entry(new)}},
    }
    root, untar = work / "scratch" / "bump", work / "scratch" / "bump-tar"
    samples: dict = {"bump_install": [], "curl_tar": [], "bump_in_process": []}
    extra = []
    with depot(work / "depot") as server:
        conf = write_minion(work, root, server.url, catalog, {app: VERSION})
        url = f"{server.url}/{new['file']}"

        def bump_install():
            clean(root / "apps" / app / BUMP)
            result = run_child(
                salt_call(conf, "--out=json", "dcc.install", app, BUMP),
                stdout=subprocess.DEVNULL,
                timeout=args.timeout_s,
            )
            versions = root / "apps" / app
            extra.append(own_bytes(versions / BUMP, versions / VERSION))
            return result["wall"]

        def bump_in_process():
            clean(root / "apps" / app / BUMP)
            code = (
                "import sys, json; from salt_workstation import pillar, engine;"
                "c=json.loads(sys.argv[1]);"
                "engine.AppStore(c['root']).install("
                "pillar.resolve_spec(c['app'], c['v'], c['spec'], c['depot']))"
            )
            config = {
                "root": str(root),
                "app": app,
                "v": BUMP,
                "spec": catalog[app]["versions"][BUMP],
                "depot": server.url,
            }
            return run_child([sys.executable, "-c", code, json.dumps(config)])["wall"]

        def curl_tar():
            clean(untar)
            untar.mkdir(parents=True)
            return run_child(f"curl -sSf '{url}' | tar -xzf - -C '{untar}'")["wall"]

        clean(root, untar)
        apply(conf, args.timeout_s)  # the installed version, untimed
        methods = {
            "bump_install": bump_install,
            "curl_tar": curl_tar,
            "bump_in_process": bump_in_process,
        }
        for round_index in range(args.rounds):
            for method in alternate(round_index, list(methods)):
                samples[method].append(methods[method]())
                log(f"bump round {round_index + 1}: {method} {samples[method][-1]:.2f} s")
        manifest = json.loads(
            (root / "apps" / app / BUMP / ".workstation-manifest.json").read_text()
        )
        full = own_bytes(untar, work / "nothing")  # the same files, each a copy of its own
        clean(root, untar)
    curl = statistics.median(samples["curl_tar"])
    return {
        "files": new["files"],
        "changed_files": new["changed_files"],
        "unpacked_mib": round(new["unpacked_bytes"] / 2**20, 1),
        "changed_mib": round(new["changed_bytes"] / 2**20, 1),
        "shared": manifest["shared"],
        "figures": {method: spread(runs) for method, runs in samples.items()},
        "bump_vs_curl_tar": round(statistics.median(samples["bump_install"]) / curl, 3),
        "bump_in_process_vs_curl_tar": round(
            statistics.median(samples["bump_in_process"]) / curl, 3
        ),
        "extra_disk_mib": [round(value / 2**20, 2) for value in extra],
        "full_disk_mib": round(full / 2**20, 2),
        "bump_extra_disk_share": round(statistics.median(extra) / full, 3),
    }


def section_first(args, work: Path, metas: dict) -> dict:
    """The first `state.apply workstation` of one app against `curl | tar -xz` of the same URL."""
    app = APPS[1]
    meta = metas[app]
    catalog = {app: {"versions": {VERSION: catalog_entry(meta)}}}
    root, untar = work / "scratch" / "first", work / "scratch" / "first-tar"
    samples: dict = {"state_apply": [], "curl_tar": []}
    with depot(work / "depot") as server:
        conf = write_minion(work, root, server.url, catalog, {app: VERSION})
        url = f"{server.url}/{meta['file']}"

        def state_apply():
            clean(root)
            return apply(conf, args.timeout_s)["wall"]

        def curl_tar():
            clean(untar)
            untar.mkdir(parents=True)
            return run_child(f"curl -sSf '{url}' | tar -xzf - -C '{untar}'")["wall"]

        methods = {"state_apply": state_apply, "curl_tar": curl_tar}
        for round_index in range(args.rounds):
            for method in alternate(round_index, list(methods)):
                samples[method].append(methods[method]())
                log(f"first round {round_index + 1}: {method} {samples[method][-1]:.2f} s")
        clean(root, untar)
    return {
        "unpacked_mib": round(meta["unpacked_bytes"] / 2**20, 1),
        "files": meta["files"],
        "figures": {method: spread(runs) for method, runs in samples.items()},
        "first_install_vs_curl_tar": round(
            statistics.median(samples["state_apply"]) / statistics.median(samples["curl_tar"]), 3
        ),
    }


def section_failover(args, work: Path, metas: dict) -> dict:
    """Added time when the first depot mirror refuses connections, and when it stalls (bounded by
    depot_idle_timeout), for one app installed by the engine in a fresh interpreter."""
    app = "zeta"  # a small app of its own: the added time, not the install, is what is measured
    meta = archives.build(
        work / "depot" / f"{app}-{VERSION}.tar.gz",
        app=app,
        version=VERSION,
        size_mib=args.failover_mib,
        files=200,
        seed=1699,
        launcher=app,
    )
    root = work / "scratch" / "failover"
    samples: dict = {"direct": [], "refused_first": [], "stalled_first": []}
    code = (
        "import sys, json; from salt_workstation import pillar, engine;"
        "c=json.loads(sys.argv[1]);"
        "engine.AppStore(c['root'], {'depot_idle_timeout': c['idle']}).install("
        "pillar.resolve_spec(c['app'], '1.0', c['spec'], c['depot']))"
    )
    with (
        depot(work / "depot") as good,
        depot(work / "depot", stall=True) as stalling,
        refusing_url() as refused,
    ):

        def install(mirrors):
            clean(root)
            config = {
                "root": str(root),
                "app": app,
                "spec": catalog_entry(meta),
                "depot": mirrors,
                "idle": args.idle_timeout,
            }
            return run_child([sys.executable, "-c", code, json.dumps(config)])["wall"]

        methods = {
            "direct": lambda: install([good.url]),
            "refused_first": lambda: install([refused, good.url]),
            "stalled_first": lambda: install([stalling.url, good.url]),
        }
        for round_index in range(args.rounds):
            for method in alternate(round_index, list(methods)):
                samples[method].append(methods[method]())
                log(f"failover round {round_index + 1}: {method} {samples[method][-1]:.2f} s")
        clean(root)
    direct = statistics.median(samples["direct"])
    return {
        "unpacked_mib": round(meta["unpacked_bytes"] / 2**20, 1),
        "idle_timeout_s": args.idle_timeout,
        "figures": {method: spread(runs) for method, runs in samples.items()},
        "failover_refused_added_s": round(statistics.median(samples["refused_first"]) - direct, 3),
        "failover_stalled_added_s": round(statistics.median(samples["stalled_first"]) - direct, 3),
    }


SECTIONS = {
    "parallel": section_parallel,
    "bump": section_bump,
    "first": section_first,
    "failover": section_failover,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 apps of 20 MiB, 2 rounds")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma separated")
    parser.add_argument("--app-mib", type=float, default=100.0)
    parser.add_argument("--files", type=int, default=2000, help="files per app")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rate-mib", type=float, default=8.0, help="per connection, parallel section"
    )
    parser.add_argument(
        "--workers", type=int, default=5, help="install_workers for the parallel apply"
    )
    parser.add_argument("--idle-timeout", type=int, default=2, help="depot_idle_timeout, failover")
    parser.add_argument(
        "--failover-mib", type=float, default=5.0, help="the failover section's app"
    )
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--serve", nargs=2, metavar=("DIR", "RATE"), help=argparse.SUPPRESS)
    parser.add_argument("--stall", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.app_mib, args.files, args.rounds = 20.0, 500, 2
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.stall)
        return 0
    work = HERE / ".work" / "scale"
    (work / "scratch").mkdir(parents=True, exist_ok=True)
    log(f"building {len(APPS)} archives of {args.app_mib:g} MiB ({args.files} files each)")
    metas = build_apps(work, args.app_mib, args.files)
    results = {
        "args": {k: v for k, v in vars(args).items() if k not in ("serve", "stall")},
        "cpus": os.cpu_count(),
    }
    for name in args.only.split(","):
        log(f"section {name}")
        load = os.getloadavg()[0]
        results[name] = SECTIONS[name](args, work, metas)
        results[name]["loadavg_1min"] = [round(load, 1), round(os.getloadavg()[0], 1)]
    verdicts = {}
    for section in results.values():
        if isinstance(section, dict):
            for key, goal in TARGETS.items():
                if key in section:
                    figure = section[key]
                    ok = figure < goal if key == "bump_vs_curl_tar" else figure <= goal
                    verdicts[key] = {"figure": figure, "goal": goal, "met": ok}
    results["verdicts"] = verdicts
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "args"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
