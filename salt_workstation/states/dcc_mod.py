"""
Keep DCC app versions installed side by side, exactly as the catalog says.

.. code-block:: yaml

    houdini-20.5.410:
      dcc.installed:
        - name: houdini
        - version: "20.5.410"
        - source: houdini/houdini-20.5.410-linux_x86_64.tar.gz
        - hash: sha256:9f2c...
        - strip_components: 1
        - launchers: {houdini: bin/houdini}

    blender-retention:
      dcc.pruned:
        - name: blender
        - keep: ["4.2.3"]
        - retain: 1

``test=True`` reads manifests only: it downloads and writes nothing and
reports exactly the changes a real run makes.
"""

import salt.utils.args
from salt.exceptions import CommandExecutionError

from salt_workstation import pillar, stateret
from salt_workstation.depot import redact_url
from salt_workstation.engine import identity

__virtualname__ = "dcc"


def __virtual__():
    return __virtualname__


def _spec_from_kwargs(kwargs):
    """A standalone state gives the catalog keys directly; unknown ones are reported, not dropped."""
    return salt.utils.args.clean_kwargs(**kwargs) or None


def _problems(name, version, spec, install_root, depot, used_by):
    """Everything wrong with this state's inputs, each with the pillar path to fix."""
    catalog_path = pillar.path_of("catalog", name, "versions", version)
    issues = []
    # The app and version become folder names: one safe path component each, or nothing is touched.
    name_problem = pillar.name_issue(name, pillar.path_of("catalog", name), "app names")
    if name_problem:
        return [str(name_problem)]
    issues += pillar.version_text(version, catalog_path)[1]
    for path in used_by or []:
        issues += pillar.version_text(version, path)[1]
    if spec is None:
        issues.append(
            pillar.Issue(
                catalog_path,
                "no such entry; add it to the catalog"
                + (f" or change {', '.join(used_by)}" if used_by else ""),
            )
        )
    else:
        issues += pillar.check_version_spec(name, str(version), spec, catalog_path)
    settings = pillar.check_settings({"install_root": install_root, "depot": depot, "retain": 0})
    return [str(issue) for issue in issues + settings]


def _changes(status, manifest_or_spec, dest, old_manifest):
    """The changes an install makes, the same whether predicted (test=True) or done."""
    source = manifest_or_spec["source"]
    changes = {"version": manifest_or_spec["version"], "dest": dest}
    if source:
        changes["source"] = redact_url(source)
        changes["hash"] = manifest_or_spec["hash"]
    if status == "absent":
        changes["installed"] = True
    elif status == "changed":
        changes["replaced"] = {
            "old": (old_manifest or {}).get("identity"),
            "new": manifest_or_spec["identity"],
        }
    else:
        changes["repaired"] = True
    return changes


def installed(
    name,
    version,
    spec=None,
    install_root=None,
    depot=None,
    used_by=None,
    verify="shallow",
    **kwargs,
):
    """
    Ensure app ``name`` at ``version`` is installed as its catalog entry describes.

    name
        The app, as named in ``workstation:catalog``.
    version
        The version, quoted in YAML.
    spec
        The catalog entry (source, hash, kind, strip_components, launchers, env,
        installer, packages). Those keys may also be given directly.
    install_root, depot
        Default to the ``workstation`` pillar.
    used_by
        Pillar paths of the productions asking for this version, for error messages.
    verify
        ``shallow`` (default): the manifest and the launchers say whether it is
        installed. ``deep``: every file is re-hashed against the manifest too, and
        a version whose files changed on disk is reinstalled (repaired).
    """
    ret = stateret.new(name)
    spec = spec if spec is not None else _spec_from_kwargs(kwargs)
    settings = __salt__["workstation.config"](unmask=True)
    install_root = install_root or settings["install_root"]
    depot = depot or settings["depot"]
    problems = _problems(name, version, spec, install_root, depot, used_by)
    if verify not in pillar.VERIFY_MODES:
        problems.append(
            f"{pillar.path_of('verify')}: must be one of {', '.join(pillar.VERIFY_MODES)}, got {verify!r}"
        )
    version = str(version)
    if problems:
        ret["result"] = False
        ret["comment"] = pillar.install_failure(
            name,
            version,
            "nothing on disk was touched. Fix the pillar:\n"
            + "\n".join(f"- {problem}" for problem in problems),
        )
        return ret

    resolved = pillar.resolve_spec(name, version, spec, depot)
    dest = f"{install_root.rstrip('/')}/apps/{name}/{version}"
    try:
        status = __salt__["dcc.status"](
            name, version, spec=spec, install_root=install_root, depot=depot, deep=verify == "deep"
        )
        if status == "installed":
            ret["comment"] = f"{name} {version} is installed at {dest}" + (
                " (every file verified)" if verify == "deep" else ""
            )
            return ret
        if status == "foreign":
            blocker = __salt__["dcc.blocker"](name, version, install_root=install_root)
            raise CommandExecutionError(pillar.install_failure(name, version, blocker))
        old = (
            __salt__["dcc.manifest"](name, version, install_root=install_root)
            if status == "changed"
            else None
        )
    except CommandExecutionError as exc:
        return _failed(ret, exc, used_by)
    if __opts__["test"]:
        predicted = {
            "version": version,
            "source": resolved.source,
            "hash": resolved.hash,
            "identity": identity(resolved),
        }
        ret["result"] = None
        ret["changes"] = _changes(status, predicted, dest, old)
        ret["comment"] = f"{name} {version} would be {_VERBS[status]} at {dest}"
        return ret

    try:
        manifest = __salt__["dcc.install"](
            name, version, spec=spec, install_root=install_root, depot=depot
        )
    except CommandExecutionError as exc:
        return _failed(ret, exc, used_by)
    ret["changes"] = _changes(status, manifest, dest, old)
    ret["comment"] = (
        f"{name} {version} {_VERBS[status]} at {dest}: {manifest['files']} files, "
        f"{manifest['bytes'] / 2**20:.1f} MiB in {manifest['install_seconds']:.1f} s"
        + _shared_note(manifest)
        + "".join(f"\n- {note}" for note in manifest.get("notes") or [])
    )
    return ret


