"""The ``tenet`` command: a thin client over the REST API, and the servers.

    tenet [--url URL] [--token TOKEN] [--json] RESOURCE ACTION ...
    tenet bridge create --tenant T --name web        tenet bridge list --filter tenant_id=T
    tenet port link PORT PEER                        tenet trace --port P --dst 10.0.2.10
    tenet security-group create --name web --tenant T
    tenet security-group rule add SG --protocol tcp --dst-port 22
    tenet api --store sqlite:///var/lib/tenet/store.db
    tenet agent --host-id H --store URL --underlay 10.250.0.1
    tenet demo [--check]

Every resource of the API has ``create``, ``list``, ``show``, ``update`` and
``delete``; fields go in as ``--set field=value`` (a value that parses as JSON is
taken as JSON: ``--set fixed_ips='["10.0.0.5"]'``). Output is a table, or the
API's JSON with ``--json``. Where the API is and the token: see
:mod:`tenet.cli.client`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import uuid
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tenet import __version__
from tenet.cli.client import Client, CliError, load_config
from tenet.errors import TenetError
from tenet.model import KINDS

COLLECTIONS = sorted(kind.replace("_", "-") for kind in KINDS)
HIDDEN = ("created_at", "updated_at")

app = typer.Typer(
    name="tenet",
    help="tenet: network virtualization for multi-tenant clouds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console() if sys.stdout.isatty() else Console(width=240)  # piped: whole ids
err = Console(stderr=True)


class State:
    url: str | None = None
    token: str | None = None
    json: bool = False
    client: Client | None = None


state = State()


def version(value: bool) -> None:
    if value:
        print(f"tenet {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    url: Annotated[str | None, typer.Option(help="the API's URL (env TENET_URL)")] = None,
    token: Annotated[str | None, typer.Option(help="an API token (env TENET_TOKEN)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    _version: Annotated[
        bool, typer.Option("--version", callback=version, is_eager=True, help="print it")
    ] = False,
) -> None:
    state.url, state.token, state.json = url, token, as_json
    state.client = None


def client() -> Client:
    if state.client is None:
        state.client = Client(load_config(state.url, state.token))
    return state.client


# -- output -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value) if value else ""
    return str(value)


def show(data: Any) -> None:
    if state.json:
        out.print_json(json.dumps(data))
        return
    if isinstance(data, dict) and "items" in data:
        show_list(data["items"])
        if data.get("next_cursor"):
            out.print(f"(more: --cursor {data['next_cursor']})")
        return
    if isinstance(data, dict):
        table = Table(show_header=False, box=None)
        for key, value in data.items():
            if key not in HIDDEN:
                table.add_row(f"[bold]{key}[/]", _cell(value))
        out.print(table)
        return
    out.print(data)


def show_list(items: list[dict[str, Any]]) -> None:
    if not items:
        out.print("(none)")
        return
    columns: list[str] = [c for c in ("id", "name") if c in items[0]]
    for key, value in items[0].items():
        if len(columns) >= 6:
            break
        if key in (*columns, *HIDDEN, "revision") or isinstance(value, list | dict):
            continue
        if any(item.get(key) not in (None, "", False) for item in items):
            columns.append(key)
    table = Table()
    for column in columns:  # ids are never cut short
        table.add_column(column, no_wrap=column == "id" or column.endswith("_id"))
    for item in items:
        table.add_row(*(_cell(item.get(c)) for c in columns))
    out.print(table)


def _pairs(values: list[str] | None, option: str) -> dict[str, Any]:
    """``field=value`` options as a dict; a value that parses as JSON is JSON."""
    result: dict[str, Any] = {}
    for raw in values or ():
        name, sep, value = raw.partition("=")
        if not sep or not name:
            raise CliError(f"{option} {raw!r}: expected field=value", 2)
        try:
            result[name] = json.loads(value)
        except ValueError:
            result[name] = value
    return result


# -- resources ----------------------------------------------------------------------------

Sets = Annotated[list[str] | None, typer.Option("--set", help="field=value (repeatable)")]
Groups = Annotated[
    list[str] | None,
    typer.Option("--security-group", help="ports: a security group id (repeatable)"),
]


def _groups(collection: str, body: dict[str, Any], groups: list[str] | None) -> None:
    """``--security-group`` (ports only): the port's security_group_ids."""
    if groups is None:
        return
    if collection != "ports":
        raise CliError("--security-group: only ports have security groups", 2)
    body["security_group_ids"] = [] if groups == [""] else groups


