"""Retraining embeds only texts it has not embedded before (the on-disk embedding cache),
is skipped when nothing it learns from has changed, and ends cold start after an import."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest


def test_second_retrain_embeds_nothing_and_a_broken_cache_is_bypassed(services) -> None:
    clf = services.classifiers
    embedded: list[int] = []
    real_encode = clf.embedder.encode

    def counting(texts):
        embedded.append(len(texts))
        return real_encode(texts)

    clf.embedder.encode = counting  # type: ignore[method-assign]
    shutil.rmtree(clf.models_dir / "embcache", ignore_errors=True)  # start cold
    first = clf.train("category", actor="test", force=True)
    assert sum(embedded) > 0
    embedded.clear()
    second = clf.train("category", actor="test", force=True)
    assert embedded == []  # same training texts: all from the cache
    # same vectors, same model, same figures (the calibration error, computed from
    # probabilities, may differ around the 6th digit: float32 summation order across fits)
    assert second.challenger == pytest.approx(first.challenger, abs=1e-4)

    folders = list((clf.models_dir / "embcache").iterdir())
    assert len(folders) == 1 and clf.embedder.model_name.split("/")[-1][:20] in folders[0].name
    generation = (folders[0] / "current").read_text(encoding="ascii").strip()
    (folders[0] / f"index.{generation}.txt").write_text("not-a-key\n", encoding="ascii")
    embedded.clear()
    third = clf.train("category", actor="test", force=True)
    assert sum(embedded) > 0  # embedded afresh
    assert third.challenger == pytest.approx(first.challenger, abs=1e-4)


def test_a_retrain_with_nothing_new_is_skipped_until_a_label_changes(services) -> None:
    from bot.classification import UnchangedDataError
    from bot.store import repository as repo
    from bot.store.db import session_scope

    clf = services.classifiers
    trained = clf.train("category", actor="test", force=True)
    assert trained.promoted
    with pytest.raises(UnchangedDataError, match=trained.version):
        clf.train("category", actor="test")
    results = clf.train_all(actor="scheduler")  # the nightly job: no identical versions
    assert any(isinstance(r, str) and "category: no new labels" in r for r in results)
    with session_scope(services.sessions) as session:
        versions = repo.list_model_versions(session=session, target="category")
    assert [v.version for v in versions].count(trained.version) == 1
    assert sum(v.status == "active" for v in versions) == 1

    texts, labels = clf.training_data("category")
    moved = next(i for i, t in enumerate(texts) if in_training_rows(t))
    new_label = next(lab for lab in sorted(set(labels)) if lab != labels[moved])
    with session_scope(services.sessions) as session:  # a correction from Slack feedback
        repo.add_labeled_example(session=session, text=texts[moved], field="category",
                                 label=new_label, origin="feedback", feedback_id=None)
    retrained = clf.train("category", actor="test")
    assert retrained.version != trained.version


def test_a_rejected_retrain_is_not_repeated_until_the_data_changes(services) -> None:
    """The nightly job used to train, and reject, the same challenger every night."""
    from bot.classification import UnchangedDataError
    from bot.store import repository as repo
    from bot.store.db import session_scope

    clf = services.classifiers
    champion = clf.train("category", actor="test", force=True)
    texts, labels = clf.training_data("category")
    moved = [i for i, t in enumerate(texts) if in_training_rows(t)][-1]
    new_label = next(lab for lab in sorted(set(labels)) if lab != labels[moved])
    with session_scope(services.sessions) as session:
        repo.add_labeled_example(session=session, text=texts[moved], field="category",
                                 label=new_label, origin="feedback", feedback_id=None)
    clf.min_accuracy_gain = 1.0  # no challenger can gain a whole point: it is rejected
    try:
        rejected = clf.train("category", actor="test")
        assert not rejected.promoted and clf.active["category"].version == champion.version
        with pytest.raises(UnchangedDataError,
                           match=f"since {rejected.version}, which {champion.version} beat"):
            clf.train("category", actor="test")
    finally:
        clf.min_accuracy_gain = 0.0


def in_training_rows(text: str) -> bool:
    from bot.classification import in_holdout

    return not in_holdout(text)


def test_cold_start_ends_when_an_import_brings_labels_that_beat_zero_shot(
        tmp_path: Path) -> None:
    """Right after the import, not at the next scheduled retrain, each target is trained and
    its model replaces the zero-shot one only if it is at least as good on the held-out split.

    On the bundled samples (written with the bundled taxonomy, so zero-shot is strong) the
    trained priority model wins by a wide margin and the category model loses: both branches.
    """
    from bot.app import build_services
    from bot.config import Settings
    from bot.samples import SAMPLES_DIR
    from bot.store import repository as repo
    from bot.store.db import session_scope
    from knowledge.records import read_records

    svc = build_services(Settings(_env_file=None, data_dir=tmp_path / "fresh",
                                  scheduler_enabled=False))
    try:
        clf = svc.classifiers
        assert {m.kind for m in clf.active.values()} == {"zero-shot"}
        records = read_records(SAMPLES_DIR / "incidents.jsonl").records
        svc.knowledge.import_records(records[:10], kind="incident", source_name="t")
        assert all(isinstance(r, str) for r in clf.train_cold_targets(actor="import"))
        svc.knowledge.import_records(records, kind="incident", source_name="t")
        outcomes = [o for o in clf.train_cold_targets(actor="import") if not isinstance(o, str)]
        assert {o.target for o in outcomes} == {"category", "severity", "priority", "team"}
        for o in outcomes:  # the zero-shot model was measured on the same held-out rows
            assert o.champion is not None
            at_least_as_good = (o.challenger["accuracy"] >= o.champion["accuracy"]
                                and o.challenger["macro_f1"] >= o.champion["macro_f1"])
            assert o.promoted == at_least_as_good
            assert clf.active[o.target].kind == ("supervised" if o.promoted else "zero-shot")
        by_target = {o.target: o for o in outcomes}
        assert by_target["priority"].promoted
        promoted = by_target["priority"]
        assert re.fullmatch(
            re.escape("enough labels: replaces the zero-shot cold-start model (accuracy "
                      f"{promoted.challenger['accuracy']:.3f} vs "
                      f"{promoted.champion['accuracy']:.3f}, macro-F1 "
                      f"{promoted.challenger['macro_f1']:.3f} vs "
                      f"{promoted.champion['macro_f1']:.3f} for the active model on the same ")
            + r"\d+ held-out rows\)", promoted.reason), promoted.reason
        kept = by_target["category"]
        assert not kept.promoted
        assert kept.reason.startswith("the zero-shot cold-start model stays, it is still better")
        with session_scope(svc.sessions) as session:
            row = repo.get_model_version(session=session, version=kept.version)
            assert row is not None and row.status == "rejected"
            assert row.decision["champion"] == kept.champion  # both sets of figures recorded

        # Nothing new: the losers are not retrained (and rejected) again at every import or
        # night, and the winners are left to the scheduled retrain.
        again = clf.train_cold_targets(actor="import")
        assert all(isinstance(r, str) for r in again)
        assert any(r.startswith(f"category: no new labels or corrections since {kept.version}, "
                                "which category-zero-shot beat") for r in again)
        # An admin can still overrule the measurement.
        forced = clf.train("category", actor="admin", force=True)
        assert forced.promoted and forced.reason.startswith(
            "promoted because forced; the champion/challenger comparison alone would have kept "
            "the zero-shot cold-start model: accuracy gain")
        assert clf.active["category"].kind == "supervised"
        with session_scope(svc.sessions) as session:
            row = repo.get_model_version(session=session, version=forced.version)
            assert row is not None and row.decision["reason"] == forced.reason
    finally:
        svc.close()


def test_the_taxonomy_file_is_a_setting_and_a_broken_one_does_not_stop_start_up(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bot.app import build_services
    from bot.config import Settings

    taxonomy = tmp_path / "ours.yaml"
    taxonomy.write_text("team:\n  dba: Databases and their disks.\n  desk: Laptops and printers.\n"
                        "category: only a string\n", encoding="utf-8")
    svc = build_services(Settings(_env_file=None, data_dir=tmp_path / "a",
                                  scheduler_enabled=False, taxonomy_file=taxonomy))
    try:
        active = svc.classifiers.active
        assert set(active) == {"team"}  # the other targets have no descriptions here
        assert list(active["team"].model.classes_) == ["dba", "desk"]
        vector = svc.embedder.encode(["the laptop screen stays black"])[0]
        (pred,) = svc.classifiers.predict("the laptop screen stays black", vector)
        assert (pred.field, pred.candidates[0][0]) == ("team", "desk")
    finally:
        svc.close()

    taxonomy.write_text("team: [unclosed\n", encoding="utf-8")
    svc = build_services(Settings(_env_file=None, data_dir=tmp_path / "b",
                                  scheduler_enabled=False, taxonomy_file=taxonomy))
    try:
        assert svc.classifiers.active == {}
        assert any("is not valid YAML" in r.getMessage()
                   and r.getMessage().endswith("; no zero-shot models") for r in caplog.records)
    finally:
        svc.close()


def test_zero_shot_is_unsure_until_labels_exist_then_its_threshold_follows_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No labels: zero-shot cannot know its precision and always says unsure. Labels that are
    too few to train on, imported by the CLI or another replica, reach it at the next sync."""
    from bot.app import build_services
    from bot.config import Settings
    from bot.samples import SAMPLES_DIR
    from knowledge.records import read_records

    settings = Settings(_env_file=None, data_dir=tmp_path / "d", scheduler_enabled=False)
    server = build_services(settings)
    cli = build_services(settings)
    try:
        text = "WAL volume on db-01 is 97% full"
        vector = server.embedder.encode([text])[0]
        predictions = server.classifiers.predict(text, vector)
        assert all(p.unsure for p in predictions)
        # and says why: it never answers before labels exist
        assert all("more labels help" in p.why_unsure() for p in predictions)
        # its evidence in the answer: the taxonomy's description of its best guess
        from bot.events import Event, EventKind, EventSource

        triage = server.assistant.triage(
            Event(source=EventSource.CLI, kind=EventKind.MESSAGE, text=text))
        category = triage.prediction("category")
        assert category.unsure and category.candidates[0][0] == "storage"
        ((what, label, similarity),) = category.examples
        assert what.startswith("the taxonomy's storage: Disks, volumes or filesystems")
        assert label == "storage" and 0.0 < similarity < 1.0
        model = server.classifiers.active["category"].model
        assert model.calibration_ == {"n": 0}

        records = read_records(SAMPLES_DIR / "incidents.jsonl").records[:20]
        cli.knowledge.import_records(records, kind="incident", source_name="t")
        monkeypatch.setattr("bot.classification.ZERO_SHOT_CALIBRATION_ROWS", 15)
        assert all(isinstance(r, str) for r in cli.classifiers.train_cold_targets(actor="cli"))
        # the process that ran the (skipped) training recalibrated at once, on the newest 15
        assert cli.classifiers.active["category"].model.calibration_["n"] == 15
        monkeypatch.setattr("bot.classification.ZERO_SHOT_CALIBRATION_ROWS", 2_000)
        assert server.classifiers.sync() is False  # no new version: no reload ...
        recalibrated = server.classifiers.active["category"]
        assert recalibrated.model.calibration_["n"] == 20  # ... but the threshold saw them,
        assert model.calibration_ == {"n": 0}  # on a copy swapped in whole
        assert recalibrated.version == "category-zero-shot"
        figures = recalibrated.metrics  # shown in App Home
        assert figures["measured_on"] == 20 and 0.0 <= figures["accuracy"] <= 1.0
        server.classifiers.sync()  # nothing changed since: not recalibrated again
        assert server.classifiers.active["category"] is recalibrated
    finally:
        server.close()
        cli.close()


