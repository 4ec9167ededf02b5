"""`helm template` / `helm lint` without a helm binary: helm-python-sdk (Helm v4 Go SDK in its
bundled libhelm_c). Run with the scratch venv of verify.sh, not the project's .venv.

usage: helm_template.py version
       helm_template.py template CHART [-f VALUES]... [--set K=V]... [--name N] [--namespace NS]
       helm_template.py lint CHART [-f VALUES]... [--set K=V]... [--strict] [--kube-version V]

template prints the manifests (NOTES.txt on stderr) and exits 1 with the error when the chart
refuses the values (a `fail` in a template).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import helm_python as helm
import yaml


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cmd", choices=["template", "lint", "version"])
    parser.add_argument("chart", nargs="?")
    parser.add_argument("-f", "--values", action="append", default=[])
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--name", default="triagebot")
    parser.add_argument("--namespace", default="triagebot")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--kube-version", default=None)
    args = parser.parse_args()
    if args.cmd == "version":
        print(
            f"helm-python-sdk {helm.__version__}, Helm SDK {helm.helm_sdk_version()}, "
            f"libhelm_c {helm.helm_c_version()}"
        )
        return 0
    values: dict[str, Any] = {}
    for path in args.values:
        with open(path, encoding="utf-8") as fh:
            deep_merge(values, yaml.safe_load(fh) or {})
    for item in args.set:
        deep_merge(values, helm.parse_set_string(item))
    if args.cmd == "lint":
        report = helm.lint(
            args.chart, values or None, strict=args.strict, namespace=args.namespace,
            kube_version=args.kube_version,
        )
        print(json.dumps(report))
        messages = report.get("messages") or []
        return 1 if report.get("errors") or any(m["severity"] >= 3 for m in messages) else 0
    with helm.Chart.load(args.chart) as chart:
        try:
            out = chart.render(
                values or None, name=args.name, namespace=args.namespace, is_install=True
            )
        except helm.HelmError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    for path in sorted(out):
        if out[path].strip() and not path.endswith("NOTES.txt"):
            print(f"---\n# Source: {path}\n{out[path].strip()}")
    for path in out:
        if path.endswith("NOTES.txt"):
            print(out[path], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
