"""From the merged pillar config and what is on disk: what an apply would do, and the formula's data."""

from __future__ import annotations

from salt_workstation import contract, engine, pillar
from salt_workstation.engine import AppStore
from salt_workstation.errors import WorkstationError

ACTIONS = {
    engine.ABSENT: "install",
    engine.CHANGED: "replace",
    engine.DAMAGED: "repair",
    engine.INSTALLED: "keep",
    engine.FOREIGN: "blocked",  # a folder we did not install holds the place: the apply fails for it
}


def issues_for(config, issues, app, version):
    """The issues that stop this app version: its own, its app's, and the install settings."""
    return pillar.check_settings(config) + [
        issue for issue in issues if issue.app == app and issue.version in (None, version)
    ]


def retention_id(app):
    return f"workstation-app-{app}-retention"


def formula_data(config, store: AppStore) -> dict:
    """The states `workstation.apps` renders: one install per wanted version, one retention per app."""
    by_app = pillar.wanted_by_app(config)
    wanted_versions = pillar.wanted_versions(config)
    parallel = parallel_installs(config, store, wanted_versions)
    installs = [
        {
            "id": wanted.state_id,
            "app": wanted.app,
            "version": wanted.version_raw,
            "spec": wanted.spec,
            "used_by": wanted.used_by,
            "parallel": wanted.state_id in parallel,
        }
        for wanted in wanted_versions
    ]
    apps = sorted(set(by_app) | set(store.installed()))
    retention = [
        {
            "id": retention_id(app),
            "app": app,
            "keep": by_app.get(app, []),
            "require": [{"dcc": item["id"]} for item in installs if item["app"] == app],
        }
        for app in apps
    ]
    return {
        "repositories": repository_states(config),
        "installs": installs,
        "services": services(config),
        # An image bake enables units and starts nothing; every other phase keeps them running.
        "start_services": config.get("phase", "all") != "bake",
        "retention": retention,
    }


def parallel_installs(config, store: AppStore, wanted_versions: list) -> set:
    """The install states Salt runs in parallel (`parallel: True`): the archive and installer
    versions this apply will install, when there are two or more and install_workers allows it.

    Versions already installed stay sequential (a converged apply forks nothing), as do OS
    packages (one package manager at a time) and entries the contract rejects (they fail at once).
    The engine's install slots bound how many of them run at the same time.
    """
    if pillar.install_workers(config) < 2 or pillar.check_depot(config.get("depot")):
        return set()
    pending = set()
    for wanted in wanted_versions:
        spec = wanted.spec
        path = pillar.path_of("catalog", wanted.app, "versions", wanted.version)
        if (
            not isinstance(spec, dict)
            or spec.get("kind", "archive") == "packages"
            or pillar.check_version_spec(wanted.app, wanted.version, spec, path)
            or pillar.name_issue(wanted.app, path, "app names")
            or pillar.version_text(wanted.version_raw, path)[1]
        ):
            continue
        resolved = pillar.resolve_spec(wanted.app, wanted.version, spec, config["depot"])
        try:
            if store.status(resolved) != engine.INSTALLED:
                pending.add(wanted.state_id)
        except (OSError, WorkstationError):
            continue  # its own state reports what is wrong there, in order
    return pending if len(pending) > 1 else set()


def services(config) -> list[dict]:
    """The units that packages apps bring, each with the install state that brings it."""
    found: dict[str, dict] = {}
    for wanted in pillar.wanted_versions(config):
        spec = wanted.spec if isinstance(wanted.spec, dict) else {}
        listed = spec.get("services") if spec.get("kind") == "packages" else None
        for unit in listed if isinstance(listed, list) else []:
            if (
                isinstance(unit, str) and unit not in found
            ):  # malformed entries fail their install state
                found[unit] = {
                    "id": f"workstation-service-{unit}",
                    "unit": unit,
                    "install_id": wanted.state_id,
                }
    return list(found.values())


