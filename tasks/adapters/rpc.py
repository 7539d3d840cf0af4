"""rpc-go on the client over SSH (`provisioning.server: rpc`): Intel's Device Management Toolkit."""

from __future__ import annotations

from tasks.adapters.provisioner import ProvisionOutcome
from tasks.inventory.model import Host, Inventory


class RpcProvisioner:
    """rpc-go's `rpc activate` run on the client over SSH; exit codes and JSON mapped to outcomes."""

    name = "rpc"

    def __init__(self, inv: Inventory, ssh_runner, url: str, profile: str):
        from tasks.adapters.commands import validate_server_url

        self.inv = inv
        self.ssh = ssh_runner
        self.url = validate_server_url(url)
        self.profile = profile

    def provision(self, host: Host) -> ProvisionOutcome:
        from tasks.adapters.rpc_cli import activate_command, map_activation
        from tasks.adapters.ssh import SshError

        flavor = self.inv.os_of(host)
        try:
            res = self.ssh.run(host.address, activate_command(self.url, self.profile, flavor=flavor),
                               port=self.inv.ssh_port_of(host), os_flavor=flavor)
        except SshError as exc:
            return ProvisionOutcome(False, exc.cause, f"rpc over SSH: {exc.kind}", evidence={"ssh": exc.kind})
        out = map_activation(res.exit_status, res.stdout, res.stderr)
        if out.ok:
            return ProvisionOutcome(True, None, out.message, evidence={"rpc": out.evidence})
        # rpc-go's own verdicts map onto the classifier's vocabulary; a generic exit stays generic
        code = {"suffix_blank": "suffix_blank", "suffix_mismatch": "suffix_mismatch",
                "server_unreachable": "server_error"}.get(out.reason, "internal_error")
        return ProvisionOutcome(False, code, out.message, transient=code == "server_error",
                                evidence={"rpc": out.evidence, "rpc_exit": res.exit_status})

    def is_provisioned(self, host: Host) -> bool | None:
        return None  # an activated AMT may still be the legacy console's: amtinfo can't tell whose

    def close(self) -> None:
        pass
