"""The ``tenet`` command against a real API server (uvicorn on loopback, a real SQLite
file): resources, output, errors, trace, and where its configuration comes from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenet.api.auth import Tokens
from tenet.api.local import LocalServer
from tenet.cli import main
from tenet.store import SqliteStore
from tenet.store.objects import ObjectStore


class Api:
    def __init__(self, path: Path) -> None:
        self.store = SqliteStore(path)
        self.server = LocalServer(ObjectStore(self.store))
        self.url = self.server.url
        self.token, _ = Tokens(self.store).create("admin", None, "cli tests")

    def close(self) -> None:
        self.server.close()
        self.store.close()


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.delenv("TENET_URL", raising=False)
    monkeypatch.delenv("TENET_TOKEN", raising=False)
    monkeypatch.setenv("TENET_CONFIG", str(tmp_path / "no-config.toml"))
    made = Api(tmp_path / "store.db")
    try:
        yield made
    finally:
        made.close()


def tenet(api: Api, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--url", api.url, "--token", api.token, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tenet_json(api: Api, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = tenet(api, capsys, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_create_list_show_update_delete(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    tenant = tenet_json(api, capsys, "tenant", "create", "--name", "acme")
    bridge = tenet_json(api, capsys, "bridge", "create", "--tenant", tenant["id"],
                        "--name", "web")  # fmt: skip
    assert bridge["tenant_id"] == tenant["id"]
    code, out, _ = tenet(api, capsys, "bridge", "list", "--filter", f"tenant_id={tenant['id']}")
    assert code == 0
    assert bridge["id"] in out
    assert "web" in out  # a table, with the name
    shown = tenet_json(api, capsys, "bridge", "show", bridge["id"])
    assert shown == bridge
    updated = tenet_json(api, capsys, "bridge", "update", bridge["id"], "--name", "front",
                         "--set", "admin_state_up=false")  # fmt: skip
    assert (updated["name"], updated["admin_state_up"]) == ("front", False)
    code, out, _ = tenet(api, capsys, "bridge", "delete", bridge["id"])
    assert code == 0
    assert "deleted" in out
    code, _, err = tenet(api, capsys, "bridge", "show", bridge["id"])
    assert code == 1
    assert "does not exist" in err
    assert "404" in err


def test_json_values_ports_links_and_sub_lists(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    t = tenet_json(api, capsys, "tenant", "create", "--name", "acme")["id"]
    bridge = tenet_json(api, capsys, "bridge", "create", "--tenant", t)["id"]
    router = tenet_json(api, capsys, "router", "create", "--tenant", t)["id"]
    vm = tenet_json(api, capsys, "port", "create", "--tenant", t, "--set", f"device_id={bridge}",
                    "--set", "device_type=bridge", "--set", "mac=02:00:00:00:00:05",
                    "--set", 'fixed_ips=["10.0.0.5"]')  # fmt: skip
    assert vm["fixed_ips"] == ["10.0.0.5"]
    rport = tenet_json(api, capsys, "port", "create", "--tenant", t, "--set", f"device_id={router}",
                       "--set", "device_type=router", "--set", "mac=02:00:00:00:00:aa",
                       "--set", "address=10.0.0.1", "--set", "subnet=10.0.0.0/24")  # fmt: skip
    bport = tenet_json(api, capsys, "port", "create", "--tenant", t,
                       "--set", f"device_id={bridge}", "--set", "device_type=bridge")  # fmt: skip
    linked = tenet_json(api, capsys, "port", "link", bport["id"], rport["id"])
    assert linked["peer_id"] == rport["id"]
    ports = tenet_json(api, capsys, "bridge", "ports", bridge)["items"]
    assert {p["id"] for p in ports} == {vm["id"], bport["id"]}
    code, out, _ = tenet(api, capsys, "trace", "--port", vm["id"], "--dst", "10.0.0.1")
    assert code == 0, out
    assert "verdict" in out
    assert "router" in out  # the hops are printed
    unlinked = tenet_json(api, capsys, "port", "unlink", bport["id"])
    assert unlinked["peer_id"] is None


def test_errors_are_one_line_with_the_field(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = tenet(api, capsys, "bridge", "create", "--tenant", "not-a-uuid")
    assert code == 1
    assert "tenant_id" in err
    assert "Traceback" not in err
    t = tenet_json(api, capsys, "tenant", "create", "--name", "acme")["id"]
    tenet_json(api, capsys, "chain", "create", "--tenant", t, "--name", "c")
    code, _, err = tenet(api, capsys, "tenant", "delete", t)
    assert code == 1
    assert "409" in err
    code, _, err = tenet(api, capsys, "bridge", "create", "--set", "oops")
    assert code == 2
    assert "field=value" in err
    code, _, err = tenet(api, capsys, "bridge", "update", "00000000-0000-0000-0000-000000000001")
    assert code == 2
    assert "nothing to change" in err


def test_a_server_that_is_not_there(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--url", "http://127.0.0.1:9", "bridge", "list"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach the tenet API at http://127.0.0.1:9" in err
    assert "--url" in err


def test_a_bad_token(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--url", api.url, "--token", "tnt_wrong", "bridge", "list"])
    assert code == 1
    assert "not valid" in capsys.readouterr().err


def test_configuration_flag_then_environment_then_file(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'url = "{api.url}"\ntoken = "{api.token}"\n')
    monkeypatch.setenv("TENET_CONFIG", str(config))
    assert main(["--json", "whoami"]) == 0  # all from the file
    assert json.loads(capsys.readouterr().out)["role"] == "admin"
    monkeypatch.setenv("TENET_URL", "http://127.0.0.1:9")  # the environment beats the file
    assert main(["whoami"]) == 2
    assert "from TENET_URL" in capsys.readouterr().err
    assert main(["--url", api.url, "whoami"]) == 0  # the flag beats the environment
    capsys.readouterr()
    monkeypatch.setenv("TENET_TOKEN", "tnt_wrong")
    assert main(["--url", api.url, "whoami"]) == 1
    assert "not valid" in capsys.readouterr().err


def test_tokens(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    t = tenet_json(api, capsys, "tenant", "create", "--name", "acme")["id"]
    made = tenet_json(api, capsys, "token", "create", "--role", "member", "--tenant", t)
    assert made["token"].startswith("tnt_")
    code = main(["--url", api.url, "--token", made["token"], "--json", "bridge", "create"])
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(out)["tenant_id"] == t
    listed = tenet_json(api, capsys, "token", "list")["items"]
    assert made["id"] in {tok["id"] for tok in listed}
    code, out, _ = tenet(api, capsys, "token", "delete", made["id"])
    assert code == 0


def test_usage_errors_exit_2_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bridge", "frob"]) == 2
    assert main(["agent", "--host-id", "nope", "--store", "memory:", "--underlay", "1.2.3.4"]) == 2
    err = capsys.readouterr().err
    assert "No such command" in err
    assert "--host-id" in err
    assert "Traceback" not in err


def test_a_command_exit_status_is_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert main(["demo", "--help"]) == 0
    assert "--check" in capsys.readouterr().out


def test_security_groups_and_their_rules(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    tenant = tenet_json(api, capsys, "tenant", "create", "--name", "acme")
    sg = tenet_json(api, capsys, "security-group", "create", "--tenant", tenant["id"],
                    "--name", "web")  # fmt: skip
    ssh = tenet_json(api, capsys, "security-group", "rule", "add", sg["id"], "--protocol", "tcp",
                     "--dst-port", "22", "--remote-ip", "10.0.0.0/8")  # fmt: skip
    assert (ssh["protocol"], ssh["port_range_min"], ssh["port_range_max"]) == (6, 22, 22)
    assert ssh["tenant_id"] == tenant["id"]
    ping = tenet_json(api, capsys, "security-group", "rule", "add", sg["id"], "--protocol",
                      "icmp", "--icmp-type", "8", "--direction", "ingress")  # fmt: skip
    assert (ping["protocol"], ping["port_range_min"]) == (1, 8)
    listed = tenet_json(api, capsys, "security-group", "rule", "list", sg["id"])
    assert {r["id"] for r in listed["items"]} >= {ssh["id"], ping["id"]}
    assert len(listed["items"]) == 4  # and the two default egress rules
    code, out, _ = tenet(api, capsys, "security-group", "rule", "list", sg["id"])
    assert code == 0
    assert "ingress" in out
    assert "egress" in out
    # a port joins the group, then leaves it
    bridge = tenet_json(api, capsys, "bridge", "create", "--tenant", tenant["id"])
    port = tenet_json(api, capsys, "port", "create", "--tenant", tenant["id"],
                      "--set", f"device_id={bridge['id']}", "--set", "device_type=bridge",
                      "--set", 'fixed_ips=["10.0.0.5"]', "--security-group", sg["id"])  # fmt: skip
    assert port["security_group_ids"] == [sg["id"]]
    code, _, err = tenet(api, capsys, "security-group", "delete", sg["id"])
    assert code == 1
    assert port["id"] in err  # in use by the port: named
    left = tenet_json(api, capsys, "port", "update", port["id"], "--security-group", "")
    assert left["security_group_ids"] == []
    code, out, _ = tenet(api, capsys, "security-group", "rule", "delete", ssh["id"])
    assert code == 0
    assert "deleted" in out
    code, _, err = tenet(api, capsys, "security-group", "rule", "add", sg["id"], "--protocol",
                         "tcp", "--dst-port", "80:22")  # fmt: skip
    assert code == 1
    assert "port_range_max" in err
    code, _, err = tenet(api, capsys, "bridge", "update", bridge["id"], "--security-group", "x")
    assert code == 2
    assert "only ports" in err
    code, _, _ = tenet(api, capsys, "security-group", "delete", sg["id"])
    assert code == 0
