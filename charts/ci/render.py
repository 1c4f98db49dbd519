#!/usr/bin/env python3
"""Lint and render the provgate chart for every scenario in charts/ci/scenarios.

Uses Helm's own Go library through helm-sdkpy (no helm binary). helm-sdkpy
offers lint, install and upgrade but no `helm template`, so rendering is a
real `helm install` (and, for scenarios with `upgrade:`, a `helm upgrade`)
against fakekube, a loopback stand-in for the Kubernetes API, with Helm's
in-memory release driver. That also exercises what `helm template` cannot:
`lookup` sees the objects an earlier install created.

Output (the directory is replaced):
  OUT/<scenario>.yaml           the manifest of the install
  OUT/<scenario>.upgrade.yaml   the manifest of the upgrade, if any
  OUT/index.json                scenarios, values, release, timings

Exit status 1 on any lint warning or error, or any failed render.

Scenario files are YAML: `values:` (overrides of the chart's values.yaml) and
optionally `upgrade:` (overrides applied on top of `values` for an upgrade).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Helm must keep releases in process memory (no release Secrets, which its
# client sends as protobuf, on the fake API) and leave the user's Helm
# directories alone. The Go runtime reads the environment the process started
# with, not later putenv()s, so set it and start again.
if os.environ.get("HELM_DRIVER") != "memory":
    scratch = tempfile.mkdtemp(prefix="provgate-helm-")
    env = dict(os.environ, HELM_DRIVER="memory", PROVGATE_HELM_SCRATCH=scratch)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = os.path.join(scratch, var.lower())
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
if os.environ.get("PROVGATE_HELM_SCRATCH"):
    import atexit

    atexit.register(shutil.rmtree, os.environ["PROVGATE_HELM_SCRATCH"], True)

import yaml  # noqa: E402
import helm_sdkpy as helm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakekube import FakeKube  # noqa: E402

RELEASE = "provgate"
NAMESPACE = "supplychain"
SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}


def coalesce(base, over):
    """Helm's values merge: maps merge, everything else replaces, null deletes."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = coalesce(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


async def lint(chart: Path, values: dict, kubeconfig: str) -> list[str]:
    """Lints a copy of the chart whose values.yaml holds the merged values
    (the library's Lint takes no values of its own). Returns problems."""
    with tempfile.TemporaryDirectory(prefix="provgate-lint-") as tmp:
        copy_dir = Path(tmp) / chart.name
        shutil.copytree(chart, copy_dir)
        merged = coalesce(yaml.safe_load((chart / "values.yaml").read_text()) or {}, values)
        (copy_dir / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
        cfg = helm.Configuration(namespace=NAMESPACE, kubeconfig=kubeconfig)
        result = await helm.Lint(cfg).run(str(copy_dir))
    problems = []
    for m in result.get("Messages") or []:
        sev = m.get("Severity", 0)
        if sev >= 2:
            # helm-sdkpy serialises the Go error as {}: only path and severity survive.
            problems.append(f"lint {SEVERITY.get(sev, sev)} in {m.get('Path') or '(chart)'} {m.get('Err') or ''}".rstrip())
    if result.get("Errors") and not problems:
        problems.append(f"lint reported {len(result['Errors'])} error(s)")
    return problems


async def render(chart: Path, scenario: dict, kubeconfig: str) -> tuple[str, str | None]:
    cfg = helm.Configuration(namespace=NAMESPACE, kubeconfig=kubeconfig)
    values = scenario.get("values") or {}
    installed = await helm.Install(cfg).run(
        RELEASE, str(chart), values=values or None, wait=False, timeout=60
    )
    upgraded = None
    if scenario.get("upgrade") is not None:
        up_values = coalesce(values, scenario["upgrade"])
        result = await helm.Upgrade(cfg).run(
            RELEASE, str(chart), values=up_values or None, wait=False, timeout=60
        )
        upgraded = result["manifest"]
    return installed["manifest"], upgraded


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chart", type=Path, default=Path("charts/provgate"))
    ap.add_argument("--scenarios", type=Path, default=Path("charts/ci/scenarios"))
    ap.add_argument("--out", type=Path, default=Path("target/chart-render"))
    args = ap.parse_args()

    chart = args.chart.resolve()
    scenarios = sorted(args.scenarios.glob("*.yaml"))
    if not scenarios:
        print(f"no scenarios in {args.scenarios}", file=sys.stderr)
        return 1
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)

    failures: list[str] = []
    index = {"helm": helm.get_version(), "release": RELEASE, "namespace": NAMESPACE, "scenarios": []}
    t_lint = t_render = 0.0
    for path in scenarios:
        name = path.stem
        scenario = yaml.safe_load(path.read_text()) or {}
        # A fresh API server per scenario: no objects leak between them.
        with FakeKube() as kube, tempfile.NamedTemporaryFile("w", suffix=".kubeconfig") as kc:
            kc.write(kube.kubeconfig(NAMESPACE))
            kc.flush()
            t0 = time.monotonic()
            try:
                problems = await lint(chart, scenario.get("values") or {}, kc.name)
            except helm.HelmError as e:
                problems = [f"lint failed: {e}"]
            t1 = time.monotonic()
            entry = {"name": name, "values": scenario.get("values") or {}, "upgrade": scenario.get("upgrade")}
            try:
                manifest, upgraded = await render(chart, scenario, kc.name)
                (args.out / f"{name}.yaml").write_text(manifest)
                entry["install"] = f"{name}.yaml"
                if upgraded is not None:
                    (args.out / f"{name}.upgrade.yaml").write_text(upgraded)
                    entry["upgradeManifest"] = f"{name}.upgrade.yaml"
            except helm.HelmError as e:
                problems.append(f"render failed: {e}")
            t2 = time.monotonic()
        t_lint += t1 - t0
        t_render += t2 - t1
        index["scenarios"].append(entry)
        status = "ok" if not problems else "FAILED"
        print(f"{name:24} lint {t1 - t0:5.2f}s  render {t2 - t1:5.2f}s  {status}")
        for p in problems:
            print(f"  {p}")
            failures.append(f"{name}: {p}")

    index["seconds"] = {"lint": round(t_lint, 2), "render": round(t_render, 2)}
    (args.out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    print(f"{len(scenarios)} scenarios, lint {t_lint:.2f}s, render {t_render:.2f}s -> {args.out}")
    if failures:
        print(f"{len(failures)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
