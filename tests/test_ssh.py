"""SshRunner against a real OpenSSH sshd: host key checks, auth, errors, deadlines, quoting, fan-out."""

from __future__ import annotations

import logging
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
from tests.sshd_fixture import SSH_KEYGEN, Sshd, free_port, keygen, public_key, sshd  # noqa: F401

from tasks.rules.host_state import Cause
from tasks.adapters.ssh import (
    CommandTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    KnownHosts,
    SshAuthFailed,
    SshKeyError,
    SshRunner,
    SshSettings,
    SshUnreachable,
    add_known_host,
    fingerprint,
    host_key_name,
    scan_host_keys,
)
from tasks.rules.suffix import InvalidValue


def make_runner(server: Sshd, known_hosts: Path, client: str = "ed25519", **kw) -> SshRunner:
    settings = SshSettings(user=server.user, port=server.port, known_hosts=known_hosts,
                           key_path=server.client_keys[client], connect_timeout=5, command_timeout=10, **kw)
    return SshRunner(settings)


def stderr_fields(stderr: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stderr.splitlines() if "=" in line)


def test_known_host_runs_command_on_the_dialled_address(sshd, tmp_path):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1", "127.0.0.7"]))
    result = runner.run("127.0.0.7", ["echo", "hello"])
    assert (result.exit_status, result.stdout) == (0, "hello\n")
    assert stderr_fields(result.stderr)["dialled"] == "127.0.0.7"
    assert result.address == "127.0.0.7" and result.port == sshd.port and result.ok


def test_exit_status_and_both_streams(sshd, tmp_path):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]))
    result = runner.run("127.0.0.1", "echo out; echo err >&2; exit 3")
    assert result.exit_status == 3 and not result.ok
    assert result.stdout == "out\n"
    assert result.stderr.splitlines()[-1] == "err"


def test_large_output_on_both_streams_is_read_completely(sshd, tmp_path):
    # More than paramiko's 2 MB window on stderr while stdout also streams: a reader that only
    # drained stdout would stall here.
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]))
    result = runner.run("127.0.0.1", "head -c 3000000 /dev/zero | tr '\\0' e >&2; seq 1 20000")
    assert result.exit_status == 0
    assert result.stdout.splitlines()[-1] == "20000" and len(result.stdout.splitlines()) == 20000
    assert result.stderr.count("e") >= 3_000_000


def test_unknown_host_key_is_refused(sshd, tmp_path):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]))
    with pytest.raises(HostKeyUnknown) as info:
        runner.run("127.0.0.2", ["true"])
    err = info.value
    assert (err.cause, err.kind) == (Cause.AUTH_FAILED, "host_key_unknown")
    assert "host key unknown" in str(err) and "amt-migrate trust-hosts" in str(err)


def test_known_hosts_entry_for_another_port_does_not_count(sshd, tmp_path):
    kh = tmp_path / "kh"
    key = sshd.host_key()
    kh.write_text(f"127.0.0.1 {key.get_name()} {key.get_base64()}\n")  # port 22 form
    with pytest.raises(HostKeyUnknown):
        make_runner(sshd, kh).run("127.0.0.1", ["true"])


def test_changed_host_key_is_refused_and_names_both_fingerprints(sshd, tmp_path):
    impostor = public_key(keygen(tmp_path / "other"))
    kh = sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"], key=impostor)
    with pytest.raises(HostKeyChanged) as info:
        make_runner(sshd, kh).run("127.0.0.1", ["true"])
    err = info.value
    assert (err.cause, err.kind) == (Cause.AUTH_FAILED, "host_key_changed")
    assert fingerprint(impostor) in str(err) and fingerprint(sshd.host_key()) in str(err)


def test_rsa_only_known_hosts_entry_is_verified(sshd, tmp_path):
    # The server also has an ed25519 key; the client must ask for the recorded RSA key, not
    # fall through to ed25519 and report a bogus "changed" key.
    kh = sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"], key_type="rsa")
    assert make_runner(sshd, kh).run("127.0.0.1", ["echo", "rsa"]).stdout == "rsa\n"


