"""Training finds a stored label field that refines the target (an alert's service decides
its category) and gives the classifier those labels; corrections from feedback have none."""

from __future__ import annotations

from pathlib import Path

SERVICES = {  # service -> (category, two rule texts)
    "postgres": ("databases", ["Postgres replication lag is high",
                               "Postgres has too many connections"]),
    "mysql": ("databases", ["MySQL slave IO thread not running",
                            "MySQL InnoDB log waits are high"]),
    "redis": ("databases", ["Redis out of memory", "Redis rejected connections"]),
    "nginx": ("proxies", ["Nginx high HTTP 5xx error rate", "Nginx latency is high"]),
    "haproxy": ("proxies", ["HAProxy backend down", "HAProxy server connection errors"]),
    "traefik": ("proxies", ["Traefik service down", "Traefik high HTTP 4xx error rate"]),
    "node": ("hosts", ["Host out of memory", "Host disk will fill in 24 hours"]),
    "smart": ("hosts", ["Disk SMART device temperature critical", "SMART status failed"]),
}


def test_training_uses_the_service_as_finer_labels_of_the_category(tmp_path: Path) -> None:
    from bot.app import build_services
    from bot.config import Settings
    from bot.store import repository as repo
    from bot.store.db import session_scope
    from knowledge.records import Record

    records = [
        Record(id=f"r-{svc}-{i}-{n}", title=f"{text} ({n})", description=f"rule {i} of {svc}",
               category=cat, service=svc)
        for svc, (cat, texts) in SERVICES.items() for i, text in enumerate(texts)
        for n in range(3)
    ]
    services = build_services(Settings(_env_file=None, data_dir=tmp_path / "d",
                                       scheduler_enabled=False, min_labels_per_target=10))
    try:
        services.knowledge.import_records(records, kind="incident", source_name="t")
        clf = services.classifiers
        with session_scope(services.sessions) as session:  # a correction from Slack
            repo.add_labeled_example(session=session, text="Varnish cache hit ratio is low",
                                     field="category", label="proxies", origin="feedback",
                                     feedback_id=None)
        texts, labels = clf.training_data("category")
        name, fine = clf.finer_labels("category", texts, labels)
        assert name == "service" and len(fine) == len(texts)
        by_text = dict(zip(texts, fine, strict=True))
        assert by_text["Postgres replication lag is high (0)\nrule 0 of postgres"] == "postgres"
        assert by_text["Varnish cache hit ratio is low"] == ""
        # the team is not labelled here; the service refines nothing coarser than itself
        assert clf.finer_labels("service", *clf.training_data("service")) == ("", [])
        outcome = clf.train("category", actor="test", force=True)
        assert outcome.promoted
        model = clf.active["category"].model
        # found and weighed out of fold, whatever share it got; models show says so
        assert model.fine_field_ == "service"
        assert model.chosen()["finer_field"] == "service"
        with session_scope(services.sessions) as session:
            row = repo.get_model_version(session=session, version=outcome.version)
            assert row is not None
            assert row.metrics["chosen_in_fit"]["finer_field"] == "service"
    finally:
        services.close()