def _pkgrepo_args(style, name, repo, keyring, os_params) -> list[dict]:
    if style == "apt":
        suite = repo.get("dist") or os_params.get("codename")
        line = f"deb [signed-by={keyring}] {repo['url']} {suite} {' '.join(repo.get('components', ['main']))}"
        return [
            {"name": line},
            {"file": f"{os_params['sources_dir']}/workstation-{name}.list"},
            {"aptkey": False},
            {"clean_file": True},
        ]
    return [
        {"name": f"workstation-{name}"},
        {"humanname": f"workstation {name}"},
        {"baseurl": repo["url"]},
        {"gpgcheck": 1},
        {"repo_gpgcheck": 1},
        {"gpgkey": f"file://{keyring}"},
    ]


def repository_states(config) -> list[dict]:
    """Per repository: a pinned keyring, then Salt's pkgrepo.managed pointing at it (valid entries only)."""
    repositories = config.get("repositories")
    if not isinstance(repositories, dict):
        return []
    os_params = config.get("os") or {}
    style = os_params.get("repo_style", "apt")
    states = []
    for name in sorted(repositories, key=str):
        repo = repositories[name]
        keyring_id = f"workstation-repo-{name}-keyring"
        if style == "apt":
            keyring = f"{os_params['keyring_dir']}/workstation-{name}.gpg"
        else:
            keyring = f"{os_params['keyring_dir']}/RPM-GPG-KEY-workstation-{name}"
        entry = {
            "id": f"workstation-repo-{name}",
            "keyring_id": keyring_id,
            "name": name,
            "repo": repo,
            "keyring": keyring,
            "armor": style != "apt",
            "pkgrepo": None,
        }
        if not pillar.check_repositories(
            {name: repo}
        ):  # otherwise the keyring state reports the errors
            entry["pkgrepo"] = [
                *_pkgrepo_args(style, name, repo, keyring, os_params),
                {"require": [{"workstation": keyring_id}]},
            ]
        states.append(entry)
    return states


def plan(config, store: AppStore, package_versions=None) -> dict:
    """Per production, what an apply would install, keep or repair; per app, what it would remove."""
    issues = contract.validate(config)
    productions: dict = {}
    blocked = set()
    for wanted in pillar.wanted_versions(config):
        blocking = issues_for(config, issues, wanted.app, wanted.version)
        entry = {
            "version": wanted.version,
            "dest": str(store.layout.version_dir(wanted.app, wanted.version)),
        }
        if blocking:
            entry.update(action="invalid", errors=[str(issue) for issue in blocking])
            blocked.add(
                wanted.app
            )  # its retention state requires this install, so it will not prune
        else:
            spec = pillar.resolve_spec(wanted.app, wanted.version, wanted.spec, config["depot"])
            status = store.status(spec, package_versions, deep=config.get("verify") == "deep")
            entry["action"] = ACTIONS[status]
            if status == engine.FOREIGN:
                entry["errors"] = [store.blocker(wanted.app, wanted.version)]
        for path in wanted.used_by:
            production = path.split(":")[2]
            productions.setdefault(production, {})[wanted.app] = entry
    remove = {}
    retain = (
        config["retain"] if isinstance(config.get("retain"), int) and config["retain"] >= 0 else 1
    )
    by_app = pillar.wanted_by_app(config)
    for app in sorted((set(by_app) | set(store.installed())) - blocked):
        doomed, _ = store.retention(app, by_app.get(app, []), retain)
        if doomed:
            remove[app] = doomed
    return {
        "install_root": str(store.layout.root),
        "valid": not issues,
        "errors": [issue.as_dict() for issue in issues],
        "productions": productions,
        "remove": remove,
    }


def inventory(config, store: AppStore) -> dict:
    """What is installed, and which productions in the pillar use each version."""
    users: dict = {}
    for wanted in pillar.wanted_versions(config):
        users[(wanted.app, wanted.version)] = sorted(path.split(":")[2] for path in wanted.used_by)
    result = {}
    for app, versions in store.installed().items():
        result[app] = {
            version: {
                "dest": str(store.layout.version_dir(app, version)),
                "productions": users.get((app, version), []),
                "hash": manifest.get("hash"),
                "files": manifest.get("files"),
                "bytes": manifest.get("bytes"),
                # shared: files and bytes that are hardlinks to another installed version of the app
                "shared": manifest.get("shared") or {"files": 0, "bytes": 0, "with": []},
                "installed_at": manifest.get("installed_at"),
            }
            for version, manifest in versions.items()
        }
    return result