def _resource(collection: str) -> typer.Typer:
    singular = collection.removesuffix("s")
    sub = typer.Typer(help=f"{collection.replace('-', ' ')} (/v1/{collection})",
                      no_args_is_help=True)  # fmt: skip
    base = f"/v1/{collection}"

    @sub.command("create")
    def create(
        name: Annotated[str | None, typer.Option(help="its name")] = None,
        tenant: Annotated[str | None, typer.Option(help="the tenant id")] = None,
        sets: Sets = None,
        groups: Groups = None,
    ) -> None:
        """Create one."""
        body = _pairs(sets, "--set")
        _groups(collection, body, groups)
        if name is not None:
            body["name"] = name
        if tenant is not None:
            body["tenant_id"] = tenant
        show(client().call("POST", base, body))

    @sub.command("list")
    def list_(
        filters: Annotated[
            list[str] | None, typer.Option("--filter", help="field=value (repeatable)")
        ] = None,
        limit: Annotated[int | None, typer.Option(help="at most this many")] = None,
        cursor: Annotated[str | None, typer.Option(help="from a previous page")] = None,
    ) -> None:
        """List them (filters are equality on fields)."""
        params = {k: v if isinstance(v, str) else json.dumps(v)
                  for k, v in _pairs(filters, "--filter").items()}  # fmt: skip
        show(client().call("GET", base, limit=limit, cursor=cursor, **params))

    @sub.command("show")
    def show_one(ident: Annotated[str, typer.Argument(help="its id")]) -> None:
        """Show one."""
        show(client().call("GET", f"{base}/{ident}"))

    @sub.command("update")
    def update(
        ident: Annotated[str, typer.Argument(help="its id")],
        name: Annotated[str | None, typer.Option(help="a new name")] = None,
        sets: Sets = None,
        groups: Groups = None,
    ) -> None:
        """Change fields (refused if someone changed it meanwhile)."""
        body = _pairs(sets, "--set")
        _groups(collection, body, groups)
        if name is not None:
            body["name"] = name
        if not body:
            raise CliError("nothing to change: give --name or --set field=value", 2)
        current = client().call("GET", f"{base}/{ident}")
        body["revision"] = current["revision"]
        show(client().call("PATCH", f"{base}/{ident}", body))

    @sub.command("delete")
    def delete(ident: Annotated[str, typer.Argument(help="its id")]) -> None:
        """Delete one."""
        client().call("DELETE", f"{base}/{ident}")
        if not state.json:
            out.print(f"deleted {singular} {ident}")

    return sub


def _listing(sub: typer.Typer, name: str, path: str, help_text: str) -> None:
    def command(ident: Annotated[str, typer.Argument(help="its id")]) -> None:
        show(client().call("GET", path.format(ident)))

    command.__doc__ = help_text
    sub.command(name)(command)


RESOURCES = {collection: _resource(collection) for collection in COLLECTIONS}
for _collection, _sub in RESOURCES.items():
    app.add_typer(_sub, name=_collection.removesuffix("s"))

_listing(RESOURCES["bridges"], "ports", "/v1/bridges/{}/ports", "The bridge's ports.")
_listing(RESOURCES["bridges"], "mac-table", "/v1/bridges/{}/mac-table", "Learned MACs.")
_listing(RESOURCES["routers"], "ports", "/v1/routers/{}/ports", "The router's ports.")
_listing(RESOURCES["routers"], "routes", "/v1/routers/{}/routes", "The router's routes.")
_listing(RESOURCES["routers"], "arp-table", "/v1/routers/{}/arp-table", "Learned ARP entries.")
_listing(RESOURCES["chains"], "rules", "/v1/chains/{}/rules", "The chain's rules, in order.")
_listing(RESOURCES["hosts"], "interfaces", "/v1/hosts/{}/interfaces", "Its network interfaces.")
_listing(RESOURCES["hosts"], "status", "/v1/hosts/{}/status", "Its agent: alive, counters.")
_listing(RESOURCES["ports"], "status", "/v1/ports/{}/status",
         "Its binding: waiting, bound, refused (and why), host down.")  # fmt: skip


