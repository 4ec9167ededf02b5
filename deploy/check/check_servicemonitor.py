"""Check a rendered ServiceMonitor (kubernetes-validate has no schema for it).

The schema below is the part of prometheus-operator v0.84.1's CRD
(monitoring.coreos.com_servicemonitors.yaml) for the fields the chart sets, transcribed by hand,
with no unknown field allowed in them. Also: the endpoint port is a port name of the rendered
Service, the selector matches the Service's labels, scrapeTimeout <= interval (the operator
rejects the object otherwise). usage: check_servicemonitor.py RENDERED.yaml
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
                    "properties": {"matchLabels": LABELS},
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


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    jsonschema.validate(monitor, SCHEMA)
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names, (endpoint["port"], port_names)
        assert seconds(endpoint["scrapeTimeout"]) <= seconds(endpoint["interval"])
    selector = monitor["spec"]["selector"]["matchLabels"]
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in selector.items()), "selector misses the Service"
    name = service["metadata"]["name"]
    print(f"ServiceMonitor OK: {monitor['spec']['endpoints']} on Service {name}")


if __name__ == "__main__":
    main(sys.argv[1])
