"""The `triagebot eval ...` functions on the bundled samples: the figures in docs come from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.evaluation import (
    evaluate_classification,
    evaluate_grouping_file,
    evaluate_incidents,
    evaluate_retrieval,
    rank_report,
    split_rows,
)
from bot.evaluation_feedback import evaluate_feedback

SAMPLES = Path(__file__).resolve().parents[2] / "knowledge" / "samples"
RUNBOOKS = SAMPLES / "runbooks"
QUERIES = SAMPLES / "queries.jsonl"
INCIDENTS = SAMPLES / "incidents.jsonl"


def test_rank_report_counts_hits_and_misses() -> None:
    report = rank_report([1, 2, None, 5])
    assert report == {"n": 4, "hit@1": 0.25, "hit@3": 0.5, "hit@5": 0.75, "mrr": 0.425}


def test_retrieval_reports_ours_beside_bm25() -> None:
    report = evaluate_retrieval(RUNBOOKS, QUERIES, field="text_without_name")
    assert report["n"] == 40 and report["rows_skipped"] == 0
    assert report["hit@5"] == 1.0 and report["hit@1"] >= 0.9
    assert report["p95_ms"] >= report["p50_ms"] > 0
    assert report["baseline_bm25_documents"]["n"] == 40


@pytest.mark.parametrize("evaluate", [evaluate_retrieval, evaluate_feedback])
def test_a_mistyped_query_field_is_an_error_not_the_text_figures(evaluate) -> None:
    with pytest.raises(ValueError, match="no query has the field 'text_without_nme'"):
        evaluate(RUNBOOKS, QUERIES, field="text_without_nme")


def test_feedback_helps_the_queries_it_was_given_on_only() -> None:
    report = evaluate_feedback(RUNBOOKS, QUERIES, field="text_without_name")
    clicks = report["clicks"]
    assert clicks["helpful"] + clicks["not_helpful"] == 20
    with_fb, without = report["with_feedback"], report["without_feedback"]
    assert with_fb["after"]["hit@1"] >= with_fb["before"]["hit@1"]
    assert without["after"] == without["before"]


def test_incident_votes_beat_bm25_neighbours_on_the_samples() -> None:
    report = evaluate_incidents(INCIDENTS, target="category")
    assert report["n"] == 107
    assert report["category_hit@1"] > report["baseline_bm25_neighbours"]["category_hit@1"]
    assert 0.0 <= report["novel_rate"] < 0.5
    assert report["rows_skipped"] == 0


def test_incident_votes_count_the_test_rows_they_could_not_read(tmp_path: Path) -> None:
    test = tmp_path / "test.jsonl"
    lines = INCIDENTS.read_text().splitlines()
    test.write_text("\n".join([*lines[:4], "{broken", json.dumps({"title": "no id, fine"})]))
    report = evaluate_incidents(INCIDENTS, test_file=test, target="category")
    assert report["mode"] == "test file" and report["n"] == 4
    assert report["rows_skipped"] == 1
    assert report["first_skipped"].startswith("test.jsonl: line 5: invalid JSON")


def test_classification_reports_ours_and_the_baseline(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in INCIDENTS.read_text().splitlines()]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("\n".join(json.dumps(r) for i, r in enumerate(rows) if i % 4))
    test.write_text("\n".join(json.dumps(r) for i, r in enumerate(rows) if not i % 4)
                    + "\n{broken")
    report = evaluate_classification(train, test, target="category")
    assert (report["n_train"], report["n_test"]) == (80, 27)
    assert report["rows_skipped"] == 1
    assert report["first_skipped"].startswith("test.jsonl: line 28: invalid JSON")
    for key in ("accuracy", "macro_f1", "top3_accuracy", "coverage", "covered_accuracy"):
        assert 0.0 <= report[key] <= 1.0
        assert key in report["baseline_tfidf_linearsvc"]
    assert report["accuracy"] > 0.5
    # ours gives probabilities, so its calibration is measured; the SVC baseline has none
    assert 0.0 <= report["calibration_error"] < 0.5
    assert "calibration_error" not in report["baseline_tfidf_linearsvc"]
    assert report["chosen_in_fit"]["blend_temperature"] > 0.0
    assert 0.0 <= report["chosen_in_fit"]["oof_calibration_error"] < 0.5


def test_one_file_is_split_by_its_split_field_or_stratified(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in INCIDENTS.read_text().splitlines()]
    assert not any("split" in r for r in rows)
    split = split_rows(INCIDENTS, INCIDENTS, "category", test_fraction=0.25)
    tr, tr_y, te, te_y = split.train_texts, split.train_labels, split.test_texts, split.test_labels
    assert len(tr) + len(te) == 107 and "stratified" in split.how and split.rows_skipped == 0
    assert set(tr).isdisjoint(te) and set(te_y) <= set(tr_y)  # every test label seen in training
    again = split_rows(INCIDENTS, INCIDENTS, "category", test_fraction=0.25)
    assert again.test_texts == te  # seeded
    assert split_rows(INCIDENTS, INCIDENTS, "category", seed=7).test_texts != te

    fixed = tmp_path / "fixed.jsonl"
    blank = {"id": "blank", "title": "no label here", "category": "  ", "split": "train"}
    fixed.write_text("\n".join(json.dumps({**r, "split": "test" if i < 10 else "train"})
                               for i, r in enumerate([*rows, blank])))
    split = split_rows(fixed, fixed, "category")
    assert (len(split.train_texts), len(split.test_texts), split.how) == (
        97, 10, "the file's split field")  # blank label skipped

    multi = tmp_path / "multi.jsonl"
    multi_rows = [{"id": i, "title": f"t{i}", "tags": [f"l{i % 2}", "x"] if i else [],
                   "split": "test" if i < 3 else "train"} for i in range(10)]
    multi.write_text("\n".join(json.dumps(r) for r in multi_rows))
    split = split_rows(multi, multi, "tags")
    assert (len(split.train_texts), len(split.test_texts)) == (7, 2)  # empty list: unlabelled
    assert set(split.train_labels) | set(split.test_labels) == {"l0", "l1"}  # first of each list


def test_cross_validation_tests_every_row_once_beside_the_baseline(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in INCIDENTS.read_text().splitlines()]
    data = tmp_path / "incidents.jsonl"
    data.write_text("".join(json.dumps({**r, "split": "train"}) + "\n" for r in rows)
                    + "{broken\n")
    report = evaluate_classification(data, data, target="category", folds=3, seed=1)
    cv = report["cross_validation"]
    per_fold = cv["per_fold"]
    assert [f["fold"] for f in per_fold] == [1, 2, 3]
    # every labelled row tested once (the split field is ignored), the broken line counted
    labelled = sum(1 for r in rows if r.get("category"))
    assert report["n_test"] == sum(f["n_test"] for f in per_fold) == labelled
    assert all(f["n_train"] + f["n_test"] == labelled for f in per_fold)
    assert report["split"] == ("3-fold cross-validation, stratified, seed 1 "
                               "(the file's split field is ignored)")
    assert report["rows_skipped"] == 1
    # pooled figures are the row-weighted mean of the folds'
    pooled = sum(f["accuracy"] * f["n_test"] for f in per_fold) / report["n_test"]
    assert report["accuracy"] == pytest.approx(pooled, abs=1e-3)
    margins = [f["accuracy"] - f["baseline_accuracy"] for f in per_fold]
    assert cv["accuracy_margin"]["per_fold"] == pytest.approx(margins, abs=1e-3)
    assert cv["accuracy_margin"]["mean"] == pytest.approx(sum(margins) / 3, abs=1e-3)
    assert cv["accuracy_margin"]["standard_error"] > 0.0
    assert all(f["chosen_in_fit"]["threshold"] > 0.0 for f in per_fold)
    assert report["accuracy"] > 0.5 and "accuracy" in report["baseline_tfidf_linearsvc"]


def test_cross_validation_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text(INCIDENTS.read_text())
    with pytest.raises(ValueError, match="give it as both --train and --test"):
        evaluate_classification(INCIDENTS, other, target="category", folds=5)
    with pytest.raises(ValueError, match="does not combine"):
        evaluate_classification(INCIDENTS, INCIDENTS, target="category", folds=5,
                                train_sizes=[30])
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"title": f"t {i}", "team": "ab"[i % 2]}) + "\n"
                           for i in range(4)))
    with pytest.raises(ValueError, match="too few for 5 folds"):
        evaluate_classification(few, few, target="team", folds=5)


def test_evaluation_files_need_no_ids_and_skipped_rows_are_counted(tmp_path: Path) -> None:
    """A CSV export without an id column, with a broken row, is still measurable."""
    data = tmp_path / "export.csv"
    lines = ["number,short_description,assignment_group"]
    lines += [f"{i},{'vpn is down' if i % 2 else 'printer jammed'} {i},{'net' if i % 2 else 'desk'}"
              for i in range(20)]
    lines.append("20,too,many,columns")
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    split = split_rows(data, data, "assignment_group", mapping={"title": "short_description"})
    assert len(split.train_texts) + len(split.test_texts) == 20
    assert split.rows_skipped == 1
    assert split.first_skipped == "export.csv: line 22: row has 4 columns, header has 3"
    assert set(split.test_labels) == {"net", "desk"}


def test_evaluation_says_why_a_file_has_no_labels(tmp_path: Path) -> None:
    fixed = tmp_path / "tickets.jsonl"
    fixed.write_text("\n".join([json.dumps({"title": "vpn down", "team": "net"}),
                                json.dumps({"title": "printer", "team": "desk"}),
                                "{not json"]))
    with pytest.raises(ValueError) as err:
        split_rows(fixed, fixed, "priority")
    message = str(err.value)
    assert "tickets.jsonl" in message and "'priority'" in message
    assert "2 records read" in message and "1 rows skipped (first: line 3" in message
    assert "fields found: team, title" in message

    unlabelled = tmp_path / "test.jsonl"
    unlabelled.write_text(json.dumps({"title": "disk full"}))
    with pytest.raises(ValueError, match=r"test file test\.jsonl: no row with text and a 'team'"):
        split_rows(fixed, unlabelled, "team")
    with pytest.raises(ValueError, match="leave none to test on"):
        split_rows(unlabelled, unlabelled, "title")  # one labelled row cannot be split


def test_a_file_whose_text_column_has_another_name_says_which_columns_it_has(
    tmp_path: Path,
) -> None:
    # "msg" is no name the reader knows for text: every row is skipped, and the error lists
    # the columns so that the user can write the --map it suggests
    logs = tmp_path / "logs.jsonl"
    logs.write_text("\n".join(json.dumps({"msg": f"disk {i} full", "host": f"h{i}",
                                          "system": "ab"[i % 2]}) for i in range(6)))
    with pytest.raises(ValueError) as err:
        split_rows(logs, logs, "system")
    message = str(err.value)
    assert "0 records read" in message and "has no text" in message
    assert "columns no field reads: msg, host, system" in message
    assert "--map description=<the text column>" in message
    split = split_rows(logs, logs, "system", mapping={"description": "msg"})
    assert len(split.train_texts) + len(split.test_texts) == 6


def test_grouping_per_system_and_overall(tmp_path: Path) -> None:
    lines = []
    for i in range(30):
        lines.append({"system": "a", "text": f"Connection from 10.0.0.{i} closed", "group": "a1"})
        lines.append({"system": "a", "text": f"User u{i} logged in after {i} ms", "group": "a2"})
        lines.append({"system": "b", "text": f"Disk /dev/sd{i % 3} at {50 + i}%", "group": "b1"})
    events = tmp_path / "events.jsonl"
    rows = [json.dumps(x) for x in lines]
    rows[5:5] = ['{"system": "a", "text": "cut off', "[1, 2]"]  # a broken line, not an object
    events.write_text("\n".join(rows))
    report = evaluate_grouping_file(events)
    assert report["n"] == 90 and report["groups_true"] == 3
    assert report["grouping_accuracy"] == 1.0 and set(report["systems"]) == {"a", "b"}
    assert "grouping_accuracy" in report["baseline_drain3"]
    # one broken line does not void the set, and does not pass unnoticed
    assert report["rows_skipped"] == 2
    assert report["first_skipped"].startswith("events.jsonl: line 6: invalid JSON")


def test_retrieval_counts_the_query_lines_it_could_not_read(tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    lines = QUERIES.read_text().splitlines()
    queries.write_text("\n".join([*lines[:5], '"just a string"', "{broken"]) + "\n")
    report = evaluate_retrieval(RUNBOOKS, queries, field="text_without_name")
    assert report["n"] == 5 and report["rows_skipped"] == 2
    assert report["first_skipped"] == "queries.jsonl: line 6: expected a JSON object, got str"


def test_grouping_file_without_groups_is_a_clear_error(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"text": "no group here"}\n')
    with pytest.raises(ValueError, match="no lines with text and group"):
        evaluate_grouping_file(events)


def test_cold_start_figures_zero_shot_and_a_learning_curve(tmp_path: Path) -> None:
    """`eval classify --taxonomy --train-sizes`: the zero-shot model and models trained on
    the first N rows, all on the same test rows as the full model."""
    rows = [json.loads(line) for line in INCIDENTS.read_text().splitlines()]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("\n".join(json.dumps(r) for i, r in enumerate(rows) if i % 4))
    test.write_text("\n".join(json.dumps(r) for i, r in enumerate(rows) if not i % 4))
    # precision 0.8: at 0.9, 80 rows do not show that these descriptions reach it
    report = evaluate_classification(train, test, target="category", min_precision=0.8,
                                     taxonomy=SAMPLES / "taxonomy.yaml",
                                     train_sizes=(40, 10, 1000))
    zero = report["zero_shot"]
    assert zero["n_labels"] == 14 and zero["test_rows_with_such_labels"] == 0
    # real descriptions of these labels: far above the 1-in-14 of guessing
    assert zero["accuracy"] > 0.5 and zero["top3_accuracy"] > zero["accuracy"]
    # with no labels it never claims to be sure; with the training rows it picks a threshold
    assert (zero["coverage"], zero["calibrated_on"]) == (0.0, 0)
    calibrated = report["zero_shot_calibrated"]
    assert calibrated["calibrated_on"] == 80 and calibrated["accuracy"] == zero["accuracy"]
    assert calibrated["threshold"] <= 1.0 and calibrated["coverage"] > 0.0
    assert calibrated["covered_accuracy"] > calibrated["accuracy"]  # it answers its surest
    curve = report["learning_curve"]
    assert [p["n_train"] for p in curve] == [10, 40, 80]  # sorted; 1000 capped at the 80 rows
    assert curve[-1]["accuracy"] == report["accuracy"]  # all rows: the full model again
    assert curve[0]["n_labels"] < curve[-1]["n_labels"]
    assert all("accuracy" in p["baseline_tfidf_linearsvc"] for p in curve)
    assert curve[-1]["zero_shot_calibrated"]["coverage"] == calibrated["coverage"]
    assert curve[0]["accuracy"] < curve[-1]["accuracy"]  # ten labels are not enough


def test_zero_shot_names_the_test_labels_its_taxonomy_lacks(tmp_path: Path) -> None:
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text("category:\n  storage: Disks and volumes filling up.\n"
                        "  network: DNS, packet loss and connectivity.\n", encoding="utf-8")
    report = evaluate_classification(INCIDENTS, INCIDENTS, target="category",
                                     taxonomy=taxonomy)
    zero = report["zero_shot"]
    assert zero["n_labels"] == 2
    assert "memory" in zero["test_labels_not_in_taxonomy"]
    assert "storage" not in zero["test_labels_not_in_taxonomy"]
    assert 0 < zero["test_rows_with_such_labels"] < report["n_test"]
    # it can only be right on the rows whose label it knows (figures are rounded to 4 places)
    assert zero["accuracy"] <= 1 - zero["test_rows_with_such_labels"] / report["n_test"] + 1e-4


def test_a_taxonomy_without_the_target_fails_before_any_training(tmp_path: Path,
                                                                 monkeypatch) -> None:
    import bot.evaluation

    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text("severity:\n  critical: now\n  warning: later\n", encoding="utf-8")

    def no_reading(*args, **kwargs):
        raise AssertionError("the files were read before the taxonomy was checked")

    monkeypatch.setattr(bot.evaluation, "split_rows", no_reading)
    with pytest.raises(ValueError, match=r"taxonomy taxonomy\.yaml has no 'team' entry"):
        evaluate_classification(INCIDENTS, INCIDENTS, target="team", taxonomy=taxonomy)


# --- labels and query files as users have them (robustness sweep) -----------------------------


def _tickets(tmp_path: Path, name: str, labels: list, key: str = "team") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps({"title": f"ticket {i} about {lab}", key: lab})
                              for i, lab in enumerate(labels)))
    return path


def test_false_and_zero_are_labels_not_blanks(tmp_path: Path) -> None:
    data = _tickets(tmp_path, "flags.jsonl", [True, False] * 10, key="urgent")
    split = split_rows(data, data, "urgent")
    assert sorted(set(split.train_labels)) == ["False", "True"]
    assert len(split.train_labels) + len(split.test_labels) == 20
    numbers = _tickets(tmp_path, "p.jsonl", [0, 1, 2] * 5, key="priority")
    split = split_rows(numbers, numbers, "priority")
    assert sorted(set(split.train_labels)) == ["0", "1", "2"]


def test_labels_differing_in_case_or_spacing_are_one_label_and_said_so(tmp_path: Path) -> None:
    data = _tickets(tmp_path, "t.jsonl", ["Network", "network ", "NETWORK", "Desk", "desk"] * 4
                    + ["Network"] * 2)
    split = split_rows(data, data, "team")
    assert set(split.train_labels) | set(split.test_labels) == {"Network", "Desk"}
    assert split.notes["labels_merged"] == {"Desk": ["desk"], "Network": ["NETWORK", "network"]}
    assert any("differ only in case or spacing" in w for w in split.notes["warnings"])


def test_unlabelled_rows_and_test_labels_never_trained_on_are_reported(tmp_path: Path) -> None:
    train = _tickets(tmp_path, "train.jsonl", ["net", "desk", ""] * 4)
    test = _tickets(tmp_path, "test.jsonl", ["net", "desk", "dba", "dba", "hr"])
    split = split_rows(train, test, "team")
    notes = split.notes
    assert notes["rows_unlabelled"] == 4
    assert notes["test_labels_not_in_train"] == ["dba", "hr"]
    assert notes["test_rows_with_labels_not_in_train"] == 3
    assert any("3 of 5 test rows carry 2 labels no training row has" in w
               for w in notes["warnings"])
    assert any("only 5 test rows: one answer moves accuracy by 20 points" in w
               for w in notes["warnings"])


def test_a_single_label_or_a_label_column_spelled_otherwise(tmp_path: Path) -> None:
    one = _tickets(tmp_path, "one.jsonl", ["net"] * 10)
    with pytest.raises(ValueError, match=r"one\.jsonl: every one of the \d+ training rows with "
                                         r"a 'team' label says 'net'; a classifier needs 2"):
        split_rows(one, one, "team")
    csv_file = tmp_path / "export.csv"
    csv_file.write_text("Short description,Assignment group\n"
                        + "".join(f"issue {i},{'ab'[i % 2]}\n" for i in range(10)))
    split = split_rows(csv_file, csv_file, "assignment_group")
    assert set(split.train_labels) == {"a", "b"}


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "runbooks"
    for rel, text in {"node/DiskFull.md": "# Disk full\n\nFree space on the node.",
                      "db/ReplicaLag.md": "# Replica lag\n\nCheck the replica.",
                      "db/notes.rst": "Replica notes\n=============\n\ntext"}.items():
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_text(text)
    return corpus


def test_query_files_with_other_field_names_and_gold_spellings(tmp_path: Path) -> None:
    from bot.evaluation import retrieval_queries
    from knowledge.documents import scan_folder

    corpus = _corpus(tmp_path)
    queries = tmp_path / "queries.csv"
    queries.write_text("query,expected\n"
                       "disk is full,DiskFull.md\n"               # the file name alone
                       "replica behind,runbooks/db/ReplicaLag\n"  # folder in front, no .md
                       "replica lag,./db/ReplicaLag.md\n"
                       "cpu high,node/CpuHigh.md\n"               # not in the corpus
                       "no gold here,\n")
    checked = retrieval_queries(corpus, queries, "text", scan_folder(corpus))
    assert checked.texts == ["disk is full", "replica behind", "replica lag"]
    assert checked.golds == [["node/DiskFull.md"], ["db/ReplicaLag.md"], ["db/ReplicaLag.md"]]
    notes = checked.notes
    assert (notes["queries_without_gold"], notes["gold_not_in_corpus"]) == (1, 1)
    assert notes["corpus_files_skipped"] == 1  # the .rst file, named in a warning
    assert any("node/CpuHigh.md" in w for w in notes["warnings"])
    assert any("db/notes.rst (unsupported type .rst)" in w for w in notes["warnings"])


def test_queries_made_of_alerts_and_gold_lists(tmp_path: Path) -> None:
    from bot.evaluation import query_texts, retrieval_queries
    from knowledge.documents import scan_folder

    alert = {"labels": {"alertname": "NodeDiskFull", "severity": "critical"},
             "annotations": {"summary": "Disk is full.", "description": "node-3 at 99%."}}
    rows = [{"alert": alert, "relevant": ["node/DiskFull.md", "x.md"]}]
    assert query_texts(rows, "text", tmp_path) == [
        "[critical] NodeDiskFull: Disk is full. node-3 at 99%."]
    assert query_texts(rows, "text_without_name", tmp_path) == ["Disk is full. node-3 at 99%."]
    corpus = _corpus(tmp_path)
    queries = tmp_path / "q.json"
    queries.write_text(json.dumps(rows))
    assert retrieval_queries(corpus, queries, "text", scan_folder(corpus)).golds == [
        ["node/DiskFull.md"]]
    nothing = tmp_path / "none.jsonl"
    nothing.write_text(json.dumps({"text": "cpu", "gold": "node/CpuHigh.md"}))
    with pytest.raises(ValueError, match=r"none of the 1 queries names a runbook of the corpus "
                                         r"\(e\.g\. gold 'node/CpuHigh\.md'; corpus paths"):
        retrieval_queries(corpus, nothing, "text", scan_folder(corpus))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no runbook to search"):
        retrieval_queries(empty, nothing, "text", scan_folder(empty))


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    empty, header = tmp_path / "empty.jsonl", tmp_path / "header.csv"
    empty.write_text("\n")
    header.write_text("title,team\n")
    with pytest.raises(ValueError, match=r"^train file empty\.jsonl: the file holds no rows$"):
        split_rows(empty, empty, "team")
    with pytest.raises(ValueError, match=r"header\.csv: the file holds no rows"):
        split_rows(header, header, "team")