@RESOURCES["ports"].command("link")
def port_link(
    port: Annotated[str, typer.Argument(help="a port id")],
    peer: Annotated[str, typer.Argument(help="the port to link it to")],
) -> None:
    """Link two ports (a bridge's to a router's, or two routers')."""
    show(client().call("POST", f"/v1/ports/{port}/link", {"peer_id": peer}))


@RESOURCES["ports"].command("unlink")
def port_unlink(port: Annotated[str, typer.Argument(help="a port id")]) -> None:
    """Unlink a port from its peer."""
    show(client().call("DELETE", f"/v1/ports/{port}/link"))


sg_rules = typer.Typer(help="a security group's rules (/v1/security-group-rules)",
                       no_args_is_help=True)  # fmt: skip
RESOURCES["security-groups"].add_typer(sg_rules, name="rule")


def _port_range(value: str) -> tuple[int, int]:
    low, _, high = value.partition(":")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise CliError(f"--dst-port {value!r}: expected PORT or LOW:HIGH", 2) from None


@sg_rules.command("add")
def sg_rule_add(
    group: Annotated[str, typer.Argument(help="the security group's id")],
    direction: Annotated[str, typer.Option(help="ingress (to the VM) or egress")] = "ingress",
    protocol: Annotated[str | None, typer.Option(help="tcp, udp, icmp, icmpv6 or a number")] = None,
    ethertype: Annotated[str, typer.Option(help="IPv4 or IPv6")] = "IPv4",
    dst_port: Annotated[str | None, typer.Option(help="PORT or LOW:HIGH (tcp, udp)")] = None,
    icmp_type: Annotated[int | None, typer.Option(help="ICMP type")] = None,
    icmp_code: Annotated[int | None, typer.Option(help="ICMP code")] = None,
    remote_ip: Annotated[str | None, typer.Option(help="the remote prefix (CIDR)")] = None,
    remote_group: Annotated[str | None, typer.Option(help="the remote security group")] = None,
    description: Annotated[str | None, typer.Option(help="what it is for")] = None,
) -> None:
    """Allow some traffic: what no rule of a port's groups allows is dropped."""
    body: dict[str, Any] = {"security_group_id": group, "direction": direction,
                            "ethertype": ethertype}  # fmt: skip
    if dst_port is not None:
        body["port_range_min"], body["port_range_max"] = _port_range(dst_port)
    if icmp_type is not None:
        body["port_range_min"] = icmp_type
    if icmp_code is not None:
        body["port_range_max"] = icmp_code
    optional = {"protocol": protocol, "remote_ip_prefix": remote_ip,
                "remote_group_id": remote_group, "description": description}  # fmt: skip
    body.update({k: v for k, v in optional.items() if v is not None})
    # the rule is in its group's tenant (an admin's token names no tenant of its own)
    body["tenant_id"] = client().call("GET", f"/v1/security-groups/{group}")["tenant_id"]
    show(client().call("POST", "/v1/security-group-rules", body))


@sg_rules.command("list")
def sg_rule_list(group: Annotated[str, typer.Argument(help="the security group's id")]) -> None:
    """The group's rules."""
    show(client().call("GET", "/v1/security-group-rules", security_group_id=group))


@sg_rules.command("delete")
def sg_rule_delete(ident: Annotated[str, typer.Argument(help="the rule's id")]) -> None:
    """Delete a rule (its compiled rule goes with it)."""
    client().call("DELETE", f"/v1/security-group-rules/{ident}")
    if not state.json:
        out.print(f"deleted security group rule {ident}")


tokens = typer.Typer(help="API tokens (admin only)", no_args_is_help=True)
app.add_typer(tokens, name="token")


