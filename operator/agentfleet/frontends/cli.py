"""The user commands of `agentfleet`: spawn, import, list, inspect, scale and delete agents,
read the GPU ledger and nodes, and serve the HTTP API (also as the kubectl plugin
`kubectl agentfleet`). agentfleet/main.py adds the operator's and node agent's commands.

The user commands only create, read, scale and delete AIAgents (and read Pods for logs, Nodes
for inventory), so they always agree with kubectl, Helm and Argo CD.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiohttp
import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentfleet.api import constants as c
from agentfleet.api import quantity
from agentfleet.frontends import importers
from agentfleet.frontends.fleet import (
    Fleet,
    NodeView,
    NoLogs,
    Readiness,
    age,
    condition,
    connect,
    context_names,
    human_age,
    without_managed_fields,
)
from agentfleet.frontends.importers import InvalidFile, InvalidSpec
from agentfleet.kube.client import ApiError, ConfigError, Target
from agentfleet.placement import GPURow

app = typer.Typer(
    help="agentfleet: AI agents as Kubernetes-native AIAgent resources.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# --- user commands: thin front ends over AIAgents ----------------------------------------------


class ExitCode(IntEnum):
    """Exit codes a script can rely on, each with what it means (`agentfleet --help` lists
    them): ERROR is cannot connect or the API server refused; USAGE a bad flag, spec or import
    file, refused locally or by the API server's validation."""

    meaning: str

    def __new__(cls, code: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    OK = 0, "ok"
    ERROR = 1, "error"
    USAGE = 2, "usage or invalid input (nothing created)"
    NOT_FOUND = 3, "not found"
    NOT_READY = 4, "not ready (timed out, Stalled or cannot be placed)"
    ALREADY_EXISTS = 5, "already exists"


EXIT_CODES_HELP = f"Exit codes: {', '.join(f'{code} {code.meaning}' for code in ExitCode)}."
app.info.epilog = EXIT_CODES_HELP

out = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

KubeconfigOption = typer.Option(
    None, "--kubeconfig", help="Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)."
)
ContextOption = typer.Option(None, "--context", help="The kubeconfig context to use.")
NamespaceOption = typer.Option(
    None, "--namespace", "-n", help="Namespace (default: the context's, else default)."
)

# Which spawn flag sets which part of the spec, to name the flag at fault.
SPAWN_FLAGS = {
    "spec.agentType": "--type",
    "spec.image": "--image",
    "spec.resources": "--cpu/--mem",
    "spec.gpu": "--gpu/--vram",
    "spec.env": "--env",
    "spec.replicas": "--replicas",
    "spec.autoscaling": "--min/--max",
    "spec.runtimeClassName": "--runtime",
    "name": "NAME",
}


class Stop(Exception):
    """End the command with this exit code and message (printed on stderr)."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


T = TypeVar("T")


async def _session(work: Callable[[Fleet], Awaitable[T]], target: Target) -> T:
    fleet = await connect(target)
    async with fleet:
        return await work(fleet)


def _failure(error: BaseException) -> tuple[ExitCode, str] | None:
    """The exit code and message for a failure talking to a cluster; None: not one of those."""
    if isinstance(error, Stop):
        return error.code, error.message
    if isinstance(error, ApiError):
        if error.unreachable:  # aiohttp's own words say best what went wrong
            detail = str(error.__cause__ or "") or error.message
            return ExitCode.ERROR, f"cannot reach the Kubernetes API server: {detail}"
        code = ExitCode.ERROR
        if error.not_found:
            code = ExitCode.NOT_FOUND
        elif error.already_exists:
            code = ExitCode.ALREADY_EXISTS
        elif error.invalid:
            code = ExitCode.USAGE
        return code, f"Error from server ({error.reason or error.status}): {error.message}"
    if isinstance(error, NoLogs):
        return ExitCode.ERROR, str(error)
    if isinstance(error, ConfigError):
        return ExitCode.ERROR, f"cannot use the kubeconfig: {error}"
    if isinstance(error, aiohttp.ClientError | OSError):
        return ExitCode.ERROR, f"cannot reach the Kubernetes API server: {error}"
    return None


def _run(work: Callable[[Fleet], Awaitable[T]], target: Target) -> T:
    """Connect, do the work, and turn every failure into a message and an exit code."""
    try:
        return asyncio.run(_session(work, target))
    except (Stop, ApiError, NoLogs, ConfigError, aiohttp.ClientError, OSError) as error:
        failure = _failure(error)
        assert failure is not None
        _fail(*failure)


ContextsOption = typer.Option(
    None, "--context", help="A kubeconfig context to use; repeat it for one view of several."
)
AllContextsOption = typer.Option(
    False, "--all-contexts", help="Every context of the kubeconfig (a CLUSTER column)."
)


def _targets(
    kubeconfig: str | None,
    contexts: list[str] | None,
    all_contexts: bool,
    namespace: str | None = None,
) -> list[Target]:
    """One Target per cluster asked for: the contexts named, every context of the kubeconfig,
    or (neither) the current one."""
    if all_contexts and contexts:
        _fail(ExitCode.USAGE, "use --context or --all-contexts, not both")
    if all_contexts:
        try:
            contexts = context_names(Target(kubeconfig))
        except ConfigError as error:
            _fail(ExitCode.ERROR, f"cannot use the kubeconfig: {error}")
        if not contexts:
            _fail(ExitCode.ERROR, "the kubeconfig has no contexts")
    names: list[str | None] = list(dict.fromkeys(contexts or [])) or [None]
    return [Target(kubeconfig, name, namespace) for name in names]


def _run_each(
    work: Callable[[Fleet], Awaitable[T]], targets: list[Target]
) -> tuple[list[tuple[str, T]], bool]:
    """The work in every cluster at once: (context, result) of the clusters that answered,
    and whether any did not. A cluster that cannot be reached is a warning naming its
    context; the others are still shown. One cluster alone fails as `_run` does."""
    if len(targets) == 1:
        return [(targets[0].context or "", _run(work, targets[0]))], False

    async def everywhere() -> list[T | BaseException]:
        return await asyncio.gather(
            *(_session(work, target) for target in targets), return_exceptions=True
        )

    answered: list[tuple[str, T]] = []
    failed = False
    for target, result in zip(targets, asyncio.run(everywhere()), strict=True):
        if isinstance(result, BaseException):
            failure = _failure(result)
            if failure is None:
                raise result
            _warn(f"context {target.context}: {failure[1]}")
            failed = True
        else:
            answered.append((target.context or "", result))
    return answered, failed


def _fail(code: ExitCode, message: str) -> NoReturn:
    err.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(int(code))


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


def _ref(name: str) -> str:
    return f"{c.SINGULAR}.{c.GROUP}/{name}"


def _print_document(obj: Any, output: str) -> None:
    if output == "json":
        out.print_json(json.dumps(obj), indent=2)
    else:
        typer.echo(yaml.safe_dump(obj, sort_keys=False), nl=False)


class _Progress:
    """Live progress on a terminal (a spinner with the latest message); one line per change
    elsewhere, so logs and CI show how an agent came up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.last = ""
        self.status = err.status(f"waiting for {name}") if err.is_terminal else None

    def __enter__(self) -> _Progress:
        if self.status:
            self.status.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.status:
            self.status.stop()

    def __call__(self, state: Readiness) -> None:
        text = f"{self.name}: {state.message}"
        if text == self.last:
            return
        self.last = text
        if self.status:
            self.status.update(escape(text))
        else:
            err.print(escape(text))


async def _await_ready(fleet: Fleet, name: str, within: float) -> dict[str, Any]:
    """Wait for Ready; exit 4 with the failing condition's message, or what it waits on."""
    with _Progress(name) as progress:
        state = await fleet.wait_ready(name, within, progress=progress)
    if state.state == "failed":
        raise Stop(
            ExitCode.NOT_READY, f"{name} cannot become Ready ({state.reason}): {state.message}"
        )
    if state.state == "waiting":
        raise Stop(
            ExitCode.NOT_READY, f"timed out after {within:g} s waiting for {name}: {state.message}"
        )
    agent = await fleet.get(name)
    endpoint = (agent.get("status") or {}).get("endpoints", {}).get("http", "")
    err.print(f"[green]{escape(name)} is Ready[/]: {escape(state.message)}")
    if endpoint:
        err.print(f"  endpoint: http://{escape(endpoint)}")
    return agent


async def _create(fleet: Fleet, body: dict[str, Any], wait: bool, within: float) -> None:
    await fleet.create(body)
    typer.echo(f"{_ref(body['metadata']['name'])} created")
    if wait:
        await _await_ready(fleet, body["metadata"]["name"], within)


def _spec_error(error: InvalidSpec, flags: dict[str, str]) -> NoReturn:
    flag = next((f for prefix, f in flags.items() if error.field.startswith(prefix)), None)
    where = f"{flag} ({error.field})" if flag and flag != error.field else error.field
    _fail(ExitCode.USAGE, f"invalid {where}: {error.message}")


@app.command(epilog=EXIT_CODES_HELP)
def spawn(
    name: str = typer.Argument(..., help="Agent name (a DNS label: it names the Service)."),
    image: str = typer.Option(
        ..., "--image", "--image-ref", help="Container image (Hypercore: --image-ref)."
    ),
    agent_type: str = typer.Option(
        "custom",
        "--type",
        help="orchestrator, coding, testing, security, compliance, "
        "documentation, discovery or custom.",
    ),
    cpu: str | None = typer.Option(None, help="CPU request, e.g. 2 or 500m."),
    mem: str | None = typer.Option(
        None, help="Memory request and limit; a bare number is MiB as in Hypercore (2048)."
    ),
    gpu: int | None = typer.Option(None, help="GPUs per replica."),
    vram: str | None = typer.Option(
        None, help="VRAM needed on each GPU; a bare number is GiB (24 = 24Gi)."
    ),
    port: list[str] = typer.Option(
        [],
        "--port",
        "--ports",
        help="Hypercore port mapping (8080:8080); agents always "
        "serve 8080 http, 9090 grpc, 9091 metrics, 8081 health.",
    ),
    env: list[str] = typer.Option([], "--env", "-e", help="NAME=VALUE, repeatable."),
    replicas: int | None = typer.Option(None, help="Fixed replica count (default 1)."),
    min_replicas: int | None = typer.Option(None, "--min", help="Autoscaling minimum."),
    max_replicas: int | None = typer.Option(None, "--max", help="Autoscaling maximum."),
    runtime: str | None = typer.Option(None, help="RuntimeClass, e.g. kata (microVM isolation)."),
    wait: bool = typer.Option(False, help="Wait until Ready, showing progress."),
    timeout: float = typer.Option(300, help="Seconds --wait waits."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the AIAgent; create nothing."),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Create an AIAgent from Hypercore-style flags."""
    try:
        options = importers.SpawnOptions(
            image=image,
            agent_type=agent_type,
            cpu=importers.cpu(cpu, "--cpu") if cpu is not None else None,
            memory=importers.memory(mem, "--mem") if mem is not None else None,
            gpu=gpu,
            vram=importers.vram(vram, "--vram") if vram is not None else None,
            env=importers.env_list(env, "--env"),
            replicas=replicas,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            runtime_class=runtime,
        )
        for warning in importers.port_warnings(port, name, "--port"):
            _warn(warning)
        spec = importers.spawn_spec(options)
        body = importers.agent_body(name, namespace or "", spec)
    except InvalidSpec as error:
        _spec_error(error, SPAWN_FLAGS)
    target = Target(kubeconfig, context, namespace)
    if dry_run:
        body["metadata"]["namespace"] = namespace or "default"
        _print_document(body, "yaml")
        return

    async def work(fleet: Fleet) -> None:
        body["metadata"]["namespace"] = fleet.namespace
        await _create(fleet, body, wait, timeout)

    _run(work, target)


@app.command("import", epilog=EXIT_CODES_HELP)
def import_(
    file: Path = typer.Argument(..., help="A Hypercore hac.toml or a deploy-agent service.yaml."),
    name: str | None = typer.Option(None, help="Agent name (default: from the file)."),
    agent_type: str = typer.Option("custom", "--type", help="The agent type."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the AIAgent; create nothing."),
    wait: bool = typer.Option(False, help="Wait until Ready, showing progress."),
    timeout: float | None = typer.Option(
        None, help="Seconds --wait waits (default: the file's ready_timeout, else 300)."
    ),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Create an AIAgent from a Hypercore hac.toml or a deploy-agent service.yaml.

    Fields with no meaning on Kubernetes are named in warnings; --dry-run prints the AIAgent."""
    try:
        imported = importers.load(file, namespace or "default", name, agent_type)
    except (InvalidFile, InvalidSpec) as error:
        _fail(ExitCode.USAGE, str(error))
    for warning in imported.warnings:
        _warn(warning)
    if dry_run:
        _print_document(imported.body, "yaml")
        return
    within = timeout or imported.ready_timeout or 300

    async def work(fleet: Fleet) -> None:
        imported.body["metadata"]["namespace"] = fleet.namespace
        await _create(fleet, imported.body, wait, within)

    _run(work, Target(kubeconfig, context, namespace))


def _agent_row(agent: dict[str, Any], wide: bool, all_namespaces: bool) -> list[str]:
    meta, spec = agent["metadata"], agent.get("spec") or {}
    status = agent.get("status") or {}
    ready = condition(agent, c.COND_READY) or {}
    ready_text = {"True": "[green]True[/]", "False": "[red]False[/]"}.get(
        ready.get("status", ""), "-"
    )
    replicas = f"{status.get('availableReplicas', 0)}/{spec.get('replicas', 1)}"
    row = [
        escape(meta["name"]),
        spec.get("agentType", ""),
        ready_text,
        replicas,
        escape((status.get("placement") or {}).get("summary", "-")),
        str((spec.get("gpu") or {}).get("vram") or "-"),
        escape((status.get("endpoints") or {}).get("http", "-")),
        human_age(age(meta.get("creationTimestamp"))),
    ]
    if all_namespaces:
        row.insert(0, meta.get("namespace", ""))
    if wide:
        row += [escape(ready.get("reason", "")), escape(ready.get("message", ""))]
    return row


def _agent_table(
    agents: list[tuple[str, dict[str, Any]]], wide: bool, all_namespaces: bool, clusters: bool
) -> Table:
    """(context, agent) rows; `clusters` adds the CLUSTER column (the context)."""
    columns = ["NAME", "TYPE", "READY", "AVAILABLE", "NODE/GPU", "VRAM", "ENDPOINT", "AGE"]
    if all_namespaces:
        columns.insert(0, "NAMESPACE")
    if clusters:
        columns.insert(0, "CLUSTER")
    if wide:
        columns += ["REASON", "MESSAGE"]
    table = _table(*columns)
    for context, agent in agents:
        row = _agent_row(agent, wide, all_namespaces)
        table.add_row(*([escape(context)] if clusters else []), *row)
    return table


def _table(*columns: str) -> Table:
    """kubectl's look: no borders, upper-case headers, columns never wrapped."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


def _print_table(table: Table) -> None:
    """On a terminal as rich draws it; elsewhere plain text without trailing blanks."""
    if out.is_terminal:
        out.print(table)
        return
    with out.capture() as captured:
        out.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


OutputOption = typer.Option("", "--output", "-o", help="wide, json, yaml or name.")
# On each item of `list -o json|yaml` across several clusters: the context it came from.
CLUSTER_ANNOTATION = f"{c.GROUP}/cluster"


@app.command("list", epilog=EXIT_CODES_HELP)
def list_(
    output: str = OutputOption,
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A"),
    kubeconfig: str | None = KubeconfigOption,
    contexts: list[str] | None = ContextsOption,
    all_contexts: bool = AllContextsOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """List agents: type, readiness, replicas, placement, VRAM, endpoint, age. Several
    --context (or --all-contexts) list every cluster's agents, with a CLUSTER column."""
    _check_output(output, ("", "wide", "json", "yaml", "name"))

    async def work(fleet: Fleet) -> list[dict[str, Any]]:
        return await fleet.list_agents(all_namespaces=all_namespaces)

    targets = _targets(kubeconfig, contexts, all_contexts, namespace)
    clusters = len(targets) > 1
    answered, failed = _run_each(work, targets)
    agents = [(context, agent) for context, found in answered for agent in found]
    if output in ("json", "yaml"):
        items = [_in_cluster(without_managed_fields(a), ctx, clusters) for ctx, a in agents]
        _print_document({"apiVersion": "v1", "kind": "List", "items": items}, output)
    elif output == "name":
        for context, agent in agents:
            ref = _ref(agent["metadata"]["name"])
            typer.echo(f"{context}/{ref}" if clusters else ref)
    elif not agents:
        err.print("No agents found.")
    else:
        _print_table(_agent_table(agents, output == "wide", all_namespaces, clusters))
    if failed:
        raise typer.Exit(int(ExitCode.ERROR))


def _in_cluster(agent: dict[str, Any], context: str, clusters: bool) -> dict[str, Any]:
    """With several clusters, each item says whose it is (an annotation, so the item stays
    an AIAgent kubectl can read)."""
    if clusters:
        annotations = agent.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[CLUSTER_ANNOTATION] = context
    return agent


def _check_output(output: str, allowed: tuple[str, ...]) -> None:
    if output not in allowed:
        choices = ", ".join(a for a in allowed if a)
        _fail(ExitCode.USAGE, f"unknown output format {output!r}: use one of {choices}")


@app.command(epilog=EXIT_CODES_HELP)
def get(
    name: str = typer.Argument(...),
    output: str = typer.Option("", "--output", "-o", help="yaml, json or wide."),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Show one agent: a summary with its conditions, or the whole object (-o yaml|json)."""
    _check_output(output, ("", "wide", "json", "yaml"))

    async def work(fleet: Fleet) -> dict[str, Any]:
        return await fleet.get(name)

    agent = _run(work, Target(kubeconfig, context, namespace))
    if output in ("json", "yaml"):
        _print_document(without_managed_fields(agent), output)
        return
    _print_table(_agent_table([("", agent)], output == "wide", False, False))
    conditions = (agent.get("status") or {}).get("conditions") or []
    if conditions:
        out.print()
        table = _table("CONDITION", "STATUS", "REASON", "AGE", "MESSAGE")
        for cond in conditions:
            table.add_row(
                cond["type"],
                cond["status"],
                escape(cond.get("reason", "")),
                human_age(age(cond.get("lastTransitionTime"))),
                escape(cond.get("message", "")),
            )
        _print_table(table)


@app.command(epilog=EXIT_CODES_HELP)
def logs(
    name: str = typer.Argument(...),
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream new lines."),
    replica: int = typer.Option(0, help="Which replica (0 = the oldest Pod)."),
    all_replicas: bool = typer.Option(False, "--all", help="Every replica, lines prefixed."),
    tail: int | None = typer.Option(None, help="Only the last N lines of each Pod."),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Print an agent's logs (its Pods' `agent` container, through the API server)."""

    async def work(fleet: Fleet) -> None:
        await fleet.get(name)  # not found -> exit 3
        pods = await fleet.agent_pods(name)
        if not pods:
            raise Stop(ExitCode.NOT_FOUND, f"agent {name} has no Pods yet")
        if all_replicas:
            chosen = pods
        elif 0 <= replica < len(pods):
            chosen = [pods[replica]]
        else:
            raise Stop(
                ExitCode.NOT_FOUND,
                f"agent {name} has {len(pods)} replica(s): --replica must be 0..{len(pods) - 1}",
            )
        results = await asyncio.gather(
            *(_print_pod_logs(fleet, pod, follow, tail, all_replicas) for pod in chosen),
            return_exceptions=True,
        )
        problems = [r for r in results if isinstance(r, BaseException)]
        for problem in problems:
            if not isinstance(problem, NoLogs | ApiError):
                raise problem
        if problems:
            messages = [str(p) if isinstance(p, NoLogs) else p.message for p in problems]  # type: ignore[attr-defined]
            raise Stop(ExitCode.ERROR, "\n".join(messages))

    _run(work, Target(kubeconfig, context, namespace))


async def _print_pod_logs(
    fleet: Fleet, pod: dict[str, Any], follow: bool, tail: int | None, prefixed: bool
) -> None:
    prefix = f"[{pod['metadata']['name']}] " if prefixed else ""
    async for line in fleet.pod_logs(pod, follow=follow, tail=tail):
        typer.echo(prefix + line)


@app.command(epilog=EXIT_CODES_HELP)
def delete(
    name: str = typer.Argument(...),
    wait: bool = typer.Option(
        False, help="Wait until the agent and its Deployment and Service are gone."
    ),
    timeout: float = typer.Option(120, help="Seconds --wait waits."),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Delete an agent; Kubernetes garbage-collects its children."""

    async def work(fleet: Fleet) -> None:
        await fleet.delete(name, cascade="Foreground" if wait else "Background")
        typer.echo(f"{_ref(name)} deleted")
        if wait and not await fleet.wait_deleted(name, timeout):
            raise Stop(
                ExitCode.NOT_READY, f"timed out after {timeout:g} s waiting for {name} to go"
            )

    _run(work, Target(kubeconfig, context, namespace))


@app.command(epilog=EXIT_CODES_HELP)
def scale(
    name: str = typer.Argument(...),
    replicas: int = typer.Argument(..., min=0, help="The new replica count."),
    wait: bool = typer.Option(False, help="Wait until Ready at the new size."),
    timeout: float = typer.Option(300, help="Seconds --wait waits."),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Set an agent's replicas through the scale subresource (as `kubectl scale`)."""

    async def work(fleet: Fleet) -> None:
        agent = await fleet.get(name)
        if ((agent.get("spec") or {}).get("autoscaling") or {}).get("enabled"):
            _warn(f"{name} has autoscaling enabled: its autoscaler decides the replica count")
        await fleet.scale(name, replicas)
        typer.echo(f"{_ref(name)} scaled to {replicas}")
        if wait:
            await _await_ready(fleet, name, timeout)

    _run(work, Target(kubeconfig, context, namespace))


@app.command(epilog=EXIT_CODES_HELP)
def nodes(
    output: str = typer.Option("", "--output", "-o", help="wide, json or yaml."),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Nodes with their capabilities (CPU, memory, GPUs) and the node agent's heartbeat."""
    _check_output(output, ("", "wide", "json", "yaml"))

    async def work(fleet: Fleet) -> list[NodeView]:
        return await fleet.node_views()

    views = _run(work, Target(kubeconfig, context, None))
    if output in ("json", "yaml"):
        _print_document([dataclasses.asdict(v) for v in views], output)
        return
    columns = ["NAME", "READY", "CPU", "MEMORY", "GPUS", "HEARTBEAT", "PLACEMENT"]
    if output == "wide":
        columns += ["ADDRESS", "OS/ARCH", "SIMULATED", "AGENT LABELS"]
    table = _table(*columns)
    for view in views:
        ready = {"True": "[green]True[/]", "False": "[red]False[/]"}.get(view.ready, view.ready)
        row = [
            view.name,
            ready,
            view.cpu,
            quantity.format_gib(view.memory_mib),
            escape(view.gpu_summary),
            human_age(view.heartbeat_age),
            escape(view.placement),
        ]
        if output == "wide":
            labels = ",".join(f"{k.split('/', 1)[1]}={v}" for k, v in view.labels.items())
            row += [
                view.address or "-",
                f"{view.os}/{view.arch}",
                "yes" if view.simulated else "no",
                escape(labels or "-"),
            ]
        table.add_row(*row)
    _print_table(table)


@app.command(epilog=EXIT_CODES_HELP)
def gpus(
    output: str = typer.Option("", "--output", "-o", help="json or yaml."),
    kubeconfig: str | None = KubeconfigOption,
    contexts: list[str] | None = ContextsOption,
    all_contexts: bool = AllContextsOption,
) -> None:
    """Every GPU per node: VRAM total, committed and free, and the agents on it. Several
    --context (or --all-contexts) show every cluster's GPUs, with a CLUSTER column.

    Read from the placement ledger, rebuilt from the Pods' placement annotations."""
    _check_output(output, ("", "json", "yaml"))

    async def work(fleet: Fleet) -> list[GPURow]:
        return await fleet.gpu_table()

    targets = _targets(kubeconfig, contexts, all_contexts)
    clusters = len(targets) > 1
    answered, failed = _run_each(work, targets)
    rows = [(context, row) for context, found in answered for row in found]
    if output:
        documents = [
            {**({"cluster": context} if clusters else {}), **dataclasses.asdict(row)}
            for context, row in rows
        ]
        _print_document(documents, output)
    elif not rows:
        err.print("No GPUs found.")
    else:
        columns = ["NODE", "GPU", "PRODUCT", "SHARING", "TOTAL", "COMMITTED", "FREE", "AGENTS"]
        table = _table(*(["CLUSTER"] if clusters else []), *columns, "STATE")
        for context, row in rows:
            table.add_row(
                *([escape(context)] if clusters else []),
                row.node,
                str(row.index),
                escape(row.product or "-"),
                row.sharing,
                quantity.format_gib(row.total_mib),
                quantity.format_gib(row.committed_mib),
                quantity.format_gib(row.free_mib),
                escape(",".join(row.agents) or "-"),
                escape(row.state),
            )
        _print_table(table)
    if failed:
        raise typer.Exit(int(ExitCode.ERROR))


@app.command()
def api(
    host: str = typer.Option("127.0.0.1", help="Bind address (HTTP and gRPC)."),
    port: int = typer.Option(9000, help="HTTP port (the deploy agent's is 9000)."),
    grpc_port: int = typer.Option(
        50051,
        help="gRPC port of the compute agent's control API (the compute agent's is 50051); "
        "0: no gRPC server.",
    ),
    tls_cert_file: Path | None = typer.Option(
        None, help="Serving certificate (PEM), for HTTPS and gRPC. Required unless --insecure."
    ),
    tls_private_key_file: Path | None = typer.Option(
        None, help="Its private key (PEM). Required unless --insecure."
    ),
    client_ca_file: Path | None = typer.Option(
        None,
        help="CA bundle (PEM) that signs gRPC client certificates (mutual TLS: CN = user, "
        "O = groups, as Kubernetes reads them). Required for gRPC unless --insecure.",
    ),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Plain HTTP and plaintext gRPC, for local use only: tokens travel in the clear.",
    ),
    token_audience: str = typer.Option(
        "agentfleet-api",
        help="Bearer tokens must be issued for this audience (kubectl create token SA "
        "--audience agentfleet-api); '': tokens for the API server itself (weaker: a token "
        "sent here could be replayed to the API server).",
    ),
    max_wait: float = typer.Option(
        600, help="Longest a POST /deploy waits for Ready, whatever its ready_timeout."
    ),
    max_body_bytes: int = typer.Option(
        1024 * 1024, min=1024, help="Largest request body (HTTP) or message (gRPC) accepted."
    ),
    max_deploy_waits: int = typer.Option(
        64, min=1, help="POST /deploy in progress at once; more are answered 429 (Retry-After)."
    ),
    max_watches: int = typer.Option(
        64, min=1, help="gRPC WatchAgents streams open at once; more are RESOURCE_EXHAUSTED."
    ),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Namespace of HTTP requests that name none (?namespace=)."
    ),
) -> None:
    """Serve the deploy-agent-compatible HTTP API (and Hypercore's POST /spawn) and the compute
    agent's gRPC control API (agentfleet.v1.ComputeAgent), TLS by default."""
    tls_files = {
        "--tls-cert-file": tls_cert_file,
        "--tls-private-key-file": tls_private_key_file,
        **({"--client-ca-file": client_ca_file} if grpc_port else {}),
    }
    if not insecure:
        missing = [flag for flag, path in tls_files.items() if path is None]
        if missing:
            _fail(
                ExitCode.USAGE,
                f"{', '.join(missing)} required: the API serves TLS (mutual TLS on gRPC); "
                "--insecure serves plain HTTP and plaintext gRPC, for local use only",
            )
        unreadable = [f"{flag} {path}" for flag, path in tls_files.items() if not _readable(path)]
        if unreadable:
            _fail(ExitCode.USAGE, f"cannot read {', '.join(unreadable)}")
    elif host not in ("127.0.0.1", "::1", "localhost"):
        _warn(f"--insecure on {host}: bearer tokens and agent specs travel in the clear")
    # grpc and uvicorn only here: the operator (`agentfleet run`) never loads them.
    from agentfleet.frontends import serve
    from agentfleet.frontends.grpc.service import TLSFiles
    from agentfleet.frontends.http.app import ApiSettings

    tls = None
    if not insecure:
        tls = TLSFiles(str(tls_cert_file), str(tls_private_key_file), str(client_ca_file or ""))
    settings = ApiSettings(
        target=Target(kubeconfig, context, namespace),
        max_wait_seconds=max_wait,
        token_audience=token_audience,
        max_body_bytes=max_body_bytes,
        max_deploy_waits=max_deploy_waits,
    )
    listen = serve.Listen(host, port, grpc_port, tls, max_watches)
    asyncio.run(serve.serve(settings, listen))


@app.command()
def rpc(
    method: str = typer.Argument(
        ...,
        help="ApplyWorkload, DeleteWorkload, GetWorkloadStatus, ListWorkloads, "
        "HealthCheck or WatchAgents.",
    ),
    request: str = typer.Argument("{}", help="The request as JSON, in the proto's field names."),
    server: str = typer.Option("localhost:50051", help="host:port of `agentfleet api`'s gRPC."),
    cert: Path | None = typer.Option(None, help="Client certificate (PEM): CN = user, O = groups."),
    key: Path | None = typer.Option(None, help="Its private key (PEM)."),
    ca: Path | None = typer.Option(
        None, help="CA bundle (PEM) that signed the server's certificate."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Plaintext (a server started with --insecure)."
    ),
    token: str | None = typer.Option(
        None, envvar="AGENTFLEET_TOKEN", help="Bearer token, for --insecure (no certificate)."
    ),
    timeout: float = typer.Option(60, help="Seconds before the call is given up."),
) -> None:
    """Call the gRPC control API (agentfleet.v1.ComputeAgent) over mutual TLS, JSON in and out,
    like grpcurl; a stream (WatchAgents) prints one line per event."""
    import grpc

    from agentfleet.frontends.grpc import client

    if not insecure:
        files = {"--cert": cert, "--key": key, "--ca": ca}
        if not all(files.values()):
            _fail(ExitCode.USAGE, "--cert, --key and --ca are required (mutual TLS), or --insecure")
        unreadable = [f"{flag} {path}" for flag, path in files.items() if not _readable(path)]
        if unreadable:
            _fail(ExitCode.USAGE, f"cannot read {', '.join(unreadable)}")
    credentials = client.Credentials(
        None if insecure else cert, None if insecure else key, None if insecure else ca, token
    )
    try:
        message = client.request_of(method, request)
        for answer in client.call(server, method, message, credentials, timeout):
            out.print(answer, markup=False, soft_wrap=True)
    except client.BadRequest as error:
        _fail(ExitCode.USAGE, str(error))
    except grpc.RpcError as error:
        codes = {
            grpc.StatusCode.INVALID_ARGUMENT: ExitCode.USAGE,
            grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
        }
        status = error.code()
        _fail(codes.get(status, ExitCode.ERROR), f"{status.name}: {error.details()}")
    except KeyboardInterrupt:
        return


def _readable(path: Path | None) -> bool:
    try:
        return path is not None and path.is_file() and bool(path.read_bytes())
    except OSError:
        return False
