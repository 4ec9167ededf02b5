"""Check a rendered ServiceMonitor (kubernetes-validate has no schema for it).

The schema below is the part of prometheus-operator v0.84.1's CRD
(monitoring.coreos.com_servicemonitors.yaml) for the fields the chart sets, transcribed by hand,
with no unknown field allowed in them. Also: the selector (matchLabels and matchExpressions,
evaluated as Kubernetes does) selects exactly one of the rendered Services, the one that is not
headless (the StatefulSet's headless Service has the same pods: selecting it too would scrape
each pod twice), the endpoint port is a port name of that Service, scrapeTimeout <= interval
(the operator rejects the object otherwise). usage: check_servicemonitor.py RENDERED.yaml
"""

from __future__ import annotations

import re
import sys

import jsonschema
import yaml

DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$"
)
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
STRINGS = {"type": "array", "items": {"type": "string"}}
EXPRESSION = {
    "type": "object",
    "required": ["key", "operator"],
    "additionalProperties": False,
    "properties": {"key": {"type": "string"}, "operator": {"type": "string"}, "values": STRINGS},
}
ENDPOINT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "port": {"type": "string"},
        "path": {"type": "string"},
        "interval": {"type": "string", "pattern": DURATION},
        "scrapeTimeout": {"type": "string", "pattern": DURATION},
    },
}
SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "properties": {"labels": LABELS}},
        "spec": {
            "type": "object",
            "required": ["endpoints", "selector"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": LABELS,
                        "matchExpressions": {"type": "array", "items": EXPRESSION},
                    },
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"}, "matchNames": STRINGS},
                },
                "endpoints": {"type": "array", "minItems": 1, "items": ENDPOINT},
            },
        },
    },
}
UNITS = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def seconds(duration: str) -> float:
    return sum(int(n) * UNITS[u] for n, u in re.findall(r"(\d+)(ms|y|w|d|h|m|s)", duration))


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels AND every matchExpression) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op)
        assert ok is not None, f"unknown selector operator {op}"
        if not ok:
            return False
    return True


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    services = [d for d in docs if d["kind"] == "Service"]
    jsonschema.validate(monitor, SCHEMA)
    selector = monitor["spec"]["selector"]
    selected = [s for s in services if selects(selector, s["metadata"].get("labels", {}))]
    assert len(selected) == 1, f"selects {[s['metadata']['name'] for s in selected]}"
    (service,) = selected
    assert service["spec"].get("clusterIP") != "None", "selects the headless Service"
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names, (endpoint["port"], port_names)
        assert seconds(endpoint["scrapeTimeout"]) <= seconds(endpoint["interval"])
    name = service["metadata"]["name"]
    others = [s["metadata"]["name"] for s in services if s is not service]
    print(f"ServiceMonitor OK: {monitor['spec']['endpoints']} on Service {name}"
          f"{f' (not {others})' if others else ''}")


if __name__ == "__main__":
    main(sys.argv[1])
