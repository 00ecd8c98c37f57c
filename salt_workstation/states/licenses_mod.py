"""
Keep every DCC's license client configured as ``workstation:licenses`` says
(docs/licenses.md). The ``workstation.licenses`` formula lays these out from
``licenses.formula_data``.

.. code-block:: yaml

    workstation-licenses-environment-profile:
      licenses.environment_file:
        - name: /etc/profile.d/workstation-licenses.sh
        - style: profile                  # or environment.d
        - licenses: {foundry: {type: rlm, isv: foundry, servers: ["4101@rlm1", "4101@rlm2"]}}

    workstation-license-katana-node:
      licenses.configured:
        - name: katana-node
        - entry: {type: nodelocked, path: /opt/studio/licenses/katana.lic, mode: "0640", group: artists}
        - path: /opt/studio/licenses/katana.lic
        - content_pillar: workstation:licenses:katana-node:content   # the secret stays in the pillar

Secrets are never state arguments: a node-locked license's content and an
Autodesk product key are read from the pillar path given, by the execution
module, and appear in no changes and no comment. ``test=True`` writes and
registers nothing and reports exactly the changes a real run makes.
"""

from salt_workstation import licenses as core
from salt_workstation import stateret

__virtualname__ = "licenses"


def __virtual__():
    return __virtualname__


def _refuse(ret, what, problems):
    ret["result"] = False
    ret["comment"] = f"{what}; nothing on disk was touched. Fix the pillar:\n" + "\n".join(f"- {p}" for p in problems)
    return ret


def _unplaceable(ret, path):
    ret["result"] = False
    ret["comment"] = (f"The file's path could not be computed; fix {path} "
                      "(workstation-pillar-validated says what is wrong with it)")
    return ret


def environment_file(name, style, licenses=None, chaos_dir=core.DEFAULT_PARAMETERS["chaos_dir"]):
    """
    Ensure the environment file ``name`` sets the variables of every license in
    ``licenses`` (the ``workstation:licenses`` section, without its secrets);
    the file is removed when no license sets a variable.

    style
        ``profile`` (a script in /etc/profile.d for login shells) or
        ``environment.d`` (a systemd environment.d drop-in, for desktop sessions).
    chaos_dir
        The folder of vrlclient.xml, for VRAY_AUTH_CLIENT_FILE_PATH.
    """
    ret = stateret.new(name)
    if not str(name).startswith("/"):
        return _unplaceable(ret, name)
    variables, issues = core.environment(licenses, {"chaos_dir": chaos_dir})
    if issues:
        return _refuse(ret, f"The license environment in {name} was not written", issues)
    outcome = __salt__["licenses.write_environment"](name, variables, style, test=__opts__["test"])
    summary = ", ".join(variables) or "no variables"
    removing = not variables
    return stateret.report(
        ret, outcome, __opts__["test"],
        done=f"{name} was {'removed: no license sets a variable' if removing else 'written: ' + summary}",
        would=f"{name} would be {'removed: no license sets a variable' if removing else 'written: ' + summary}",
        same=f"{name} sets {summary}" if variables else f"{name} is absent: no license sets a variable",
    )


def configured(name, entry, path=None, content_pillar=None, product_key_pillar=None, helper=None,
               helper_timeout=None, phase="all"):
    """
    Ensure license ``name`` is configured for its client.

    entry
        The ``workstation:licenses:<name>`` entry without its secrets.
    path
        The file this license writes (sidefx, chaos, nodelocked), under
        ``workstation:os:licenses:root``.
    content_pillar
        nodelocked: the pillar path of the license content.
    product_key_pillar, helper, helper_timeout
        autodesk: the pillar path of the product key, the path of
        AdskLicensingInstHelper, and how long it may take.
    phase
        ``bake`` defers the Autodesk registration to the machine's first boot.

    rlm and flexlm licenses need no file of their own: their variables are in
    the environment files, and this state reports them.
    """
    ret = stateret.new(name)
    carried = sorted(key for key in (entry if isinstance(entry, dict) else {}) if key in core.SECRET_KEYS)
    if carried:
        ret["result"] = False
        ret["comment"] = (f"License {name} was not configured: the entry carries {', '.join(carried)}, and state "
                          "arguments show in state.show_sls and the job data; leave it in the pillar and pass "
                          "content_pillar / product_key_pillar (its pillar path) instead")
        return ret
    issues = core.check_entry(name, entry, public=True)
    if issues:
        return _refuse(ret, f"License {name} was not configured", issues)
    kind = entry["type"]
    test = __opts__["test"]
    if kind in ("rlm", "flexlm"):
        variables = core.variables_of(entry, {})
        ret["comment"] = (f"License {name}: " + ", ".join(f"{var}={value}" for var, value in variables.items())
                          + " reaches shells and desktop sessions through the environment files")
        return ret
    if kind == "autodesk":
        version = entry["product_version"]
        if phase == "bake":
            ret["comment"] = f"Autodesk {version} ({name}) is registered at first boot: phase bake registers nothing"
            return ret
        outcome = __salt__["licenses.register_autodesk"](
            version, product_key_pillar, entry["servers"], server_type=entry.get("server_type", "SINGLE"),
            config_file=entry.get("config_file"), eula_locale=entry.get("eula_locale", "US"), helper=helper,
            timeout=helper_timeout, test=test)
        servers = ", ".join(entry["servers"])
        verb = (outcome.get("changes") or {}).get("action", "register")
        return stateret.report(ret, outcome, __opts__["test"],
                       done=f"Autodesk {version} ({name}): {verb}ed for network licenses from {servers}",
                       would=f"Autodesk {version} ({name}) would be {verb}ed for network licenses from {servers}",
                       same=f"Autodesk {version} ({name}) is registered for network licenses from {servers}")
    if not path or not str(path).startswith("/"):
        return _unplaceable(ret, path)
    if kind == "nodelocked":
        mode = f"{core.file_mode(entry.get('mode', '0600')):04o}"
        owner, group = entry.get("owner", "root"), entry.get("group", "root")
        outcome = __salt__["licenses.write_secret_file"](path, content_pillar, mode, owner, group, test=test)
        what = f"Node-locked license {name} at {path} ({mode} {owner}:{group})"
    else:
        contents = core.render_sidefx(entry) if kind == "sidefx" else core.render_vrlclient(entry)
        outcome = __salt__["licenses.write_file"](path, contents, "0644", "root", "root", test=test)
        servers = ", ".join(entry["servers"])
        what = f"{'hserver' if kind == 'sidefx' else 'V-Ray'} license servers of {name} ({servers}) in {path}"
    return stateret.report(ret, outcome, __opts__["test"], done=f"{what}: written", would=f"{what}: would be written", same=f"{what}: in place")
