"""The fleet report: per minion and production, wanted vs installed, drift, GPU, licenses, display.

Minions gather their own part (`workstation.report`); the runner collects the
returns through Salt and renders them here as a table, JSON, or one
self-contained HTML page.
"""

from __future__ import annotations

import html
import json
import time

NO_ANSWER = "no answer"


def drift_of(state_return, comment_chars: int = 300) -> list[dict]:
    """What a `state.apply workstation test=True` return says an apply would change (or cannot do),
    each with the first `comment_chars` of its comment's first line."""
    if not isinstance(state_return, dict):
        return [
            {
                "id": "state.apply",
                "result": False,
                "comment": "; ".join(map(str, state_return or [])),
            }
        ]
    drift = []
    for state in sorted(state_return.values(), key=lambda s: s.get("__run_num__", 0)):
        if state.get("changes") or state.get("result") is not True:
            drift.append(
                {
                    "id": state.get("__id__", state.get("name")),
                    "result": state.get("result"),
                    "changes": sorted(state.get("changes") or {}),
                    "comment": str(state.get("comment", "")).splitlines()[0][:comment_chars]
                    if state.get("comment")
                    else "",
                }
            )
    return drift


def minion_summary(plan: dict, drift: list, extras: dict, installed: dict | None = None) -> dict:
    """One minion's answer: its productions' apps (wanted, what an apply would do, the versions
    installed now), the drift, and whatever features reported. `installed` is app -> versions."""
    installed = installed or {}
    productions = {
        production: {
            app: {
                "wanted": entry["version"],
                "action": entry["action"],
                "installed": sorted(installed.get(app) or []),
            }
            for app, entry in apps.items()
        }
        for production, apps in plan.get("productions", {}).items()
    }
    summary = {
        "status": "ok",
        "productions": productions,
        "remove": plan.get("remove", {}),
        "pillar_errors": len(plan.get("errors", [])),
        "drift": drift,
    }
    summary.update(extras)
    gpu = extras.get("gpu") if isinstance(extras.get("gpu"), dict) else {}
    summary["reboot_required"] = gpu.get("reboot_required")
    # The newest installed kernel has no NVIDIA module: the next boot comes up without a driver.
    next_boot = gpu.get("next_boot") if isinstance(gpu.get("next_boot"), dict) else {}
    summary["next_boot_without_driver"] = next_boot.get("problem")
    return summary


def fleet(
    returns: dict,
    expected: list,
    target: str,
    seconds: float,
    timeout: float = 60,
    gather_job_timeout: float = 5,
) -> dict:
    """The runner's report: every expected minion, those that did not answer listed as such.

    `seconds` is the whole run, from publishing the job until the runner stopped waiting: with a
    silent minion it includes the wait for it (`timeout`, then `gather_job_timeout`).
    """
    minions = {}
    for minion in sorted(set(expected) | set(returns)):
        answer = returns.get(minion)
        if not isinstance(answer, dict) or "productions" not in answer:
            minions[minion] = {"status": NO_ANSWER if answer is None else "error", "detail": answer}
        else:
            minions[minion] = answer
    words = {minion: _status_word(entry) for minion, entry in minions.items()}
    return {
        "target": target,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 2),
        "timeout": timeout,
        "gather_job_timeout": gather_job_timeout,
        "answered": sum(1 for entry in minions.values() if entry["status"] == "ok"),
        "expected": len(minions),
        "converged": sorted(m for m, word in words.items() if word == "converged"),
        "drifted": sorted(m for m, word in words.items() if word == "drift"),
        "silent": sorted(m for m, word in words.items() if word == NO_ANSWER),
        "errors": sorted(m for m, word in words.items() if word == "error"),
        # Cloned from an image that lacks versions the pillar wants now: their boot downloads.
        "image_lacking": sorted(m for m, e in minions.items() if _image_lacks(e)),
        "minions": minions,
    }


def _productions(report: dict) -> dict:
    """production -> minion -> its apps there."""
    table: dict = {}
    for minion, entry in report["minions"].items():
        for production, apps in (entry.get("productions") or {}).items():
            table.setdefault(production, {})[minion] = apps
    return table


def _image_lacks(entry: dict) -> list:
    image = entry.get("image")
    return (image.get("lacks") or []) if isinstance(image, dict) else []


def _image_word(entry: dict) -> str:
    if not isinstance(entry.get("image"), dict):
        return "-"
    lacks = _image_lacks(entry)
    return f"lacks {', '.join(lacks)}" if lacks else "has all"


def _image_cell(entry: dict) -> str:
    """The minion table's image cell: when it was baked, and what it lacks (highlighted)."""
    if not isinstance(entry.get("image"), dict):
        return "<td>—"
    text = html.escape(f"baked {entry['image'].get('baked_at')}: {_image_word(entry)}")
    return f"<td class=drift>{text}" if _image_lacks(entry) else f"<td>{text}"


def _status_word(entry: dict) -> str:
    if entry["status"] != "ok":
        return entry["status"]
    return "drift" if entry["drift"] else "converged"


def summary(report: dict) -> str:
    """The counts and the one timing both renderings head with."""
    counts = (
        f"{report['answered']} of {report['expected']} minions answered ({report['target']}): "
        f"{len(report['converged'])} converged, {len(report['drifted'])} drifted, "
        f"{len(report['silent'])} silent"
    )
    if report["errors"]:
        counts += f", {len(report['errors'])} failed to report"
    return (
        f"{counts}. The report took {report['seconds']} s from start to end; a silent minion "
        f"is waited for {report['timeout']} s, then asked {report['gather_job_timeout']} s more."
    )


