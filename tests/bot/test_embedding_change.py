"""Changing the embedding model: classifiers trained on the old vectors stop answering,
say why, and are retrained on the new ones (and cannot be rolled back to)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import copy_data_dir


@pytest.fixture(scope="module")
def projected_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real second embedding model: all-MiniLM-L6-v2 followed by a fixed random
    projection to 128 dimensions (what switching to a smaller model looks like)."""
    import torch
    from sentence_transformers import SentenceTransformer, models

    from knowledge.embed import default_model_path

    torch.manual_seed(0)
    base = SentenceTransformer(default_model_path(), device="cpu")
    dense = models.Dense(in_features=base.get_embedding_dimension(), out_features=128,
                         bias=False, activation_function=torch.nn.Identity())
    folder = tmp_path_factory.mktemp("models") / "minilm-projected-128"
    SentenceTransformer(modules=[*base, dense], device="cpu").save(str(folder))
    return folder


def active_trained_versions(services) -> dict[str, str]:
    from bot.store import repository as repo
    from bot.store.db import session_scope

    with session_scope(services.sessions) as session:
        rows = [repo.get_active_model(session=session, target=t)
                for t in services.classifiers.targets]
        return {r.target: r.version for r in rows if r is not None and r.kind == "supervised"}


def test_a_new_embedding_model_retrains_the_classifiers_instead_of_feeding_them_noise(
    sample_data_dir: Path, tmp_path: Path, projected_model: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bot.app import build_services
    from bot.config import Settings
    from bot.drift import check_drift
    from bot.events import Event, EventKind, EventSource
    from bot.jobs import run_job, start_scheduler

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    before = build_services(Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False))
    try:
        assert before.classifiers.retrain_needed == {}
        old_versions = active_trained_versions(before)
    finally:
        before.close()
    assert old_versions, "the samples train at least one classifier"

    settings = Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False,
                        embedding_model=str(projected_model))
    with caplog.at_level("ERROR", logger="bot.classification"):
        services = build_services(settings)
    try:
        classifiers = services.classifiers
        assert classifiers.embedder.dim == 128
        # every trained model is set aside, with the reason logged and kept for the admin
        assert set(classifiers.retrain_needed) == set(old_versions)
        for target, version in old_versions.items():
            why = classifiers.retrain_needed[target]
            assert version in why and "cannot answer" in why and "minilm-projected-128" in why
            assert f"triagebot train --target {target}" in why
            assert classifiers.active[target].kind == "zero-shot"
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert all(v in logged for v in old_versions.values())

        # triage still answers, from the taxonomy, without an error
        event = Event(source=EventSource.CLI, kind=EventKind.ALERT,
                      text="disk full on /var/lib/postgresql on db-01")
        triage = services.assistant.triage(event)
        assert triage.prediction("category") is not None
        assert triage.prediction("category").model_version == "category-zero-shot"

        # the drift check tells the admin to retrain, and why
        report = check_drift(services, target="category")
        assert report["should_retrain"] is True
        assert "cannot answer" in report["reason"]

        # the scheduler retrains soon after start, not at the nightly slot
        scheduler = start_scheduler(SimpleNamespace(
            settings=settings.model_copy(update={"scheduler_enabled": True}),
            services=services))
        try:
            assert "retrain-new-embeddings" in {job.id for job in scheduler.get_jobs()}
        finally:
            scheduler.shutdown(wait=False)

        run = run_job("retrain", services, holder="test")
        assert run is not None and run.outcome == "ok"
        # each target now has a model trained on the new vectors, or stays zero-shot where
        # that was better on the held-out split; no version of the old vectors is active
        new_versions = active_trained_versions(services)
        assert not set(new_versions.values()) & set(old_versions.values())
        assert "team" in new_versions and classifiers.active["team"].kind == "supervised"
        assert services.assistant.triage(event).prediction("team").model_version \
            == new_versions["team"]
        from bot.store import repository as repo
        from bot.store.db import session_scope
        from bot.store.models import AuditEntry

        with session_scope(services.sessions) as session:
            team = repo.get_model_version(session=session, version=new_versions["team"])
            built_with = team.library_versions
            assert f"{old_versions['team']} is retired: it was trained on other embeddings" \
                in team.decision["reason"]
            # where zero-shot beat the new model, the old version is retired all the same
            kept_zero_shot = set(old_versions) - set(new_versions)
            statuses = {repo.get_model_version(session=session, version=old_versions[t]).status
                        for t in kept_zero_shot}
            set_aside = {e.subject for e in session.query(AuditEntry)
                         .filter_by(action="model_set_aside")}
        assert built_with["embedding_model"] == "minilm-projected-128"
        assert built_with["embedding_dim"] == "128"
        assert kept_zero_shot and statuses == {"retired"}
        assert set_aside == {old_versions[t] for t in kept_zero_shot}
        assert all(classifiers.active[t].kind == "zero-shot" for t in kept_zero_shot)
        assert classifiers.retrain_needed == {}
        assert classifiers.sync() is False  # memory and database agree

        # a retrain right after finds nothing new to do
        assert all(isinstance(r, str) and "no new labels" in r
                   for r in classifiers.train_all(actor="test"))
        # the version trained on the old vectors cannot come back
        with pytest.raises(ValueError, match="cannot answer"):
            classifiers.rollback("team", actor="test")
        with pytest.raises(ValueError, match="cannot answer"):
            classifiers.promote(old_versions["team"], actor="test")
        assert active_trained_versions(services) == new_versions
    finally:
        services.close()


def test_a_model_saved_without_its_embeddings_recorded_is_judged_by_its_dimension() -> None:
    from bot.classification import embedding_mismatch, mismatch_message

    serving = {"embedding_model": "all-MiniLM-L6-v2", "embedding_dim": "384"}
    legacy_384 = SimpleNamespace(n_features_in_=384)
    assert embedding_mismatch({}, legacy_384, serving) == ""
    assert embedding_mismatch({}, SimpleNamespace(n_features_in_=768), serving) == "model"
    recorded = {"embedding_model": "all-MiniLM-L6-v2", "embedding_dim": "384"}
    onnx = {"embedding_model": "all-MiniLM-L6-v2+onnx-int8", "embedding_dim": "384"}
    assert embedding_mismatch(recorded, legacy_384, serving) == ""
    assert embedding_mismatch(onnx, legacy_384, serving) == "backend"
    other = {"embedding_model": "paraphrase-multilingual-MiniLM-L12-v2", "embedding_dim": "384"}
    assert embedding_mismatch(other, legacy_384, serving) == "model"
    legacy_768 = SimpleNamespace(n_features_in_=768)
    assert "trained on other (768-dimension) embeddings" in mismatch_message(
        "team", "team-1", {}, serving, "model", legacy_768)
