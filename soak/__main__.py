"""`python -m soak [--minutes 60]`: the soak on a fresh local control plane (or on the
cluster $KUBECONFIG points at), its table printed, its figures written as JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from soak.harness import SoakConfig, soak, table
from soak.kube import ROOT, Kubectl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="how long the churn runs")
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--agents-per-namespace", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.5, help="changes per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--json", type=Path, help="where to write the figures (default: soak/results/)"
    )
    parser.add_argument("--keep-cluster", action="store_true", help="leave the local cluster up")
    args = parser.parse_args(argv)
    cfg = SoakConfig(
        minutes=args.minutes,
        namespaces=args.namespaces,
        agents_per_namespace=args.agents_per_namespace,
        changes_per_second=args.rate,
        seed=args.seed,
        # A short soak still sees a few outages and a node joining and leaving.
        chaos_every_seconds=min(240.0, max(60.0, args.minutes * 60 / 6)),
        outage_seconds=min(75.0, max(40.0, args.minutes * 60 / 12)),
        pool_every_seconds=min(600.0, max(120.0, args.minutes * 60 / 4)),
        pool_life_seconds=min(300.0, max(60.0, args.minutes * 60 / 8)),
    )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    from agentfleet_dev import build
    from agentfleet_dev.cluster import LocalCluster

    tools = build.toolchain(log)
    output = ROOT / "_output" / "soak"
    output.mkdir(parents=True, exist_ok=True)
    local = None
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        local = LocalCluster(output / "cluster", log)
        state = local.up(nodes=sorted((ROOT / "tests/e2e/nodes").glob("*.yaml")), keda=True)
        kubeconfig = state.kubeconfig
    try:
        result = soak(kubeconfig, Kubectl(str(tools.bin["kubectl"]), kubeconfig), cfg, output, log)
    finally:
        if local is not None and not args.keep_cluster:
            local.down()
    meta = result["meta"]
    path = args.json or ROOT / "soak" / "results" / (
        f"soak-{meta['date'][:10]}-{meta['commit']}-{args.minutes:g}min.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"agentfleet soak: {args.minutes:g} min at {args.rate:g} changes/s, commit {meta['commit']}"
        f"{' (+ uncommitted changes)' if meta['uncommitted_changes'] else ''}, {meta['date']}, "
        f"{meta['machine']['cpus']} CPUs ({meta['machine']['cpu_model']})\n"
    )
    print(table(result))
    print(f"\nwritten to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0 if result["rss"]["flat"] and not result["after_churn"]["behind_count"] else 1


if __name__ == "__main__":
    sys.exit(main())