@tokens.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin, or member of one tenant")] = "member",
    tenant: Annotated[str | None, typer.Option(help="the member's tenant id")] = None,
    name: Annotated[str, typer.Option(help="what it is for")] = "",
) -> None:
    """Create a token; it is shown once."""
    show(client().call("POST", "/v1/tokens", {"role": role, "tenant_id": tenant, "name": name}))


@tokens.command("list")
def token_list() -> None:
    """List tokens (never their secrets)."""
    show(client().call("GET", "/v1/tokens"))


@tokens.command("delete")
def token_delete(ident: Annotated[str, typer.Argument(help="the token's id")]) -> None:
    """Delete a token: it stops working at once."""
    client().call("DELETE", f"/v1/tokens/{ident}")
    if not state.json:
        out.print(f"deleted token {ident}")


@app.command()
def whoami() -> None:
    """Who the token is: its role and tenant."""
    show(client().call("GET", "/v1/whoami"))


@app.command()
def trace(
    port: Annotated[str, typer.Option(help="the port the packet enters")],
    dst: Annotated[str, typer.Option(help="destination IP address")],
    src: Annotated[str | None, typer.Option(help="source IP (default: the port's)")] = None,
    proto: Annotated[str, typer.Option(help="icmp, tcp or udp")] = "icmp",
    sport: Annotated[int | None, typer.Option(help="source port")] = None,
    dport: Annotated[int | None, typer.Option(help="destination port")] = None,
    ttl: Annotated[int | None, typer.Option(help="IP TTL")] = None,
    ct_state: Annotated[
        str | None,
        typer.Option(help="the connection state to assume: new, established or return"),
    ] = None,
) -> None:
    """Simulate a packet entering PORT, hop by hop, as an agent would."""
    body: dict[str, Any] = {"ingress_port_id": port, "ip_dst": dst, "protocol": proto}
    for key, value in (("ip_src", src), ("src_port", sport), ("dst_port", dport),
                       ("ttl", ttl), ("ct_state", ct_state)):  # fmt: skip
        if value is not None:
            body[key] = value
    result = client().call("POST", "/v1/trace", body)
    if state.json:
        show(result)
        return
    table = Table("#", "where", "what happened")
    for n, step in enumerate(result["trace"], 1):
        where = f"{step['kind']} {step['name'] or step['id'] or ''}".strip()
        table.add_row(str(n), where, step["detail"])
    out.print(table)
    out.print(f"verdict: [bold]{result['verdict']}[/]")
    for action in result["actions"]:
        fields = ", ".join(f"{k}={v}" for k, v in action.items() if k != "type")
        out.print(f"  {action['type']}({fields})")


# -- servers ------------------------------------------------------------------------------


@app.command()
def api(
    store: Annotated[str, typer.Option(help="store URL")] = "sqlite:///var/lib/tenet/store.db",
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8740,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="development only")] = False,
    token_file: Annotated[Path, typer.Option(help="where a first admin token is written")] = Path(
        "/var/lib/tenet/admin-token"
    ),
) -> None:
    """Run the REST API server."""
    from tenet.api.server import serve

    try:
        serve(store, host, port, no_auth=no_auth, token_file=token_file)
    except TenetError as exc:  # a bad store URL, a store that cannot be reached
        raise CliError(f"tenet api: {exc}", 2) from exc