@pytest.mark.parametrize(("cold", "forced", "reason"), [
    (True, True, "promoted because forced; the champion/challenger comparison alone would have "
                 "kept the zero-shot cold-start model: accuracy gain -0.100 < +0.000"),
    (False, True, "promoted because forced; the champion/challenger comparison alone would have "
                  "kept the champion category-1: accuracy gain -0.100 < +0.000"),
    (True, False, "the zero-shot cold-start model stays, it is still better on the held-out "
                  "split: accuracy gain -0.100 < +0.000"),
    (False, False, "keep champion: accuracy gain -0.100 < +0.000"),
])
def test_a_forced_promotion_says_it_was_forced_not_that_the_champion_stays(
        cold: bool, forced: bool, reason: str) -> None:
    from bot.classification import promotion_reason
    from classifiers.evaluate import Decision

    lost = Decision(False, "keep champion: accuracy gain -0.100 < +0.000", -0.1, 0.0, 0.0)
    assert promotion_reason(lost, cold=cold, forced=forced,
                            champion_version="category-1") == reason


def test_one_label_written_several_ways_is_one_class_in_training(services) -> None:
    """"Network" from one import and "network " from another are one class, spelt as most
    rows spell it, as `triagebot eval classify` counts them (classifiers.labels)."""
    from bot.store import repository as repo
    from bot.store.db import session_scope

    clf = services.classifiers
    _, before = clf.training_data("category")
    usual = max(set(before), key=before.count)
    odd = f"  {usual.upper()} "
    with session_scope(services.sessions) as session:
        repo.upsert_incident(session=session, external_id="ODD-SPELLING-1",
                             title="Replica lag on the reporting database",
                             description="written by another importer", category=odd)
    texts, labels = clf.training_data("category")
    assert labels[texts.index(next(t for t in texts if "written by another importer" in t))
                  ] == usual
    assert odd not in labels and set(labels) == set(before)
