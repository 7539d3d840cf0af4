"""rpc-go on the client over SSH (`provisioning.server: rpc`): Intel's Device Management Toolkit.

A verdict is verified, never inferred from an exit code: rpc-go 2.x exits 0 when RPS rejects the
device (research/rpc.md 2.5), so after every ``rpc activate`` the adapter reads ``rpc amtinfo --json``
(control mode, uuid) and, when the inventory names the new server's API, MPS's record of the device
(RPS registers every device it activates with MPS, rpc.md 4.5). Provisioned = AMT activated AND (with
an API) registered, even when rpc exited non-zero or logged an RPS error after AMT was activated ("Unknown
error has occured" after AdminSetup; a later step such as the AMT-features configuration failing with EBUSY,
exit 107, rpc-go issue #1438): that error is kept as evidence with a warning. The activate output is
evidence and a hint for the classifier, never the verdict.

Adopt (a host the legacy console activated in admin control mode, whose admin credentials the
migration holds): RPS takes an activated device over given its CURRENT admin password, with no suffix
check, and rotates it (rpc.md 4.2). For a host marked ``legacy_managed`` the adapter first reads
amtinfo; when AMT is activated (or can't be read) it runs the same ``rpc activate`` with the password in
the ``AMT_PASSWORD`` environment variable of the remote command (an SSH "env" request; never argv,
evidence or logs; rpc.md 2.2). AMT was activated before, so amtinfo alone can't show the takeover:
an adoption is verified only by MPS's record of the device.
"""

from __future__ import annotations

import logging
import re

from tasks.adapters.provisioner import ProvisionOutcome
from tasks.inventory.model import Host, Inventory

log = logging.getLogger("amt_migrate.rpc")

#: hints that mean rpc never reached AMT (the interface window was not reopened)
_NOT_REACHED = ("tool_error", "config_error")
#: hints that say RPS or rpc refused before anything was asked of AMT: an activated AMT read afterwards was
#: activated before this attempt (by the legacy console, or by RPS in an earlier run)
_REFUSED_BEFORE_AMT = ("suffix_blank", "suffix_mismatch", "auth_failed", "config_error", "tool_error",
                       "already_activated", "unsupported_version")