@app.command()
def agent(
    host_id: Annotated[uuid.UUID, typer.Option(help="this host's id")],
    store: Annotated[str, typer.Option(help="store URL, e.g. sqlite:///var/lib/tenet/store.db")],
    underlay: Annotated[str, typer.Option(help="this host's tunnel address")],
    vxlan_port: Annotated[int, typer.Option(help="VXLAN UDP port")] = 4789,
    datapath: Annotated[
        str, typer.Option(help="kernel (tc eBPF), userspace (Python), or auto")
    ] = "auto",
    state_file: Annotated[
        str,
        typer.Option(
            help="where tracked connections are kept across a restart ('' for nowhere); "
            "default /var/lib/tenet/flowstate-<host-id>"
        ),
    ] = "-",
    ct_timeout: Annotated[
        list[str] | None,
        typer.Option(
            help="a connection lifetime in seconds, NAME=SECONDS (repeatable); names: "
            "tcp_syn (60), tcp_established (7200), tcp_closing (10), udp (60), "
            "icmp (30), other (60)"
        ),
    ] = None,
    metrics_address: Annotated[
        str,
        typer.Option(
            help="serve Prometheus metrics at http://HOST:PORT/metrics (e.g. "
            "127.0.0.1:9741); off when empty"
        ),
    ] = "",
) -> None:
    """Run the per-host agent."""
    from tenet.agent.daemon import DATAPATHS
    from tenet.agent.daemon import main as agent_main
    from tenet.agent.flowstate import Timeouts

    if datapath not in DATAPATHS:
        raise CliError(f"--datapath: must be one of {', '.join(DATAPATHS)}", 2)
    try:
        address = IPv4Address(underlay)
    except ValueError:
        raise CliError(f"--underlay: {underlay!r} is not an IPv4 address", 2) from None
    timeouts = _timeouts(Timeouts, ct_timeout or [])
    metrics = None
    if metrics_address:
        from tenet.errors import ValidationError
        from tenet.services.metrics import parse_address

        try:
            metrics = parse_address(metrics_address)
        except ValidationError as exc:
            raise CliError(f"--metrics-address: {exc.reason}", 2) from None
    path = Path(f"/var/lib/tenet/flowstate-{host_id}") if state_file == "-" else None
    if state_file not in ("-", ""):
        path = Path(state_file)
    try:
        code = agent_main(
            host_id,
            store,
            address,
            vxlan_port,
            datapath=datapath,
            state_file=path,
            ct_timeouts=timeouts,
            metrics_address=metrics,
        )
    except (TenetError, OSError) as exc:  # bad input or an address not on this host
        raise CliError(f"tenet agent: {exc}", 2) from exc
    raise typer.Exit(code)


def _timeouts(kind: Any, items: list[str]) -> Any:
    """``Timeouts`` with the ``NAME=SECONDS`` items applied; a bad one is a usage error
    naming it."""
    names = {f.name for f in dataclasses.fields(kind)}
    values: dict[str, float] = {}
    for item in items:
        name, _, seconds = item.partition("=")
        if name not in names:
            raise CliError(f"--ct-timeout: {name!r} is not one of {', '.join(sorted(names))}", 2)
        try:
            values[name] = float(seconds)
        except ValueError:
            raise CliError(f"--ct-timeout: {name}: {seconds!r} is not a number", 2) from None
        if values[name] <= 0:
            raise CliError(f"--ct-timeout: {name}: must be above 0 seconds", 2)
    return kind(**values)


@app.command()
def demo(
    check: Annotated[
        bool,
        typer.Option("--check", help="run the checks, clean up and exit (non-zero on failure)"),
    ] = False,
    store: Annotated[
        str, typer.Option(help="sqlite (one file) or etcd (a three-member cluster)")
    ] = "sqlite",
) -> None:
    """tenet's main job: agents, an API and two tenants on this machine, with real traffic."""
    from tenet.cli.demo import STORES, run

    if store not in STORES:
        raise CliError(f"--store: must be one of {', '.join(STORES)}", 2)
    raise typer.Exit(run(check=check, store=store))


def main(argv: list[str] | None = None) -> int:
    """The ``tenet`` command; returns its exit status."""
    try:
        code = app(args=argv, prog_name="tenet", standalone_mode=False)
    except CliError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return exc.code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        return 1
    except typer.TyperException as exc:  # a usage error: the command line was wrong
        show_error = getattr(exc, "show", None)
        if callable(show_error):
            show_error()
        else:
            err.print(f"error: {exc}", highlight=False)
        return int(getattr(exc, "exit_code", 2))
    finally:
        if state.client is not None:
            state.client.close()
            state.client = None
    return code if isinstance(code, int) else 0  # typer.Exit(n) comes back as n


if __name__ == "__main__":
    sys.exit(main())