def test_changed_rsa_key_is_refused(sshd, tmp_path):
    impostor = public_key(keygen(tmp_path / "other_rsa", "rsa", bits=2048))
    kh = sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"], key=impostor)
    with pytest.raises(HostKeyChanged):
        make_runner(sshd, kh).run("127.0.0.1", ["true"])


def test_hashed_known_hosts_from_ssh_keygen(sshd, tmp_path):
    kh = sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1", "127.0.0.3"])
    subprocess.run([SSH_KEYGEN, "-H", "-f", str(kh)], check=True, capture_output=True)
    assert "127.0.0.3" not in kh.read_text()
    runner = make_runner(sshd, kh)
    assert stderr_fields(runner.run("127.0.0.3", ["true"]).stderr)["dialled"] == "127.0.0.3"
    with pytest.raises(HostKeyUnknown):
        runner.run("127.0.0.4", ["true"])


def test_revoked_host_key_is_refused(sshd, tmp_path):
    kh = sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"])
    key = sshd.host_key()
    kh.write_text(kh.read_text() + f"@revoked * {key.get_name()} {key.get_base64()}\n")
    with pytest.raises(HostKeyChanged) as info:
        make_runner(sshd, kh).run("127.0.0.1", ["true"])
    assert info.value.kind == "host_key_revoked"


@pytest.mark.parametrize("client", ["ed25519", "ecdsa", "rsa"])
def test_client_key_types_from_text(sshd, tmp_path, client):
    kh = sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"])
    settings = SshSettings(user=sshd.user, port=sshd.port, known_hosts=kh,
                           key_text=sshd.client_keys[client].read_text())
    assert SshRunner(settings).run("127.0.0.1", ["echo", client]).stdout == f"{client}\n"


def test_key_path_from_environment_variable(sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("AMT_TEST_SSH_KEY", str(sshd.client_keys["ed25519"]))
    kh = sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"])
    settings = SshSettings(user=sshd.user, port=sshd.port, known_hosts=kh, key_env="AMT_TEST_SSH_KEY")
    assert SshRunner(settings).run("127.0.0.1", ["true"]).ok
    monkeypatch.delenv("AMT_TEST_SSH_KEY")
    with pytest.raises(SshKeyError, match="AMT_TEST_SSH_KEY"):
        SshRunner(settings)


def test_wrong_client_key_is_auth_failed(sshd, tmp_path):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]), client="stranger")
    with pytest.raises(SshAuthFailed) as info:
        runner.run("127.0.0.1", ["true"])
    assert (info.value.cause, info.value.kind) == (Cause.AUTH_FAILED, "auth")
    assert not isinstance(info.value, (HostKeyUnknown, HostKeyChanged))


def test_refused_port_is_unreachable(sshd, tmp_path):
    port = free_port()
    kh = tmp_path / "kh"
    key = sshd.host_key()
    kh.write_text(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n")
    with pytest.raises(SshUnreachable) as info:
        make_runner(sshd, kh).run("127.0.0.1", ["true"], port=port)
    assert (info.value.cause, info.value.kind) == (Cause.UNREACHABLE, "refused")


def test_silent_server_times_out_as_unreachable(sshd, tmp_path):
    # A listener that accepts but never speaks SSH: the banner wait must end at the deadline.
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        kh = tmp_path / "kh"
        key = sshd.host_key()
        kh.write_text(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n")
        settings = SshSettings(user=sshd.user, port=port, known_hosts=kh,
                               key_path=sshd.client_keys["ed25519"], connect_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(SshUnreachable) as info:
            SshRunner(settings).run("127.0.0.1", ["true"])
        assert time.monotonic() - started < 5
    assert info.value.cause == Cause.UNREACHABLE and info.value.kind == "timeout"


def test_command_deadline(sshd, tmp_path):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]))
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        runner.run("127.0.0.1", "echo started; sleep 20", timeout=0.7)
    elapsed = time.monotonic() - started
    assert 0.7 <= elapsed < 5
    err = info.value
    assert (err.kind, err.cause) == ("command_timeout", Cause.UNKNOWN)
    assert err.stdout == "started\n"


