"""Check the workload of a rendered chart: its kind and where each pod's /data comes from.

usage: check_workload.py RENDERED.yaml KIND DATA [--same-pod-as OTHER.yaml]
  KIND  Deployment or StatefulSet
  DATA  per-pod (volumeClaimTemplates), claim:NAME (one claim for every pod), emptyDir

StatefulSet: spec.serviceName is a rendered headless Service selecting the pods, Parallel pod
management, RollingUpdate, a claim template "data" with only stable labels (a chart or app
version label would make every chart upgrade change the immutable template), no chart-made
<fullname>-data claim beside it. Every kind: /data is mounted from the volume "data" and
/data/models from "models" when models.shared is on. --same-pod-as: the pod template equals the
one in OTHER.yaml except the "data" volume (probes, security contexts, env, mounts unchanged).
"""

from __future__ import annotations

import sys

import yaml

WORKLOADS = ("Deployment", "StatefulSet")


def load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


def workload(docs: list[dict]) -> dict:
    (found,) = [d for d in docs if d["kind"] in WORKLOADS]
    return found


def pod_without_data_volume(wl: dict) -> dict:
    pod = yaml.safe_load(yaml.safe_dump(wl["spec"]["template"]))
    pod["spec"]["volumes"] = [v for v in pod["spec"].get("volumes", []) if v["name"] != "data"]
    return pod


def main(argv: list[str]) -> None:
    path, kind, data = argv[:3]
    docs = load(path)
    wl = workload(docs)
    assert wl["kind"] == kind, f"{wl['kind']}, expected {kind}"
    spec = wl["spec"]
    pod = spec["template"]
    (container,) = pod["spec"]["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/data"] == "data", mounts
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    name = wl["metadata"]["name"]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    if "models" in volumes:
        assert mounts.get("/data/models") == "models"
        assert "persistentVolumeClaim" in volumes["models"], volumes["models"]
    if data == "per-pod":
        assert kind == "StatefulSet"
        assert "data" not in volumes, "a pod volume 'data' would hide the claim template"
        (template,) = [t for t in spec["volumeClaimTemplates"] if t["metadata"]["name"] == "data"]
        labels = template["metadata"].get("labels", {})
        assert not {"helm.sh/chart", "app.kubernetes.io/version"} & set(labels), labels
        assert template["spec"]["resources"]["requests"]["storage"]
        assert f"{name}-data" not in claims, f"chart-made {name}-data claim beside the template"
        assert spec["podManagementPolicy"] == "Parallel"
        assert spec["updateStrategy"]["type"] == "RollingUpdate"
        assert "strategy" not in spec
        headless = services[spec["serviceName"]]
        assert headless["spec"]["clusterIP"] == "None"
        pod_labels = pod["metadata"]["labels"]
        assert all(pod_labels.get(k) == v for k, v in headless["spec"]["selector"].items())
        assert all(pod_labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items())
    else:
        assert kind == "Deployment"
        assert "volumeClaimTemplates" not in spec and "serviceName" not in spec
        if data == "emptyDir":
            assert volumes["data"] == {"name": "data", "emptyDir": {}}, volumes["data"]
        else:
            claim = data.removeprefix("claim:")
            assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim
        assert not [s for s in services.values() if s["spec"].get("clusterIP") == "None"]
    if "--same-pod-as" in argv:
        other = workload(load(argv[argv.index("--same-pod-as") + 1]))
        assert pod_without_data_volume(wl) == pod_without_data_volume(other), "pod templates differ"
    print(f"{kind} {name}: /data {data}, {spec.get('replicas')} replicas")


if __name__ == "__main__":
    main(sys.argv[1:])