def _shared_note(manifest):
    """What a version bump saved: the files it shares with an installed version instead of copying."""
    shared = manifest.get("shared") or {}
    if not shared.get("bytes"):
        return ""
    share = shared["bytes"] / max(manifest["bytes"], 1)
    return (
        f"; {shared['bytes'] / 2**20:.1f} MiB ({share:.0%}, {shared['files']} files) shared with "
        f"{', '.join(shared['with'])} by hardlinks, not copied"
    )


_VERBS = {
    "absent": "installed",
    "changed": "replaced with the catalog's build",
    "damaged": "repaired",
}


def _failed(ret, error, used_by=None):
    """result False, no changes, and the execution module's message (it names the catalog entry)."""
    wanted_by = f"; wanted by {', '.join(used_by)}" if used_by else ""
    ret.update(result=False, changes={}, comment=f"{error}{wanted_by}")
    return ret


def _removal(ret, planned, remove, note=""):
    """Report removing `planned` versions: predicted under test=True, otherwise done by remove()."""
    if __opts__["test"]:
        ret.update(
            result=None,
            changes={"removed": planned},
            comment=f"{ret['name']} {', '.join(planned)} would be removed{note}",
        )
        return ret
    try:
        removed = remove()
    except CommandExecutionError as exc:
        return _failed(ret, exc)
    ret.update(
        changes={"removed": removed}, comment=f"{ret['name']} {', '.join(removed)} removed{note}"
    )
    return ret


def absent(name, version=None, install_root=None):
    """
    Ensure app ``name`` at ``version`` (or, without a version, every version
    salt-workstation installed of it) is not installed.
    """
    ret = stateret.new(name)
    installed_versions = __salt__["dcc.list_installed"](install_root=install_root).get(name, {})
    wanted_gone = [str(version)] if version is not None else sorted(installed_versions)
    present = [v for v in wanted_gone if v in installed_versions]
    if not present:
        ret["comment"] = f"{name} {version or ''} is not installed".replace("  ", " ")
        return ret
    return _removal(
        ret,
        present,
        lambda: [v for v in present if __salt__["dcc.remove"](name, v, install_root=install_root)],
    )


def pruned(name, keep=(), retain=1, install_root=None):
    """
    Remove the versions of app ``name`` that no production wants, keeping the
    ``retain`` most recently wanted ones for instant rollback.

    keep
        The versions productions want now: never removed.
    retain
        How many other versions to keep, most recently wanted first.
    """
    ret = stateret.new(name)
    if isinstance(retain, bool) or not isinstance(retain, int) or retain < 0:
        ret["result"] = False
        ret["comment"] = (
            f"{pillar.path_of('retain')} must be a whole number (0 or more), got {retain!r}; nothing was removed"
        )
        return ret
    keep = [str(v) for v in keep or []]
    doomed = __salt__["dcc.retention"](name, keep=keep, retain=retain, install_root=install_root)
    strangers = __salt__["dcc.strangers"](name, install_root=install_root)
    left_alone = f"; left alone: {'; '.join(strangers)}" if strangers else ""
    if not doomed:
        ret["comment"] = (
            f"{name}: nothing to remove (keeping {', '.join(keep) or 'no wanted versions'}, "
            f"retain {retain}){left_alone}"
        )
        if not __opts__["test"]:
            try:
                __salt__["dcc.prune"](name, keep=keep, retain=retain, install_root=install_root)
            except CommandExecutionError as exc:
                return _failed(ret, exc)
        return ret
    return _removal(
        ret,
        doomed,
        lambda: __salt__["dcc.prune"](name, keep=keep, retain=retain, install_root=install_root),
        f" (retain {retain}){left_alone}",
    )


def packages_installed(name, packages):
    """
    Ensure OS packages are installed from the configured repositories, with a
    dry run that reports exactly what the real run does.

    name
        What the packages are for (an agent, the mount clients), for the comment.
    packages
        ``{package: pinned version, or null for the repository's latest}``.
        Installed unpinned packages are kept as they are.
    """
    versions: dict = {}

    def touched(changes):
        return sorted({*changes.get("installed", {}), *changes.get("changed", {})})

    return stateret.converge(
        name,
        changes=lambda: __salt__["dcc.install_packages"](packages, test=True)["changes"],
        act=lambda: versions.update(__salt__["dcc.install_packages"](packages)["versions"]),
        test=__opts__["test"],
        same=f"{name}: {', '.join(packages)} installed" if packages else f"{name}: none asked for",
        would=lambda changes: f"{name}: {', '.join(touched(changes))} would be installed",
        done=lambda changes: (
            f"{name}: installed "
            + ", ".join(f"{p} {versions.get(p, '')}".strip() for p in touched(changes))
        ),
        errors=(CommandExecutionError,),
        failed=f"{name}",
    )