def test_a_session_runs_several_commands_over_one_connection(sshd, tmp_path):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1", "127.0.0.9"]))
    with runner.session("127.0.0.9") as sh:
        first = sh.run('echo "$SSH_CONNECTION"')
        with pytest.raises(CommandTimeout):  # a command past its deadline costs its channel, not the session
            sh.run("sleep 20", timeout=0.5)
        failed = sh.run("exit 4")
        quoted = sh.run(["printf", "%s", "a b"])
        last = sh.run('echo "$SSH_CONNECTION"')
    assert first.stdout.split()[2] == "127.0.0.9"
    assert last.stdout.split()[1] == first.stdout.split()[1]  # the same client port: the same connection
    assert failed.exit_status == 4 and (quoted.exit_status, quoted.stdout) == (0, "a b")
    # `run` dials afresh each time: two runs, two client ports
    ports = {runner.run("127.0.0.9", 'echo "$SSH_CONNECTION"').stdout.split()[1] for _ in range(2)}
    assert len(ports) == 2
    # ...and a session carries the same host-key check as `run`
    other = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh2", ["127.0.0.1"]))
    with pytest.raises(HostKeyUnknown):
        with other.session("127.0.0.9"):
            pass


def test_concurrent_runs_on_50_addresses(sshd, tmp_path):
    addresses = [f"127.0.1.{i}" for i in range(1, 51)]
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", addresses))

    def one(address):
        return runner.run(address, ["echo", address])

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, addresses))
    for address, result in zip(addresses, results):
        assert result.stdout == f"{address}\n"
        assert stderr_fields(result.stderr)["dialled"] == address


AWKWARD = ["a b", "it's", '"dq"', "$(id -u)", "`id`", "*", ";", "&&", "x|y", "--x=1", "tab\there",
           "ünïcödé", "", "back\\slash", "new\nline"]


def test_argv_is_quoted_so_the_remote_sees_each_argument_verbatim(sshd, tmp_path):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]))
    result = runner.run("127.0.0.1", ["printf", "[%s]\\n", *AWKWARD])
    assert result.exit_status == 0
    assert result.stdout == "".join(f"[{a}]\n" for a in AWKWARD)
    assert stderr_fields(result.stderr)["command"].startswith("printf ")


@pytest.mark.parametrize("bad", [["ipconfig", "/renew&calc"], ["ipconfig", "/renew", "%PATH%"],
                                 ["rpc", "activate", "-profile", "a b"], ["echo", "a|b"], ["echo", "x^y"]])
def test_windows_flavor_rejects_metacharacters_before_dialling(sshd, tmp_path, bad):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]))
    with pytest.raises(InvalidValue):
        runner.run("127.0.0.1", bad, os_flavor="windows")


def test_windows_flavor_allows_fixed_commands(sshd, tmp_path):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]))
    assert runner.render(["ipconfig", "/renew"], "windows") == "ipconfig /renew"
    # the sshd here is Linux, so just prove the line arrives unchanged
    result = runner.run("127.0.0.1", ["echo", "/all", "--json"], os_flavor="windows")
    assert result.stdout == "/all --json\n"


@pytest.mark.parametrize("bad", ["echo a\nrm -rf /", "", "echo \x00"])
def test_command_strings_must_be_one_line(sshd, tmp_path, bad):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]))
    with pytest.raises(InvalidValue):
        runner.run("127.0.0.1", bad)


