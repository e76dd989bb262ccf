"""Start and stop a real single-machine Kubernetes control plane as local processes.

etcd, kube-apiserver, kube-controller-manager (garbage collection, Deployments, HPA),
kube-scheduler and kwok (simulated nodes whose Pods become Ready), all on loopback with
free ports, all data in one directory. On request also KEDA's operator and a fake
Prometheus for its prometheus scaler. `down` stops exactly the processes `up` started
(checked by pid *and* executable, so a recycled pid is never killed) and removes the data.

For fault tests one component at a time can be stopped (SIGTERM, or SIGKILL: a crash),
started again with exactly the command line, environment, ports and data it had, frozen
(SIGSTOP: its connections stay open and nothing answers) and thawed (SIGCONT).

The API server writes an audit log (`logs/audit.log`) of the writes made by ServiceAccounts
outside kube-system (the operators under test, never the control plane's own controllers),
so tests can count writes per client identity from the server's own record.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from agentfleet_dev import build
from agentfleet_dev.certs import PKI
from agentfleet_dev.fake_prometheus import write_values

Log = Callable[[str], None]
START_ORDER = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "prometheus",
    "keda",
)
SERVICE_CIDR = "10.96.0.0/16"
# Where KEDA keeps cluster-scoped objects' secrets (ClusterTriggerAuthentication) and
# believes it runs (POD_NAMESPACE), as in its Helm chart.
KEDA_NAMESPACE = "keda"
KEDA_PORTS = ("keda", "keda-metrics", "keda-metrics-service", "prometheus")
FAKE_PROMETHEUS_MODULE = "agentfleet_dev.fake_prometheus"
# What `stop|start|pause|resume` act on.
COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")
AUDIT_LOG = "logs/audit.log"  # kept by `down(keep_logs=True)`
# Metadata (who, what, when, the answer) of every write by a ServiceAccount that is not
# one of kube-system's (the controller-manager's controllers run as those), and the body of
# AIAgent status writes; nothing else.
AUDIT_POLICY: dict[str, object] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
        {  # with what was written: a status written twice is two identical bodies
            "level": "Request",
            "userGroups": ["system:serviceaccounts"],
            "verbs": ["patch", "update"],
            "resources": [{"group": "agentfleet.io", "resources": ["aiagents/status"]}],
        },
        {
            "level": "Metadata",
            "userGroups": ["system:serviceaccounts"],
            "verbs": ["create", "update", "patch", "delete", "deletecollection"],
        },
        {"level": "None"},
    ],
}


class ClusterError(RuntimeError):
    """The control plane could not be started; the message includes the failing log's tail."""