def drifted_productions(report: dict) -> list[str]:
    """The productions where at least one app on one minion would change."""
    return sorted(
        production
        for production, minions in _productions(report).items()
        if any(info["action"] != "keep" for apps in minions.values() for info in apps.values())
    )


def without_driver_at_next_boot(report: dict) -> list[str]:
    """The minions whose newest installed kernel has no NVIDIA module (`next_boot_without_driver`)."""
    return [m for m, entry in report["minions"].items() if entry.get("next_boot_without_driver")]


def cell(info: dict) -> str:
    """One app on one minion: the wanted version, and when an apply would act, what and what is there now."""
    if info["action"] == "keep":
        return info["wanted"]
    installed = ", ".join(info.get("installed") or []) or "nothing"
    return f"{info['wanted']} ({info['action']}; installed: {installed})"


def render_table(report: dict) -> str:
    lines = [summary(report), f"drifted: {', '.join(report['drifted']) or 'none'}"]
    if report.get("image_lacking"):
        lines.append(f"images lacking wanted versions: {', '.join(report['image_lacking'])}")
    lines.append("")
    width = max([len(m) for m in report["minions"]] + [6])
    lines.append(f"{'minion':<{width}}  {'state':<10} {'reboot':<7} drift")
    for minion, entry in report["minions"].items():
        reboot = {True: "yes", False: "no"}.get(entry.get("reboot_required"), "-")
        drift = ", ".join(item["id"] for item in entry.get("drift") or [])
        lines.append(f"{minion:<{width}}  {_status_word(entry):<10} {reboot:<7} {drift}")
        if isinstance(entry.get("image"), dict):
            lines.append(
                f"{'':<{width}}  image baked {entry['image'].get('baked_at')}: {_image_word(entry)}"
            )
    for minion in without_driver_at_next_boot(report):
        lines.append(
            f"{minion}: NO NVIDIA DRIVER AT NEXT BOOT: "
            f"{report['minions'][minion]['next_boot_without_driver']}"
        )
    for production, minions in sorted(_productions(report).items()):
        lines += ["", f"production {production}:"]
        for minion, apps in sorted(minions.items()):
            cells = [f"{app} {cell(info)}" for app, info in sorted(apps.items())]
            lines.append(f"  {minion:<{width}}  " + ", ".join(cells))
    return "\n".join(lines)


def render_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=str)


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0 0 2em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3}.drift{background:#ffe2c4}.missing{background:#f6c6c6}.ok{background:#dff3df}
caption{text-align:left;font-weight:600;margin:.4em 0}
"""


def render_html(report: dict) -> str:
    """One self-contained page: a summary, then a table per production with drift highlighted."""
    esc = html.escape
    drifted = drifted_productions(report)
    without_driver = without_driver_at_next_boot(report)
    links = ", ".join(f"<a href='#production-{esc(p)}'>{esc(p)}</a>" for p in drifted) or "none"
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>Workstation fleet report — {esc(report['target'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>Workstation fleet report</h1><p id=summary>{esc(summary(report))}<br>"
        f"Drifted minions: {esc(', '.join(report['drifted']) or 'none')}. Drifted productions: {links}. "
        f"No NVIDIA driver at next boot: {esc(', '.join(without_driver) or 'none')}. "
        f"Images lacking wanted versions: {esc(', '.join(report.get('image_lacking') or []) or 'none')}. "
        f"Generated {esc(report['generated_at'])}.</p>",
        "<table id=minions><caption>Minions</caption><tr><th>minion<th>state<th>reboot pending"
        "<th>next boot without driver<th>image<th>drift</tr>",
    ]
    for minion, entry in report["minions"].items():
        word = _status_word(entry)
        css = {"converged": "ok", "drift": "drift"}.get(word, "missing")
        reboot = {True: "yes", False: "no"}.get(entry.get("reboot_required"), "—")
        problem = entry.get("next_boot_without_driver")
        next_boot = f"<td class=missing>{esc(str(problem))}" if problem else "<td>—"
        image = _image_cell(entry)
        drift = "<br>".join(
            f"{esc(str(item['id']))}: {esc(item['comment'])}" for item in entry.get("drift") or []
        )
        parts.append(
            f"<tr class={css} data-minion='{esc(minion)}'><td>{esc(minion)}<td>{esc(word)}"
            f"<td>{reboot}{next_boot}{image}<td>{drift}</tr>"
        )
    parts.append("</table>")
    for production, minions in sorted(_productions(report).items()):
        apps = sorted({app for entry in minions.values() for app in entry})
        parts.append(
            f"<table class=production id='production-{esc(production)}' data-production='{esc(production)}'>"
            f"<caption>Production {esc(production)}</caption><tr><th>minion"
        )
        parts += [f"<th>{esc(app)}" for app in apps]
        parts.append("</tr>")
        for minion, entry in sorted(minions.items()):
            parts.append(f"<tr><td>{esc(minion)}")
            for app in apps:
                info = entry.get(app)
                if info is None:
                    parts.append("<td>")
                    continue
                css = "ok" if info["action"] == "keep" else "drift"
                parts.append(f"<td class={css}>{esc(cell(info))}")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


RENDERERS = {"table": render_table, "json": render_json, "html": render_html}