def test_bad_address_rejected(sshd, tmp_path):
    runner = make_runner(sshd, sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"]))
    with pytest.raises(InvalidValue):
        runner.run("127.0.0.1;id", ["true"])


def test_secrets_never_in_errors_logs_or_reprs(sshd, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key_text = sshd.client_keys["encrypted"].read_text()
    key_lines = [ln for ln in key_text.splitlines() if ln and not ln.startswith("-----")]
    kh = sshd.write_known_hosts(tmp_path / "kh", ["127.0.0.1"])
    settings = SshSettings(user=sshd.user, port=sshd.port, known_hosts=kh, key_text=key_text,
                           key_passphrase=sshd.passphrase, connect_timeout=5)
    runner = SshRunner(settings)
    assert runner.run("127.0.0.1", ["true"]).ok  # the encrypted key works

    texts = [repr(settings), repr(runner), str(settings)]
    with pytest.raises(HostKeyUnknown) as unknown:
        runner.run("127.0.0.9", ["true"])
    texts += [str(unknown.value), repr(unknown.value)]
    wrong = SshSettings(user=sshd.user, port=sshd.port, known_hosts=kh, key_text=key_text,
                        key_passphrase=sshd.passphrase + "x")
    with pytest.raises(SshKeyError) as bad_pass:
        SshRunner(wrong)
    texts += [str(bad_pass.value), repr(bad_pass.value)]
    assert bad_pass.value.__cause__ is None and bad_pass.value.__suppress_context__
    stranger = SshSettings(user="nobody-such", port=sshd.port, known_hosts=kh, key_text=key_text,
                           key_passphrase=sshd.passphrase)
    with pytest.raises(SshAuthFailed) as auth:
        SshRunner(stranger).run("127.0.0.1", ["true"])
    texts += [str(auth.value), repr(auth.value), caplog.text]

    blob = "\n".join(texts)
    assert sshd.passphrase not in blob
    for line in key_lines:
        assert line not in blob


def test_scan_and_trust_hosts_then_run(sshd, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="amt_migrate.ssh")
    kh = tmp_path / "known_hosts"
    keys = scan_host_keys("127.0.0.5", sshd.port, timeout=5)
    # the server has ed25519 and RSA host keys, no ECDSA: ssh-keyscan would report the same two
    assert sorted(k.get_name() for k in keys) == ["ssh-ed25519", "ssh-rsa"]
    assert {fingerprint(k) for k in keys} == {fingerprint(sshd.host_key("ed25519")),
                                              fingerprint(sshd.host_key("rsa"))}
    for key in keys:
        assert add_known_host(kh, "127.0.0.5", sshd.port, key) is True
        assert fingerprint(key) in caplog.text
    assert add_known_host(kh, "127.0.0.5", sshd.port, keys[0]) is False  # idempotent
    assert kh.stat().st_mode & 0o077 == 0
    assert kh.read_text().startswith(f"[127.0.0.5]:{sshd.port} ")

    runner = make_runner(sshd, kh)
    assert stderr_fields(runner.run("127.0.0.5", ["true"]).stderr)["dialled"] == "127.0.0.5"

    # a different key for a recorded host/type is never written silently
    with pytest.raises(HostKeyChanged):
        add_known_host(kh, "127.0.0.5", sshd.port, public_key(keygen(tmp_path / "new")))

    # trust a second host, reload, run
    with pytest.raises(HostKeyUnknown):
        runner.run("127.0.0.6", ["true"])
    add_known_host(kh, "127.0.0.6", sshd.port, keys[0])
    runner.reload_known_hosts()
    assert runner.run("127.0.0.6", ["true"]).ok


def test_scan_of_closed_port_is_unreachable():
    with pytest.raises(SshUnreachable) as info:
        scan_host_keys("127.0.0.1", free_port(), timeout=2)
    assert info.value.kind == "refused"


def test_known_hosts_index_names():
    assert host_key_name("10.0.0.1", 22) == "10.0.0.1"
    assert host_key_name("10.0.0.1", 2222) == "[10.0.0.1]:2222"


def test_known_hosts_parses_multi_name_lines_and_skips_junk(tmp_path, sshd):
    key = sshd.host_key()
    text = (f"# comment\n\nhost-a.example,10.0.0.1 {key.get_name()} {key.get_base64()}\n"
            f"garbage line\n*.wild {key.get_name()} {key.get_base64()}\n"
            f"[10.0.0.2]:2299 {key.get_name()} {key.get_base64()} trailing comment\n")
    known = KnownHosts()
    known.load_text(text)
    assert set(known.lookup("HOST-A.example")) == {"ssh-ed25519"}
    assert known.lookup("10.0.0.1")["ssh-ed25519"] == key
    assert known.lookup("[10.0.0.2]:2299")["ssh-ed25519"] == key
    assert known.lookup("10.0.0.2") == {}
    assert known.skipped == 2


def test_ecdsa_keys_with_empty_comment_all_load(tmp_path):
    # paramiko 4.0's own reader rejects about half of these; 20 keys make a regression near-certain
    # to show.
    from tasks.adapters.ssh import load_private_key

    for i in range(20):
        path = keygen(tmp_path / f"ec{i}", "ecdsa", bits=256)
        key = load_private_key(path.read_text())
        assert fingerprint(key) == fingerprint(public_key(path))