class RpcProvisioner:
    """rpc-go's `rpc activate` run on the client over SSH, each result checked with amtinfo and MPS."""

    name = "rpc"
    adopts_activated = True  # tasks.steps.provision routes the plan's adopt path here

    def __init__(self, inv: Inventory, ssh_runner, url: str, profile: str, *, api=None, amt_password=None,
                 api_problem: str | None = None):
        from tasks.adapters.commands import validate_server_url

        self.inv = inv
        self.ssh = ssh_runner
        self.url = validate_server_url(url)
        self.profile = profile
        self.api = api  # tasks.adapters.dmt_api.DmtApi or None
        self.api_problem = api_problem  # why the configured API can't be used (missing password...)
        self._amt_password = amt_password  # tasks.inventory.secrets.Secret or None

    # -- reading the device -----------------------------------------------------------------------
    def _amtinfo(self, run, flavor) -> tuple[object | None, str, str]:
        """(AmtInfo or None, problem, raw output kept when it could not be read). ``run`` runs one command
        line and returns a CommandResult."""
        from tasks.adapters.rpc_cli import amtinfo_command, cap, parse_amtinfo
        from tasks.adapters.ssh import SshError
        from tasks.rules.suffix import InvalidValue

        try:
            res = run(amtinfo_command(flavor, self.inv.tools))
        except SshError as exc:
            return None, f"rpc amtinfo over SSH: {exc.kind}", ""
        if not res.stdout.strip():
            return None, f"rpc amtinfo exit {res.exit_status}, no output: {cap(res.stderr.strip(), 300)}", \
                cap(res.stderr)
        try:
            return parse_amtinfo(res.stdout), "", ""
        except InvalidValue as exc:
            return None, f"rpc amtinfo: {exc}", cap(res.stdout)

    def _registered(self, uuid: str) -> tuple[bool | None, str]:
        """Is the device registered with the new server (MPS)? None when it can't be told."""
        from tasks.adapters.dmt_api import DmtApiError

        if self.api is None:
            return None, self.api_problem or "no provisioning.api: MPS not consulted"
        if not uuid:
            return None, "amtinfo gave no uuid: MPS can't be asked"
        try:
            rec = self.api.device(uuid)
        except DmtApiError as exc:
            return None, f"MPS: {exc}"
        if rec is None:
            return False, f"MPS has no device {uuid}"
        if rec.other_tenant:
            return False, f"MPS holds {uuid} under another tenant"
        return True, f"MPS device {uuid} registered"

    # -- the Provisioner protocol -------------------------------------------------------------------
    def provision(self, host: Host) -> ProvisionOutcome:
        from tasks.adapters.rpc_cli import AMT_PASSWORD_ENV, activate_command, read_activation
        from tasks.adapters.ssh import CommandTimeout, SshError

        flavor = self.inv.os_of(host)
        port = self.inv.ssh_port_of(host)
        info, info_problem, raw = None, "", ""
        before: bool | None = False  # was AMT activated before rpc ran? (None: could not be read)
        adopt_note = ""
        try:
            with self.ssh.session(host.address, port=port, os_flavor=flavor) as sh:
                env = None
                if self._amt_password is not None and host.legacy_managed is True:
                    pre, pre_problem, _raw = self._amtinfo(sh.run, flavor)
                    before = pre.activated if pre is not None else None
                    if before is not False:  # activated (or unreadable): rpc needs AMT's current password
                        env = {AMT_PASSWORD_ENV: self._amt_password.reveal()}
                        adopt_note = (f"AMT activated before rpc ran ({pre.control_mode})" if pre is not None
                                      else f"AMT's control mode unreadable before rpc ran ({pre_problem})") + \
                            f": current admin password passed as {AMT_PASSWORD_ENV} from {self._amt_password.source}"
                # `-d` names the RPS domain (its provisioning certificate) to use. Without it rpc-go reports
                # AMT's or the OS's own suffix, which RPS must find verbatim in its domain list
                # (research/rpc.md: RPS compares exactly), so a host AMT would accept under its last-two-
                # labels rule (sales.contoso.com against contoso.com) would be refused by RPS before AMT
                # is asked. AMT still checks its own suffix against that certificate: the verdict stays AMT's.
                command = activate_command(self.url, self.profile, self.inv.certificate_suffix, flavor=flavor,
                                           tools=self.inv.tools, keep_password_env=env is not None)
                sent = env is not None
                try:
                    res = sh.run(command, env=env)
                    report = read_activation(res.exit_status, res.stdout, res.stderr, password_sent=sent)
                    timed_out = False
                except CommandTimeout as exc:
                    report = read_activation(-1, exc.stdout, exc.stderr, password_sent=sent)
                    timed_out = True
                if report.hint not in _NOT_REACHED and not timed_out:
                    info, info_problem, raw = self._amtinfo(sh.run, flavor)
        except SshError as exc:
            return ProvisionOutcome(False, exc.cause, f"rpc over SSH: {exc.kind}", evidence={"ssh": exc.kind})
        if timed_out:  # the session may be stuck: verify over a connection of its own
            info, info_problem, raw = self._amtinfo(
                lambda line: self.ssh.run(host.address, line, port=port, os_flavor=flavor), flavor)
        return self._verdict(report, info, info_problem, activated_before=before, adopt_note=adopt_note,
                             amtinfo_raw=raw)

    # THE RULE: what AMT (rpc amtinfo, read back after the attempt) and the new server (MPS's record of the
    # device, by uuid) say after the attempt decides the verdict; rpc's exit status and log only explain it.
    def _verdict(self, report, info, info_problem: str, *, activated_before: bool | None = False,
                 adopt_note: str = "", amtinfo_raw: str = "") -> ProvisionOutcome:
        """Join what rpc said, what amtinfo reads and what MPS holds into one outcome, by THE RULE above.

        Activated and held by MPS = provisioned, whatever rpc printed (an error logged after AMT was
        activated is kept as evidence, with a warning). Without provisioning.api, amtinfo alone verifies
        only a clean activation of an AMT that was not activated before. When AMT was (or may have been)
        activated before rpc ran (adopt), only MPS's record can show that RPS took it over."""
        activated = info.activated if info is not None else None
        ev = self._evidence(report, info, info_problem, adopt_note, amtinfo_raw)
        registered, reg_note = (None, "")
        if activated:
            registered, reg_note = self._registered(info.uuid)
            ev["mps"] = reg_note
        if activated and registered is True:
            ev["verified"] = "amtinfo + MPS" + (" (rpc's own output unreadable)" if report.hint == "unverified" else "")
            warning = self._contradiction(report, info)
            if self._acm_left_in_ccm(report, info):
                # AMT 19+: RPS starts an admin-mode profile in client control mode and upgrades it; when the
                # upgrade fails the device stays in CCM (rps issue #2177). Still provisioned by THE RULE (AMT is
                # activated and the new server holds it), but not in the mode the profile asked for: said so.
                ev["note"] = "a failed admin-control-mode step left AMT in client control mode (rps issue #2177)"
                ev["rpc_hint"] = report.hint
                warning = (f"provisioned in client control mode, not the admin control mode the profile asked for: "
                           f"RPS's admin-control-mode step failed ({report.server_error}; rps issue #2177). To reach "
                           f"admin control mode: fix that cause ({report.hint}), `rpc deactivate`, then activate again. "
                           + warning)
            if warning:
                ev["warning"] = warning
                return ProvisionOutcome(True, None, f"activated and registered ({info.control_mode}); rpc's own "
                                        f"report: {report.server_error or report.exit_name}", evidence=ev,
                                        warning=warning)
            return ProvisionOutcome(True, None, report.success_status or "activated and registered", evidence=ev)
        api_configured = self.api is not None or self.api_problem is not None
        clean = report.hint is None and report.claims_success
        if clean and activated and not api_configured and activated_before is False:
            ev["verified"] = "amtinfo only (no provisioning.api)"
            return ProvisionOutcome(True, None, report.success_status, evidence=ev)
        if clean or (activated and report.hint not in _REFUSED_BEFORE_AMT and registered is not False):
            # rpc said yes (or said no after it may have changed AMT), and what AMT and MPS say does not settle it
            return ProvisionOutcome(False, "unverified", self._undecided(report, info, info_problem, activated,
                                                                         api_configured, reg_note), evidence=ev)
        hint = report.hint or "internal_error"
        if hint == "already_activated" and activated is False:
            return ProvisionOutcome(False, "unverified", f"rpc says AMT is already activated, yet amtinfo reads "
                                    f"{info.control_mode}: {report.server_error or report.problems[0]}", evidence=ev)
        if hint == "already_activated" and activated:
            # the plan's path reads these: an activated AMT MPS does not hold is adopted, unprovisioned first or
            # left to a technician (tasks.rules.plan.host_path), never reprovisioned as if it were new
            ev.update(provisioning_state=2, control_mode=info.control_mode)
        message = report.server_error or (report.problems[0] if report.problems else report.exit_name)
        return ProvisionOutcome(False, hint, message, transient=report.transient, evidence=ev)

    def _evidence(self, report, info, info_problem: str, adopt_note: str, amtinfo_raw: str) -> dict:
        uuid = info.uuid if info is not None else ""
        ev = {"rpc": report.evidence, "rpc_exit": report.exit_status,
              "amtinfo": (f"{info.control_mode or 'no control mode'}; uuid {uuid or '?'}" if info is not None
                          else info_problem)}
        if info is not None and info.control_mode:  # read back after rpc ran: what the close-out reports
            ev["control_mode_after"] = info.control_mode
            if uuid:
                ev["uuid"] = uuid
        if info is None and amtinfo_raw:
            ev["amtinfo_output"] = amtinfo_raw  # could not read it: the raw text is the evidence
        if report.problems or report.hint in ("tool_error", "unverified") or report.rejected:
            ev["rpc_output"] = report.raw
        if report.reported_suffix:
            ev["rpc_reported_suffix"] = report.reported_suffix
        if adopt_note:
            ev["adopt"] = adopt_note
        return ev

    @staticmethod
    def _acm_left_in_ccm(report, info) -> bool:
        """rpc reported an admin-control-mode activation that failed, and AMT reads client control mode."""
        said = report.server_error or ""
        return (report.hint is not None and info.control == "ccm"
                and bool(re.search(r"\bACM\b|admin control mode", said, re.I)))

    @staticmethod
    def _contradiction(report, info) -> str:
        """The warning for a host AMT and MPS call provisioned while rpc reported an error ("" when none)."""
        if report.hint is None and not report.rejected:
            return ""
        said = report.server_error or (report.problems[0] if report.problems else report.exit_name)
        return (f"rpc exited {report.exit_status} without a clean success ({said}), but AMT reads {info.control_mode} "
                f"and MPS holds device {info.uuid}: provisioned by what AMT and the new server say; rpc's error is "
                f"kept as evidence (rpc_output)")

    @staticmethod
    def _undecided(report, info, info_problem: str, activated, api_configured: bool, reg_note: str) -> str:
        if report.hint is None:
            why = ("AMT reports it is not activated" if activated is False
                   else "AMT was activated before rpc ran, so amtinfo can't show a takeover: name provisioning.api "
                        "so MPS's record verifies it" if activated and not api_configured
                   else f"AMT's control mode can't be read ({info_problem or (info.control_mode if info else '')})"
                   if activated is None else f"activated but not registered with the new server ({reg_note})")
            return f"rpc reported success, unverified: {why}"
        said = report.server_error or (report.problems[0] if report.problems else report.exit_name)
        mps = reg_note if api_configured else "no provisioning.api, so MPS can't confirm who activated it"
        return f"rpc did not report a clean success ({said}), but AMT reads {info.control_mode} afterwards; {mps}"

    def is_provisioned(self, host: Host) -> bool | None:
        """Activated AND registered with the new server = provisioned by us (a run killed after RPS's
        yes). Activated but unknown to MPS = still the legacy console's. Not activated = no.
        Without a provisioning.api an activated AMT can't be attributed: None."""
        from tasks.adapters.ssh import SshError

        flavor = self.inv.os_of(host)
        port = self.inv.ssh_port_of(host)
        try:
            info, _problem, _raw = self._amtinfo(
                lambda line: self.ssh.run(host.address, line, port=port, os_flavor=flavor), flavor)
        except SshError:
            return None
        if info is None or info.activated is None:
            return None
        if not info.activated:
            return False
        registered, _note = self._registered(info.uuid)
        return registered

    def close(self) -> None:
        if self.api is not None:
            self.api.close()
