"""
Keep every DCC's license client configured (docs/licenses.md). The
``workstation.licenses`` formula writes these states out from
``licenses.plan``; each can also be used on its own:

.. code-block:: yaml

    workstation-licenses-environment-session-managed:
      licenses.environment_file:
        - name: /etc/environment.d/90-workstation-licenses.conf
        - style: environment.d            # or profile (/etc/profile.d)
        - variables: {foundry_LICENSE: "4101@rlm1:4101@rlm2"}

    workstation-licenses-houdini-file-managed:
      licenses.vendor_file:
        - name: /usr/lib/sesi/hserver/.sesi_licenses.pref
        - contents: "serverhost=sesi1;sesi2\\n"
        - license: houdini

    workstation-licenses-katana-node-file-managed:
      licenses.license_file:
        - name: /opt/studio/licenses/katana.lic
        - content_pillar: workstation:licenses:katana-node:content   # the secret stays in the pillar
        - mode: "0640"
        - group: artists

    workstation-licenses-maya2025-registered:
      licenses.autodesk_registered:
        - name: maya2025
        - product_version: "2025.0.0.F"
        - product_key_pillar: workstation:licenses:maya2025:product_key
        - servers: [lic1]

Each state reads what is there, returns when nothing differs, answers
``test=True`` with result None and exactly the changes a real run makes, and
acts through the ``licenses`` execution module. Secrets are never state
arguments: a node-locked license's content and an Autodesk product key are
read from the pillar path given, by the execution module (an
``sdb://<profile>/<key>`` there is resolved then, on the minion), and appear
in no changes and no comment.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

from salt_workstation import stateret

__virtualname__ = "licenses"

FAILURES = (CommandExecutionError, SaltInvocationError)


def __virtual__():
    return __virtualname__


def _failed(ret, what, err):
    ret.update(result=False, changes={}, comment=f"{what}: {err}")
    return ret


def _license_path(name):
    return f"workstation:licenses:{name}"


def pillar_valid(name, errors=None):
    """
    Fail naming every pillar error in ``errors`` (``"<pillar path>: <what to
    do>"``); succeed without them. The environment files require it: they hold
    every license's variables, so they wait for a valid section.
    """
    ret = stateret.new(name)
    if not errors:
        ret["comment"] = f"{name} is valid"
        return ret
    ret["result"] = False
    ret["comment"] = (
        f"{name} has errors; the states that need it valid did not run and nothing they manage "
        "was touched. Fix the pillar:\n" + "\n".join(f"- {error}" for error in errors)
    )
    return ret


def environment_file(name, variables, style="environment.d"):
    """
    Ensure the environment file ``name`` sets exactly ``variables``; with none
    the file is removed.

    style
        ``profile`` (a script in /etc/profile.d for login shells) or
        ``environment.d`` (a systemd environment.d drop-in, for desktop sessions).
    """
    ret = stateret.new(name)
    summary = ", ".join(variables) if isinstance(variables, dict) and variables else ""
    outcome = f"written: {summary}" if summary else "removed: no license sets a variable"
    try:
        changes = __salt__["licenses.environment_changes"](name, variables, style)
        if not changes:
            ret["comment"] = (
                f"{name} sets {summary}"
                if summary
                else f"{name} is absent: no license sets a variable"
            )
            return ret
        ret["changes"] = changes
        if __opts__["test"]:
            ret.update(result=None, comment=f"{name} would be {outcome}")
            return ret
        __salt__["licenses.write_environment"](name, variables, style)
        ret["comment"] = f"{name} was {outcome}"
    except FAILURES as err:
        return _failed(ret, f"{name} (the variables of workstation:licenses) was not written", err)
    return ret


def _file_written(name, what, read, write, *args):
    """The five steps for one file: read what differs, return when nothing does, predict exactly, write, report."""
    ret = stateret.new(name)
    try:
        changes = __salt__[read](*args)
        if not changes:
            ret["comment"] = f"{what} is in place"
            return ret
        ret["changes"] = changes
        if __opts__["test"]:
            ret.update(result=None, comment=f"{what} would be written")
            return ret
        __salt__[write](*args)
        # A rotated secret shows as `content` differing: said so, never shown.
        differed = changes.get("updated")
        ret["comment"] = f"{what} was written" + (
            f" ({', '.join(differed)} differed)" if differed else ""
        )
    except FAILURES as err:
        return _failed(ret, f"{what} was not written", err)
    return ret


def vendor_file(name, contents, license=None):
    """
    Ensure a license client's own file ``name`` (hserver's license preference
    file, V-Ray's vrlclient.xml) holds ``contents``, mode 0644 root:root.

    license
        The ``workstation:licenses`` entry it comes from, for messages.
    """
    what = f"{name} ({_license_path(license)})" if license else name
    return _file_written(name, what, "licenses.file_changes", "licenses.write_file", name, contents)


def license_file(name, content_pillar, mode="0600", owner="root", group="root"):
    """
    Ensure the node-locked license file ``name`` holds the secret at pillar
    path ``content_pillar``, with ``mode`` (``"0600"`` or ``"0640"``), owner
    and group set before its first byte.
    """
    what = f"Node-locked license {name} ({mode} {owner}:{group}, from {content_pillar})"
    return _file_written(
        name,
        what,
        "licenses.secret_file_changes",
        "licenses.write_secret_file",
        name,
        content_pillar,
        mode,
        owner,
        group,
    )


def autodesk_registered(
    name,
    product_version,
    product_key_pillar,
    servers,
    server_type="SINGLE",
    config_file=None,
    eula_locale="US",
    helper=None,
    timeout=None,
):
    """
    Ensure the Autodesk product of license ``name`` is registered with the
    Autodesk Licensing Service for network licenses from ``servers``.

    product_key_pillar
        The pillar path of the product key (read by the execution module).
    server_type
        SINGLE, REDUNDANT or DISTRIBUTED.
    config_file, eula_locale
        What ``AdskLicensingInstHelper register`` needs for some products.
    helper, timeout
        AdskLicensingInstHelper and how long each call may take (default:
        ``workstation:os:licenses``).
    """
    ret = stateret.new(name)
    what = f"Autodesk {product_version} ({_license_path(name)})"
    from_servers = f"network licenses from {', '.join(map(str, servers or []))}"
    args = (product_version, product_key_pillar, servers, server_type)
    try:
        found = __salt__["licenses.autodesk_registration"](*args, helper=helper, timeout=timeout)
        if not found["changes"]:
            ret["comment"] = f"{what} is registered for {from_servers}"
            return ret
        ret["changes"] = found["changes"]
        action = found["changes"]["action"]
        if __opts__["test"]:
            later = (
                ""
                if found["helper_installed"]
                else f" (the helper {found['helper']} is not installed yet)"
            )
            ret.update(result=None, comment=f"{what} would be {action}ed for {from_servers}{later}")
            return ret
        __salt__["licenses.register_autodesk"](
            *args, config_file=config_file, eula_locale=eula_locale, helper=helper, timeout=timeout
        )
        ret["comment"] = f"{what}: {action}ed for {from_servers}"
    except FAILURES as err:
        return _failed(ret, f"{what} was not registered", err)
    return ret
