"""CLI: help lists commands; user mistakes give one line and a non-zero exit, no traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    import os

    full_env = {**os.environ, "TRIAGEBOT_SCHEDULER_ENABLED": "false", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=300,
    )


def test_help_lists_commands_with_one_line_each() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "triage", "search", "index", "import", "train", "models", "eval"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("import", "incidents", "/nonexistent/history.jsonl"),
        ("index", "runbooks", "/nonexistent/runbooks"),
        ("triage", "--alert", "/nonexistent/alert.json"),
        ("eval", "retrieval", "--corpus", "/nonexistent", "--queries", "/nonexistent.jsonl"),
    ],
)
def test_missing_files_give_one_line(args: tuple[str, ...], tmp_path: Path) -> None:
    result = run(*args, env={"TRIAGEBOT_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr


def test_bad_flag_is_a_usage_error() -> None:
    result = run("triage", "--no-such-flag", "x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_unreachable_database_gives_one_line(tmp_path: Path) -> None:
    result = run(
        "db",
        "upgrade",
        env={
            "TRIAGEBOT_DATA_DIR": str(tmp_path),
            "TRIAGEBOT_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        },
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "database unavailable" in lines[0], result.stderr


def test_bad_setting_gives_one_line(tmp_path: Path) -> None:
    result = run("db", "upgrade", env={"TRIAGEBOT_PORT": "eighty"})
    assert result.returncode == 1
    assert "invalid setting" in result.stderr and "Traceback" not in result.stderr


def test_a_map_setting_that_is_not_json_names_the_setting(tmp_path: Path) -> None:
    """TRIAGEBOT_CHANNEL_MODES=notjson stopped the command with 'error parsing value for field
    "channel_modes" from source "EnvSettingsSource"', not the documented one line
    'invalid setting <name>: <reason>'."""
    result = run("db", "upgrade", env={"TRIAGEBOT_DATA_DIR": str(tmp_path),
                                        "TRIAGEBOT_CHANNEL_MODES": "notjson"})
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: invalid setting channel_modes: not valid JSON"), lines


def test_bad_json_alert_file_gives_one_line(tmp_path: Path) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text("{not json", encoding="utf-8")
    result = run("triage", "--alert", str(alert), env={"TRIAGEBOT_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "not valid JSON" in result.stderr and "Traceback" not in result.stderr


def test_audit_export_gives_utc_times_in_jsonl_and_csv(sample_data_dir: Path, tmp_path: Path):
    import csv
    import io
    import json

    from tests.conftest import copy_data_dir

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    env = {"TRIAGEBOT_DATA_DIR": str(data_dir)}
    result = run("audit", "export", "--since", "2020-01-01", env=env)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows and {r["action"] for r in rows} >= {"model_promoted"}
    assert all(r["at"].endswith("+00:00") for r in rows)
    result = run("audit", "export", "--since", "2020-01-01", "--format", "csv", env=env)
    parsed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(parsed) == len(rows) and parsed[0]["at"].endswith("+00:00")
    bad = run("audit", "export", "--since", "yesterday", env=env)
    assert bad.returncode == 1 and "not an ISO date" in bad.stderr


def test_models_list_shows_whole_versions_and_show_takes_a_target(
    sample_data_dir: Path, tmp_path: Path
) -> None:
    from tests.conftest import copy_data_dir

    env = {"TRIAGEBOT_DATA_DIR": str(copy_data_dir(sample_data_dir, tmp_path / "data")),
           "COLUMNS": "80"}
    listed = run("models", "list", "--target", "category", env=env)
    assert listed.returncode == 0, listed.stderr
    versions = [w for w in listed.stdout.split() if w.startswith("category-")]
    assert versions and "…" not in listed.stdout  # copyable from an 80-column terminal
    assert "was trained on" not in listed.stdout
    # after a change of embedding backend (or model) the admin is told what to retrain
    switched = run("models", "list", "--target", "category",
                   env={**env, "TRIAGEBOT_EMBEDDING_BACKEND": "onnx-int8"})
    assert switched.returncode == 0, switched.stderr
    assert ("was trained on sentence-transformers/all-MiniLM-L6-v2 embeddings; this install "
            "makes sentence-transformers/all-MiniLM-L6-v2+onnx-int8") in switched.stdout
    narrow = run("models", "list", "--target", "category", env={**env, "COLUMNS": "50"})
    assert narrow.returncode == 0, narrow.stderr
    assert [w for w in narrow.stdout.split() if w.startswith("category-")] == versions
    for figure in ("accuracy", "macro-F1", "coverage", "n_train"):  # a block per version
        assert figure in narrow.stdout and "…" not in narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 50
    shown = run("models", "show", "category", env=env)  # a target: its active version
    assert shown.returncode == 0, shown.stderr
    assert '"status": "active"' in shown.stdout and '"target": "category"' in shown.stdout
    assert '"chosen_in_fit"' in shown.stdout and '"finer_field"' in shown.stdout
    # the confusion matrix as its largest cells, not a line per cell; --json has all of it
    assert '"matrix"' not in shown.stdout and "confusions on the held-out split" in shown.stdout
    assert len(shown.stdout.splitlines()) < 80
    whole = json.loads(run("models", "show", "category", "--json", env=env).stdout)
    assert whole["metrics"]["confusion"]["matrix"] and whole["status"] == "active"
    missing = run("models", "show", "no-such-thing", env=env)
    assert missing.returncode != 0 and "models list" in missing.stderr


@pytest.mark.parametrize(("sizes", "message"), [
    ("30,abc", "--train-sizes takes whole numbers separated by commas"),
    ("30,1", "every size must be 2 or more"),
])
def test_bad_train_sizes_give_one_line(sizes: str, message: str, tmp_path: Path) -> None:
    data = ROOT / "knowledge" / "samples" / "incidents.jsonl"
    result = run("eval", "classify", "--train", str(data), "--test", str(data),
                 "--target", "category", "--train-sizes", sizes,
                 env={"TRIAGEBOT_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_a_finer_field_no_row_has_is_refused_in_one_line_before_any_embedding(
        tmp_path: Path) -> None:
    data = ROOT / "knowledge" / "samples" / "incidents.jsonl"
    result = run("eval", "classify", "--train", str(data), "--test", str(data),
                 "--target", "category", "--finer", "exporter",
                 env={"TRIAGEBOT_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: --finer exporter: no training row has a 'exporter' label"], \
        result.stderr


def test_eval_classify_folds_prints_the_margin_fold_by_fold(tmp_path: Path) -> None:
    data = ROOT / "knowledge" / "samples" / "incidents.jsonl"
    result = run("eval", "classify", "--train", str(data), "--test", str(data),
                 "--target", "team", "--folds", "2",
                 env={"TRIAGEBOT_DATA_DIR": str(tmp_path), "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    margin = [line for line in result.stdout.splitlines()
              if line.startswith("accuracy margin over the baseline: ")]
    assert len(margin) == 1 and margin[0].count(",") == 1  # two folds listed
    assert "2-fold cross-validation, stratified, seed 0" in result.stdout


def test_eval_classify_says_which_finer_field_it_found(tmp_path: Path) -> None:
    from tests.bot.test_finer_labels import SERVICES

    rows = [{"id": f"r-{svc}-{i}-{n}", "title": f"{text} ({n})",
             "description": f"rule {i} of {svc}", "category": cat, "service": svc}
            for svc, (cat, texts) in SERVICES.items() for i, text in enumerate(texts)
            for n in range(3)]
    data = tmp_path / "rules.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    common = ("eval", "classify", "--train", str(data), "--test", str(data),
              "--target", "category")
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path / "d"), "COLUMNS": "100"}
    found = run(*common, env=env)
    assert found.returncode == 0, found.stderr
    assert "finer labels: service (" in found.stdout
    without = run(*common, "--finer", "none", env=env)
    assert without.returncode == 0 and "finer labels" not in without.stdout


def test_models_list_says_what_answers_a_field_without_a_trained_model(tmp_path: Path) -> None:
    taxonomy = tmp_path / "ours.yaml"
    taxonomy.write_text("team:\n  dba: Databases.\n  desk: Laptops.\n", encoding="utf-8")
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path / "data"), "TRIAGEBOT_TAXONOMY_FILE": str(taxonomy),
           "TRIAGEBOT_TARGETS": "team,severity", "COLUMNS": "100"}
    listed = run("models", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "team: zero-shot from ours.yaml (2 labels), no trained model active" in listed.stdout
    assert "severity: no model: no trained model active and no entry in ours.yaml" in listed.stdout
    taxonomy.write_text("team: [unclosed\n", encoding="utf-8")
    broken = run("models", "list", "--target", "team", env=env)
    assert broken.returncode == 0 and "is not valid YAML (line 2:" in broken.stdout
    assert "team: no model" in broken.stdout and "severity" not in broken.stdout


def test_import_refuses_what_it_cannot_read_in_one_line_before_writing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("id,title,team\n1,Disk full,dba\n", encoding="utf-8")
    binary = tmp_path / "b.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,title,team\n", encoding="utf-8")
    no_ids = tmp_path / "no-ids.jsonl"
    no_ids.write_text('{"title": "Disk full"}\n{"title": "VPN down"}\n', encoding="utf-8")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    cases = [
        (("tickets", str(csv_file), "--map", "team=nosuchcol"),
         "--map team=nosuchcol: column 'nosuchcol' is not in the CSV header "
         "(columns: id, title, team)"),
        (("incidents", str(binary)), "b.csv: not a text CSV file"),
        (("incidents", str(folder)), "folder.csv: is a directory"),
        # these used to print "0 added" and exit 0, as if the import had worked
        (("incidents", str(empty)), "empty.jsonl: no incidents in the file"),
        (("tickets", str(header_only)), "header.csv: no tickets in the file"),
        (("tickets", str(no_ids)), "no-ids.jsonl: none of its 2 rows could be read (line 1:"),
    ]
    for args, message in cases:
        result = run("import", *args, env={"TRIAGEBOT_DATA_DIR": str(data)})
        assert result.returncode == 1 and result.stdout == "", result.stdout
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], result.stderr
    assert not data.exists()  # refused before the database was opened
    result = run("eval", "classify", "--train", str(csv_file), "--test", str(csv_file),
                 "--target", "team", "--map", "team=nosuchcol",
                 env={"TRIAGEBOT_DATA_DIR": str(data)})
    assert result.returncode == 1 and "column 'nosuchcol' is not in the CSV" in result.stderr


def test_import_names_the_columns_it_keeps_as_extra_labels(tmp_path: Path) -> None:
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("id,title,grp,colour\n1,Disk full,dba,red\n", encoding="utf-8")
    result = run("import", "tickets", str(csv_file), "--map", "team=grp", "--no-train",
                 env={"TRIAGEBOT_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert "not record fields, kept as extra labels" in result.stdout
    assert result.stdout.splitlines()[0].endswith(": colour")
    assert "tickets: 1 added" in result.stdout


def test_samples_load_records_forced_promotions_as_forced(sample_data_dir: Path,
                                                          tmp_path: Path) -> None:
    from tests.conftest import copy_data_dir

    env = {"TRIAGEBOT_DATA_DIR": str(copy_data_dir(sample_data_dir, tmp_path / "data"))}
    result = run("audit", "export", "--since", "2020-01-01", env=env)
    assert result.returncode == 0, result.stderr
    reasons = [json.loads(line)["detail"]["reason"] for line in result.stdout.splitlines()
               if json.loads(line)["action"] == "model_promoted"]
    assert any(r.startswith("promoted because forced; the champion/challenger comparison "
                            "alone would have kept the zero-shot") for r in reasons), reasons
    assert not any("stays" in r for r in reasons), reasons


@pytest.mark.parametrize(("args", "message"), [
    (("disk full", "--kind", "bogus"),
     "error: --kind bogus: not a kind; use one of runbook, incident, ticket, alert"),
    (("",), "error: the search text is empty"),
    (("  \t",), "error: the search text is empty"),
])
def test_search_refuses_an_unknown_kind_and_an_empty_text(args: tuple[str, ...], message: str,
                                                          tmp_path: Path) -> None:
    result = run("search", *args, env={"TRIAGEBOT_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1 and result.stdout == ""
    assert [line for line in result.stderr.splitlines() if line.strip()] == [message]


def test_eval_incidents_names_its_figure_after_the_target(tmp_path: Path) -> None:
    rows = [{"id": f"i{n}", "title": f"{what} {n}", "team": team}
            for n in range(3) for what, team in (("disk full on db", "dba"),
                                                 ("laptop screen black", "desk"))]
    history = tmp_path / "h.jsonl"
    history.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path / "d"), "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    result = run("eval", "incidents", "--history", str(history), "--target", "team", env=env)
    assert result.returncode == 0, result.stderr
    assert "team_hit@1" in result.stdout and "category" not in result.stdout
    as_json = run("eval", "incidents", "--history", str(history), "--target", "team", "--json",
                  env=env)
    report = json.loads(as_json.stdout)
    assert "team_hit@1" in report and "team_hit@1" in report["baseline_bm25_neighbours"]
    assert "category_hit@1" not in report


def test_confusion_lines_name_the_largest_off_diagonal_cells_first() -> None:
    from bot.cli_commands import confusion_lines

    labels = ["db", "disk", "net"]
    assert confusion_lines(labels, [[5, 2, 0], [3, 4, 1], [0, 0, 9]], top=2) == [
        "largest confusions on the held-out split (true -> predicted: count):",
        "  disk -> db: 3",
        "  db -> disk: 2",
        "  ... and 1 more (--json shows the whole matrix)",
    ]
    assert confusion_lines(labels, [[1, 0, 0], [0, 1, 0], [0, 0, 1]]) == [
        "confusions on the held-out split: none"]


def test_output_that_is_not_a_terminal_is_not_cut_at_80_columns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.table import Table

    from bot.cli import stdout_console

    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.delenv("COLUMNS", raising=False)
    table = Table("version", "status", "n_train")
    table.add_row("root_cause-" + "2" * 80, "active", "84")
    stdout_console().print(table)
    assert "2" * 80 in out.getvalue() and "n_train" in out.getvalue()


def test_jobs_list_says_how_long_the_last_run_took_and_on_which_replica(tmp_path: Path) -> None:
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path), "COLUMNS": "160"}
    assert run("jobs", "run", "housekeeping", env=env).returncode == 0
    listed = run("jobs", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["job"]: r for r in json.loads(listed.stdout)}
    done = rows["housekeeping"]
    assert done["outcome"] == "ok" and done["seconds"] >= 0.0
    host, pid = done["replica"].rsplit(":", 1)
    assert host == socket.gethostname() and pid.isdigit()
    assert rows["retrain"] | {"cron": ""} == {"job": "retrain", "cron": "", "last_run": "",
                                              "outcome": "", "seconds": None, "replica": ""}
    table = run("jobs", "list", env=env).stdout
    assert "replica" in table and socket.gethostname() in table


@pytest.mark.parametrize("args", [("train", "--target", "servce"),
                                  ("models", "drift", "--target", "servce")])
def test_a_target_that_is_not_classified_is_refused_in_one_line(args: tuple[str, ...],
                                                                tmp_path: Path) -> None:
    # train used to answer "skipped: servce: 0 labelled examples ... (zero-shot stays
    # active)" and drift "servce: no retrain needed"
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path / "data"), "TRIAGEBOT_TARGETS": "category,team"}
    result = run(*args, env=env)
    assert result.returncode == 1, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: --target servce: not a classified field; TRIAGEBOT_TARGETS "
                     "lists category, team"], result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was loaded


def test_models_list_of_a_target_without_versions_says_so(tmp_path: Path) -> None:
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path / "data"), "TRIAGEBOT_TARGETS": "category"}
    result = run("models", "list", "--target", "servce", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("no model versions of 'servce' (classified fields: "
                                     "category)"), result.stdout


def test_every_option_and_argument_says_what_it_is() -> None:
    import typer.main

    from bot import cli_commands

    def walk(command, path: str):  # typer's own click: no isinstance check with click's
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")
        else:
            yield path, command

    silent = [f"{path} {param.name}"
              for path, command in walk(typer.main.get_command(cli_commands.app), "triagebot")
              for param in command.params
              if param.name != "help" and not (getattr(param, "help", None) or "").strip()]
    assert silent == []


def test_output_piped_into_a_reader_that_stops_early_is_no_error(tmp_path: Path) -> None:
    # `triagebot audit export | head -3` printed "error: BrokenPipeError: [Errno 32] ..."
    import os

    env = {**os.environ, "TRIAGEBOT_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "audit", "export", "--format",
                             "csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=ROOT)
    proc.stdout.close()  # long before the command writes its first line
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=300) == 0
    assert stderr == ""


@pytest.mark.parametrize(("args", "message"), [
    (("index", "runbooks", "{folder}", "--visibility", "privat:C0123"),
     "--visibility privat:C0123: use public, helpdesk or private:<channel id>"),
    (("import", "tickets", "{file}", "--visibility", "Public"),
     "--visibility Public: use public, helpdesk or private:<channel id>"),
    (("import", "tickets", "{file}", "--visibility", "private:"),
     "--visibility private:: use public, helpdesk or private:<channel id>"),
    (("index", "runbooks", "{file}"),
     "{file}: not a folder (index runbooks takes a folder of runbooks)"),
    (("index", "runbooks", "{folder}", "--source", "s" * 201),
     "--source is 201 characters long, at most 200 fit (name the source with --source)"),
])
def test_index_and_import_refuse_a_visibility_no_answer_would_match(
        args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    # an unknown visibility was stored as given: the items were then shown in no channel
    folder, file = tmp_path / "runbooks", tmp_path / "t.jsonl"
    folder.mkdir()
    file.write_text('{"id": "1", "title": "Disk full"}\n', encoding="utf-8")
    names = {"folder": str(folder), "file": str(file)}
    result = run(*(a.format(**names) for a in args),
                 env={"TRIAGEBOT_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {message.format(**names)}"], result.stderr
    assert not (tmp_path / "data").exists()


def test_promoting_the_active_version_changes_nothing_and_says_so(sample_data_dir: Path,
                                                                   tmp_path: Path) -> None:
    """It printed 'is now active' and wrote a manual-promotion audit row for nothing."""
    from tests.conftest import copy_data_dir

    env = {"TRIAGEBOT_DATA_DIR": str(copy_data_dir(sample_data_dir, tmp_path / "data")),
           "HF_HUB_OFFLINE": "1"}
    listed = run("models", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    active = next(r["version"] for r in json.loads(listed.stdout) if r["status"] == "active")
    result = run("models", "promote", active, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{active} is already active; nothing changed"
    audit = run("audit", "export", "--since", "2020-01-01", env=env)
    actions = [json.loads(line)["action"] for line in audit.stdout.splitlines()]
    assert "model_promoted_manually" not in actions


def test_triage_of_a_list_of_alerts_answers_each(sample_data_dir: Path, tmp_path: Path) -> None:
    import json

    from tests.conftest import copy_data_dir

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    alerts = tmp_path / "alerts.json"
    alerts.write_text(json.dumps([
        {"labels": {"alertname": "DiskFull", "instance": "db-01"},
         "annotations": {"summary": "disk full on /var/lib/postgresql on db-01"},
         "generatorURL": "http://prometheus:9090/graph?g0.expr=disk",
         "status": {"state": "active"}},
        {"labels": {"alertname": "CertificateExpiry", "service": "ingress"},
         "annotations": {"summary": "TLS certificate of the ingress expires in 3 days"},
         "status": {"state": "active"}},
    ]), encoding="utf-8")
    env = {"TRIAGEBOT_DATA_DIR": str(data_dir)}
    result = run("triage", "--alert", str(alerts), "--json", env=env)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert len(answers) == 2
    assert "disk full" in answers[0]["query"].lower()
    assert "certificate" in answers[1]["query"].lower()
    assert "disk-full" in answers[0]["runbooks"][0]["document_path"]
    assert answers[1]["runbooks"][0]["document_path"] == "network/tls-certificate-expiry.md"
    # the alert's own pages beside its answer, and only where it has some
    assert answers[0]["links"] == {"source": "http://prometheus:9090/graph?g0.expr=disk"}
    assert "links" not in answers[1]
    text = run("triage", "--alert", str(alerts), env=env)
    assert text.returncode == 0, text.stderr
    assert "1 of 2: " in text.stdout and "2 of 2: " in text.stdout
    assert "Source: http://prometheus:9090/graph?g0.expr=disk" in text.stdout


def test_indexed_runbooks_are_linked_from_answers(sample_data_dir: Path, tmp_path: Path) -> None:
    """An answer named its runbook by file path only: the on-call had to find the page.
    ``index runbooks --url TEMPLATE`` gives each runbook its web address (a front matter
    ``url:`` wins); changing the template updates the documents; a bad one is refused."""
    from tests.conftest import copy_data_dir

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    env = {"TRIAGEBOT_DATA_DIR": str(data_dir)}
    folder = tmp_path / "ops"
    (folder / "queues").mkdir(parents=True)
    (folder / "queues" / "WidgetQueueStalled.md").write_text(
        "# Widget queue stalled\n## Meaning\nThe widget assembly queue stopped draining; "
        "orders wait in the gizmo buffer.\n## Mitigation\nRestart the widget dispatcher.\n",
        encoding="utf-8")
    (folder / "queues" / "gizmo-buffer-full.md").write_text(
        "---\nurl: https://wiki.example.com/pages/gizmo\n---\n# Gizmo buffer full\n"
        "## Meaning\nThe gizmo buffer holds more than a million parts.\n", encoding="utf-8")
    template = "https://git.example.com/ops/runbooks/blob/main/{path}"
    first = run("index", "runbooks", str(folder), "--url", template, env=env)
    assert first.returncode == 0, first.stderr
    assert "2 added" in first.stdout, first.stdout
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"labels": {"alertname": "WidgetQueueStalled"}, "annotations": {
        "summary": "the widget assembly queue is not draining"}}), encoding="utf-8")
    answer = json.loads(run("triage", "--alert", str(alert), "--json", env=env).stdout)
    top = answer["runbooks"][0]
    assert top["document_path"] == "queues/WidgetQueueStalled.md", top
    url = "https://git.example.com/ops/runbooks/blob/main/queues/WidgetQueueStalled.md"
    assert top["url"] == url
    assert url in run("triage", "--alert", str(alert), env=env).stdout

    again = run("index", "runbooks", str(folder), "--url",
                "https://runbooks.example.com/{path_noext_lower}", env=env)
    assert again.returncode == 0, again.stderr
    # the template changed one URL; the front matter's stays: that document is unchanged
    assert "1 updated" in again.stdout and "1 unchanged" in again.stdout, again.stdout
    answer = json.loads(run("triage", "--alert", str(alert), "--json", env=env).stdout)
    assert answer["runbooks"][0]["url"] == "https://runbooks.example.com/queues/widgetqueuestalled"
    # a re-index that names no template keeps the addresses; --url '' removes them
    kept = run("index", "runbooks", str(folder), env=env)
    assert "2 unchanged" in kept.stdout, kept.stdout
    removed = run("index", "runbooks", str(folder), "--url", "", env=env)
    assert "1 updated" in removed.stdout and "1 unchanged" in removed.stdout, removed.stdout
    answer = json.loads(run("triage", "--alert", str(alert), "--json", env=env).stdout)
    assert answer["runbooks"][0]["url"] == ""

    bad = run("index", "runbooks", str(folder), "--url", "https://x/{name}", env=env)
    assert bad.returncode == 1
    assert "unknown field(s) ['name']" in bad.stderr, bad.stderr


def test_triage_redacts_its_input_with_the_redaction_settings(sample_data_dir: Path,
                                                               tmp_path: Path) -> None:
    """`triagebot triage` read its input before the settings configured redaction, so
    TRIAGEBOT_REDACT_EXTRA_PATTERNS was ignored (a customer number was printed and stored in
    the answer) and TRIAGEBOT_REDACT_PII=false still took e-mail addresses out."""
    import sqlite3

    from tests.conftest import copy_data_dir

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    text = "customer CUST-123456 (jane.doe@example.com) cannot log in to the VPN"
    env = {"TRIAGEBOT_DATA_DIR": str(data_dir),
           "TRIAGEBOT_REDACT_EXTRA_PATTERNS": '["CUST-[0-9]{6}"]'}
    result = run("triage", text, "--json", env=env)
    assert result.returncode == 0, result.stderr
    query = json.loads(result.stdout)["query"]
    assert "CUST-123456" not in query and "[REDACTED:" in query
    assert "jane.doe@example.com" not in query
    with sqlite3.connect(data_dir / "triagebot.db") as db:
        stored = [row[0] for row in db.execute("SELECT query FROM triage_answers")]
    assert stored and not any("CUST-123456" in q for q in stored)

    result = run("triage", text, "--json", env={"TRIAGEBOT_DATA_DIR": str(data_dir),
                                                 "TRIAGEBOT_REDACT_PII": "false"})
    assert result.returncode == 0, result.stderr
    assert "jane.doe@example.com" in json.loads(result.stdout)["query"]
