"""Security groups through the API: a group, its rules, a port joining it, and the
errors (a field-named 422, a 409 naming the port or the owning group)."""

from __future__ import annotations

import uuid

import httpx
from apiworld import Server, build_world, make

from tenet.store.secgroups import compiled_id


def test_a_group_its_rules_and_a_member(server: Server, admin: httpx.Client) -> None:
    w = build_world(admin)
    t = w["tenant"]["id"]
    secret, _ = server.tokens.create("member", uuid.UUID(t), "m")
    with server.client(secret) as member:
        sg = make(member, "security-groups", name="web", description="the web tier")
        assert sg["stateful"] is True
        assert sg["ingress_chain_id"]
        assert sg["egress_chain_id"]
        assert sg["ip_addr_group_id"]
        ssh = make(member, "security-group-rules", security_group_id=sg["id"],
                   direction="ingress", protocol="tcp", port_range_min=22,
                   port_range_max=22, remote_ip_prefix="10.0.0.0/8")  # fmt: skip
        assert ssh["protocol"] == 6
        listed = member.get("/v1/security-group-rules", params={"security_group_id": sg["id"]})
        assert listed.status_code == 200, listed.text
        rules = listed.json()["items"]
        assert {r["direction"] for r in rules} == {"ingress", "egress"}  # + the default egress
        assert len(rules) == 3
        chain = member.get(f"/v1/chains/{sg['ingress_chain_id']}/rules").json()
        compiled = str(compiled_id(uuid.UUID(ssh["id"])))
        assert compiled in [r["id"] for r in chain["items"]]
        port = make(member, "ports", device_id=w["bridge"]["id"], device_type="bridge",
                    fixed_ips=["10.0.0.7"], security_group_ids=[sg["id"]])  # fmt: skip
        members = member.get(f"/v1/ip-addr-groups/{sg['ip_addr_group_id']}").json()
        assert members["addresses"] == ["10.0.0.7/32"]
        # in use by a port: 409 naming the port
        refused = member.delete(f"/v1/security-groups/{sg['id']}")
        assert refused.status_code == 409, refused.text
        assert port["id"] in refused.json()["error"]["message"]
        # the group's own records: 409 naming the group
        owned = member.delete(f"/v1/chains/{sg['ingress_chain_id']}")
        assert owned.status_code == 409
        assert sg["id"] in owned.json()["error"]["message"]
        owned_rule = member.delete(f"/v1/rules/{compiled}")
        assert owned_rule.status_code == 409
        assert sg["id"] in owned_rule.json()["error"]["message"]
        assert member.delete(f"/v1/security-group-rules/{ssh['id']}").status_code == 204
        assert admin.get(f"/v1/rules/{compiled}").status_code == 404
        revision = member.get(f"/v1/ports/{port['id']}").json()["revision"]
        left = member.patch(f"/v1/ports/{port['id']}",
                            json={"security_group_ids": [], "revision": revision})  # fmt: skip
        assert left.status_code == 200, left.text
        assert member.delete(f"/v1/security-groups/{sg['id']}").status_code == 204
        assert member.get(f"/v1/chains/{sg['ingress_chain_id']}").status_code == 404


def test_bad_input_names_the_field(admin: httpx.Client) -> None:
    w = build_world(admin)
    base = {"tenant_id": w["tenant"]["id"], "security_group_id": w["sg"]["id"],
            "direction": "ingress"}  # fmt: skip
    for body, field in [
        ({**base, "direction": "up"}, "direction"),
        ({**base, "protocol": "tcpx"}, "protocol"),
        ({**base, "protocol": "tcp", "port_range_min": 22}, "port_range_max"),
        ({**base, "port_range_min": 22, "port_range_max": 22}, "port_range_min"),
        ({**base, "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": w["sg"]["id"]},
         "remote_group_id"),
        ({**base, "remote_group_id": str(uuid.uuid4())}, "remote_group_id"),
        ({**base, "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}, "remote_ip_prefix"),
        ({**base, "colour": "red"}, "colour"),
    ]:  # fmt: skip
        response = admin.post("/v1/security-group-rules", json=body)
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["error"]["field"] == field, (body, response.text)
    again = {**base, "protocol": "udp", "port_range_min": 53, "port_range_max": 53}
    make(admin, "security-group-rules", **again)
    duplicate = admin.post("/v1/security-group-rules", json=again)
    assert duplicate.status_code == 409, duplicate.text
    port = {"tenant_id": w["tenant"]["id"], "device_id": w["bridge"]["id"],
            "device_type": "bridge", "security_group_ids": [str(uuid.uuid4())]}  # fmt: skip
    missing = admin.post("/v1/ports", json=port)
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["field"] == "security_group_ids"


def test_trace_names_the_group_rule_that_decided(admin: httpx.Client) -> None:
    w = build_world(admin)
    t = w["tenant"]["id"]
    ssh = make(admin, "security-group-rules", tenant_id=t, security_group_id=w["sg"]["id"],
               direction="ingress", protocol="tcp", port_range_min=22,
               port_range_max=22)  # fmt: skip
    server = make(admin, "ports", tenant_id=t, device_id=w["bridge"]["id"], device_type="bridge",
                  mac="02:00:00:00:00:09", fixed_ips=["10.0.0.9"],
                  security_group_ids=[w["sg"]["id"]])  # fmt: skip
    trace = {"ingress_port_id": w["vmport"]["id"], "ip_dst": "10.0.0.9",
             "eth_dst": "02:00:00:00:00:09", "protocol": "tcp"}  # fmt: skip
    allowed = admin.post("/v1/trace", json={**trace, "dst_port": 22})
    assert allowed.status_code == 200, allowed.text
    lines = [f"{s['kind']} {s['name']}: {s['detail']}" for s in allowed.json()["trace"]]
    decided = [line for line in lines if "allowed by rule" in line]
    assert len(decided) == 1, lines
    assert ssh["id"] in decided[0]
    assert server["id"] in str(allowed.json()["trace"])
    dropped = admin.post("/v1/trace", json={**trace, "dst_port": 80}).json()
    assert dropped["verdict"] == "drop"
    assert "security groups (web): no rule allows this ingress packet" in str(dropped["trace"])