@dataclass(frozen=True)
class Process:
    """A process `up` started: its pid and the executable it must still be running (and for
    an interpreter, which any Python process shares, an argument it was started with), and
    how it was started (arguments, extra environment), so `start` can run it again."""

    pid: int
    binary: str
    argument: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return is_running(self.pid, self.binary) and (
            not self.argument or self.argument in _command_line(self.pid)
        )

    def paused(self) -> bool:
        """Stopped by SIGSTOP (state T in /proc/<pid>/stat)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return self.alive() and stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


@dataclass
class ClusterState:
    directory: str
    kubeconfig: str
    server: str
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    startup_seconds: float = 0.0
    # Set when KEDA runs: the fake Prometheus' base URL and its {query substring: value} file.
    prometheus_url: str = ""
    prometheus_values: str = ""

    @property
    def keda(self) -> bool:
        return "keda" in self.processes

    @classmethod
    def load(cls, directory: Path) -> ClusterState | None:
        path = directory / "state.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        raw["processes"] = {
            name: Process(**{**p, "args": tuple(p.get("args") or ())})
            for name, p in raw.get("processes", {}).items()
        }
        return cls(**raw)

    def save(self) -> None:
        (Path(self.directory) / "state.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def is_running(pid: int, binary: str) -> bool:
    """The pid is alive *and* still runs the binary we started (pids get recycled)."""
    try:
        return os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(binary)
    except OSError:
        return False


def _stop_process(process: Process, grace_seconds: float = 10.0) -> None:
    if not process.alive():
        return
    if process.paused():
        os.kill(process.pid, signal.SIGCONT)  # a frozen process cannot act on SIGTERM
    os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and process.alive():
        time.sleep(0.1)
    if process.alive():
        os.kill(process.pid, signal.SIGKILL)


class LocalCluster:
    def __init__(self, directory: Path, log: Log = print) -> None:
        self.dir = directory.resolve()
        self.log = log
        self.pki = PKI(self.dir / "pki")
        self.kubeconfig = self.dir / "kubeconfig"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def state(self) -> ClusterState | None:
        return ClusterState.load(self.dir)

    def is_up(self) -> bool:
        state = self.state()
        if state is None:
            return False
        return all(p.alive() for p in state.processes.values())

    def up(
        self, nodes: Iterable[Path] = (), upstream_crds: bool = True, keda: bool = False
    ) -> ClusterState:
        """Start everything and wait until it is usable. `keda=True` also runs KEDA's operator
        and the fake Prometheus (added to an already running cluster that lacks them)."""
        if keda and not upstream_crds:
            raise ValueError("KEDA's operator needs KEDA's CRDs: keda=True needs upstream_crds")
        if self.is_up():
            state = self.state()
            assert state is not None
            if keda and not state.keda:
                self._add_keda(state)
            self.log(f"cluster already running; KUBECONFIG={state.kubeconfig}")
            return state
        self.down()  # clear a half-dead previous run
        tools = build.toolchain(self.log)
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        self.pki.create()
        names = (
            "etcd",
            "etcd-peer",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            *(KEDA_PORTS if keda else ()),
        )
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        state = ClusterState(
            directory=str(self.dir),
            kubeconfig=str(self.kubeconfig),
            server=f"https://127.0.0.1:{ports['kube-apiserver']}",
            ports=ports,
        )
        try:
            self._start_etcd(tools, ports, state)
            self._start_apiserver(tools, ports, state)
            self._write_kubeconfig(state.server)
            self._start_controllers(tools, ports, state)
            self._apply_nodes(tools, list(nodes))
            if upstream_crds:
                self._install_upstream_crds(tools)
            if keda:
                self._start_keda(tools, ports, state)
            self._wait_settled(tools, has_nodes=bool(list(nodes)))
            if keda:
                self._wait_keda_healthy(ports)
        except BaseException:
            state.save()
            self.down(keep_logs=True)
            raise
        state.startup_seconds = round(time.monotonic() - started, 1)
        state.save()
        self.log(f"cluster up in {state.startup_seconds} s; export KUBECONFIG={self.kubeconfig}")
        return state

    def down(self, keep_logs: bool = False) -> None:
        state = self.state()
        if state:
            for name in reversed(START_ORDER):
                proc = state.processes.get(name)
                if proc:
                    _stop_process(proc)
        if not self.dir.exists():
            return
        if keep_logs:
            for child in self.dir.iterdir():
                if child.name not in ("logs", "state.json"):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(self.dir)

    # --- one component at a time (fault tests) ------------------------------------------------

    def _component(self, name: str) -> tuple[ClusterState, Process]:
        state = self.state()
        if state is None:
            raise ClusterError(f"no cluster in {self.dir}")
        if name not in state.processes:
            known = ", ".join(sorted(state.processes))
            raise ClusterError(f"{name} is not a process of this cluster (it has: {known})")
        return state, state.processes[name]

    def stop(self, name: str, kill: bool = False) -> None:
        """Stop one component: SIGTERM (its graceful shutdown), or with `kill` SIGKILL (a
        crash: no shutdown at all). Its data stays; `start` runs it again."""
        _, process = self._component(name)
        if not process.alive():
            return
        if kill:
            os.kill(process.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while process.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        else:
            _stop_process(process)
        self.log(f"{name} stopped ({'SIGKILL' if kill else 'SIGTERM'})")

    def start(self, name: str, wait: bool = True) -> None:
        """Start a stopped component again with the command line, environment, ports and
        data it had; with `wait`, until it answers (etcd and the API server: their health)."""
        state, process = self._component(name)
        if process.alive():
            raise ClusterError(f"{name} is already running (pid {process.pid})")
        if not process.args and name != "prometheus":
            raise ClusterError(f"{name} was started by an older version: restart the cluster")
        self._spawn(
            name,
            Path(process.binary),
            list(process.args),
            state,
            env=process.env or None,
            argument=process.argument,
        )
        if wait and name == "etcd":
            self._wait_etcd(state.ports)
        elif wait and name == "kube-apiserver":
            self._wait_apiserver(state.ports)
        self.log(f"{name} started again (pid {state.processes[name].pid})")

    def pause(self, name: str) -> None:
        """Freeze one component (SIGSTOP): its sockets stay open and nothing answers, as
        with a hung process or a half-open network path."""
        _, process = self._component(name)
        if not process.alive():
            raise ClusterError(f"{name} is not running")
        os.kill(process.pid, signal.SIGSTOP)
        self.log(f"{name} paused (SIGSTOP)")

    def resume(self, name: str) -> None:
        """Thaw a paused component (SIGCONT)."""
        _, process = self._component(name)
        if not process.alive():
            raise ClusterError(f"{name} is not running")
        os.kill(process.pid, signal.SIGCONT)
        self.log(f"{name} resumed (SIGCONT)")

    @property
    def audit_log(self) -> Path:
        return self.dir / AUDIT_LOG

    # --- processes ---------------------------------------------------------------------------

    def _spawn(
        self,
        name: str,
        binary: Path,
        args: list[str],
        state: ClusterState,
        env: dict[str, str] | None = None,
        argument: str = "",
    ) -> None:
        log_file = open(self.dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 (owned by the child)
        proc = subprocess.Popen(
            [str(binary), *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.dir,
            env={**os.environ, **env} if env else None,
        )
        log_file.close()
        self._procs[name] = proc
        state.processes[name] = Process(proc.pid, str(binary), argument, tuple(args), env or {})
        state.save()

    def _wait(
        self, what: str, check: Callable[[], bool], timeout: float, name: str | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name and self._procs[name].poll() is not None:
                raise ClusterError(
                    f"{name} exited with {self._procs[name].returncode} while waiting for "
                    f"{what}:\n{self.log_tail(name)}"
                )
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise ClusterError(
            f"timed out after {timeout:.0f} s waiting for {what}"
            + (f":\n{self.log_tail(name)}" if name else "")
        )

    def log_tail(self, name: str, lines: int = 25) -> str:
        path = self.dir / "logs" / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def _start_etcd(
        self, tools: build.Toolchain, ports: dict[str, int], state: ClusterState
    ) -> None:
        client = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['etcd-peer']}"
        self._spawn(
            "etcd",
            tools.bin["etcd"],
            [
                "--name=default",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",  # a throwaway test cluster: speed over durability
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
            state,
        )
        self._wait_etcd(ports)

    def _wait_etcd(self, ports: dict[str, int], timeout: float = 60) -> None:
        client = f"http://127.0.0.1:{ports['etcd']}"
        self._wait(
            "etcd health",
            lambda: (
                b'"health":"true"' in urllib.request.urlopen(f"{client}/health", timeout=2).read()
            ),
            timeout,
            "etcd",
        )

    def _start_apiserver(
        self, tools: build.Toolchain, ports: dict[str, int], state: ClusterState
    ) -> None:
        pki = self.pki.path
        self._spawn(
            "kube-apiserver",
            tools.bin["kube-apiserver"],
            [
                f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                f"--secure-port={ports['kube-apiserver']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--tls-cert-file={pki('apiserver.crt')}",
                f"--tls-private-key-file={pki('apiserver.key')}",
                f"--client-ca-file={pki('ca.crt')}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki('sa.pub')}",
                f"--service-account-signing-key-file={pki('sa.key')}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # The "kubernetes" Service cannot point at loopback; nothing in-cluster needs it.
                "--endpoint-reconciler-type=none",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                "--max-requests-inflight=800",
                "--max-mutating-requests-inflight=400",
                # PodTemplates (which nothing here uses) bypass the watch cache, so a test can
                # compact etcd under an informer's watch and get a real 410 Gone.
                "--watch-cache-sizes=podtemplates#0",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--audit-policy-file={self._write_manifest('audit-policy.yaml', AUDIT_POLICY)}",
                f"--audit-log-path={self.dir / AUDIT_LOG}",
                "--audit-log-format=json",
                "--audit-log-maxsize=200",
                "--audit-log-maxbackup=1",
                "--v=1",
            ],
            state,
        )
        self._wait_apiserver(ports)

    def _wait_apiserver(self, ports: dict[str, int], timeout: float = 90) -> None:
        context = self.admin_tls_context()
        url = f"https://127.0.0.1:{ports['kube-apiserver']}/readyz"
        self._wait(
            "kube-apiserver /readyz",
            lambda: urllib.request.urlopen(url, context=context, timeout=2).status == 200,
            timeout,
            "kube-apiserver",
        )

    def admin_tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.path("ca.crt")))
        context.load_cert_chain(str(self.pki.path("admin.crt")), str(self.pki.path("admin.key")))
        return context

    def _write_kubeconfig(self, server: str) -> None:
        def b64(name: str) -> str:
            return base64.b64encode(self.pki.path(name).read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "agentfleet-dev",
            "clusters": [
                {
                    "name": "agentfleet-dev",
                    "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")},
                }
            ],
            "users": [
                {
                    "name": "agentfleet-admin",
                    "user": {
                        "client-certificate-data": b64("admin.crt"),
                        "client-key-data": b64("admin.key"),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "agentfleet-dev",
                    "context": {
                        "cluster": "agentfleet-dev",
                        "user": "agentfleet-admin",
                        "namespace": "default",
                    },
                }
            ],
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _start_controllers(
        self, tools: build.Toolchain, ports: dict[str, int], state: ClusterState
    ) -> None:
        kubeconfig = str(self.kubeconfig)
        auth = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        self._spawn(
            "kube-controller-manager",
            tools.bin["kube-controller-manager"],
            [
                *auth,
                f"--secure-port={ports['kube-controller-manager']}",
                f"--cert-dir={self.dir / 'controller-manager-certs'}",
                f"--service-account-private-key-file={self.pki.path('sa.key')}",
                f"--root-ca-file={self.pki.path('ca.crt')}",
                "--use-service-account-credentials=true",
                "--controllers=*",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-gc-syncs=40",
                "--v=1",
            ],
            state,
        )
        self._spawn(
            "kube-scheduler",
            tools.bin["kube-scheduler"],
            [
                *auth,
                f"--secure-port={ports['kube-scheduler']}",
                f"--cert-dir={self.dir / 'scheduler-certs'}",
                "--v=1",
            ],
            state,
        )
        self._spawn(
            "kwok",
            tools.bin["kwok"],
            [
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--manage-nodes-with-label-selector=",
                "--cidr=10.0.0.1/16",
                "--node-ip=10.0.0.1",
                # Without leases the node controller marks every node NotReady after ~50 s.
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{ports['kwok']}",
                *(f"--config={stage}" for stage in tools.kwok_stages),
            ],
            state,
        )

    def _add_keda(self, state: ClusterState) -> None:
        """`up(keda=True)` on a cluster that runs without KEDA: start it there."""
        tools = build.toolchain(self.log)
        started = time.monotonic()
        ports = dict(zip(KEDA_PORTS, free_ports(len(KEDA_PORTS)), strict=True))
        state.ports.update(ports)
        self._start_keda(tools, ports, state)
        self._wait_keda_healthy(ports)
        state.save()
        self.log(f"KEDA added in {time.monotonic() - started:.1f} s")

    def _start_keda(
        self, tools: build.Toolchain, ports: dict[str, int], state: ClusterState
    ) -> None:
        """KEDA's operator as a local process, with the fake Prometheus its prometheus
        triggers can query. Only the operator: without KEDA's metrics adapter (an aggregated
        API the apiserver cannot reach on loopback) HPAs get no external metrics, but KEDA
        still reconciles ScaledObjects, owns their HPAs and polls its scalers (Ready/Active).

        It runs with the admin kubeconfig (system:masters) rather than its own ServiceAccount
        and ClusterRole: acceptable for a throwaway dev cluster, never for a real one."""
        values = self.dir / "prometheus-values.json"
        if not values.exists():
            write_values(values, {})
        self._spawn(
            "prometheus",
            Path(sys.executable),
            [
                "-m",
                FAKE_PROMETHEUS_MODULE,
                f"--port={ports['prometheus']}",
                f"--values={values}",
            ],
            state,
            argument=FAKE_PROMETHEUS_MODULE,
        )
        state.prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
        state.prometheus_values = str(values)
        state.save()

        self.kubectl(
            tools,
            "apply",
            "--server-side",
            "-f",
            str(self._write_manifest("keda-namespace.yaml", _namespace(KEDA_NAMESPACE))),
        )
        # The gRPC metrics service (for KEDA's metrics adapter) serves TLS from --cert-dir;
        # --ca-dir holds CAs scalers trust (the cluster's own, for a scaler behind TLS here).
        cert_dir = self.pki.serving_cert_dir(self.dir / "keda-certs", "keda-operator")
        ca_dir = self.dir / "keda-ca"
        ca_dir.mkdir(exist_ok=True)
        shutil.copyfile(self.pki.path("ca.crt"), ca_dir / "ca.crt")
        self._spawn(
            "keda",
            tools.bin["keda"],
            [
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--enable-cert-rotation=false",
                "--enable-webhook-patching=false",
                f"--cert-dir={cert_dir}",
                f"--ca-dir={ca_dir}",
                f"--metrics-bind-address=127.0.0.1:{ports['keda-metrics']}",
                f"--health-probe-bind-address=127.0.0.1:{ports['keda']}",
                f"--metrics-service-bind-address=127.0.0.1:{ports['keda-metrics-service']}",
            ],
            state,
            env={
                "KEDA_CLUSTER_OBJECT_NAMESPACE": KEDA_NAMESPACE,
                "POD_NAMESPACE": KEDA_NAMESPACE,
                "WATCH_NAMESPACE": "",  # all namespaces
            },
        )

    def _wait_keda_healthy(self, ports: dict[str, int]) -> None:
        prometheus = f"http://127.0.0.1:{ports['prometheus']}/-/ready"
        self._wait(
            "the fake Prometheus",
            lambda: urllib.request.urlopen(prometheus, timeout=2).status == 200,
            30,
            "prometheus",
        )
        health = f"http://127.0.0.1:{ports['keda']}/healthz"
        self._wait(
            "KEDA's health probe",
            lambda: urllib.request.urlopen(health, timeout=2).status == 200,
            90,
            "keda",
        )

    def _write_manifest(self, name: str, obj: dict[str, object]) -> Path:
        path = self.dir / name
        path.write_text(yaml.safe_dump(obj))
        return path

    # --- cluster contents --------------------------------------------------------------------

    def kubectl(self, tools: build.Toolchain, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run(
            [str(tools.bin["kubectl"]), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed:\n{proc.stderr.strip()}")
        return proc.stdout

    def _apply_nodes(self, tools: build.Toolchain, nodes: list[Path]) -> None:
        # `create`, not `apply`: a Node's status (capacity, GPUs) is only taken on creation.
        for path in nodes:
            self.kubectl(tools, "create", "-f", str(path))

    def _install_upstream_crds(self, tools: build.Toolchain) -> None:
        for source in sorted(p for p in tools.upstream_crds.iterdir() if p.is_dir()):
            self.kubectl(tools, "apply", "--server-side", "--force-conflicts", "-f", str(source))
        self.kubectl(tools, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

    def _wait_settled(self, tools: build.Toolchain, has_nodes: bool) -> None:
        """Usable means: the controller-manager creates ServiceAccounts and kwok nodes are Ready."""
        self._wait(
            "the default ServiceAccount (controller-manager up)",
            lambda: (
                "default"
                in self.kubectl(
                    tools, "get", "serviceaccount", "default", "-o", "name", "--ignore-not-found"
                )
            ),
            90,
            "kube-controller-manager",
        )
        if has_nodes:
            self.kubectl(
                tools,
                "wait",
                "--for=condition=Ready",
                "node",
                "--all",
                "--timeout=90s",
                timeout=100,
            )


def _namespace(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
