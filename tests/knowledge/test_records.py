from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge.records import RecordFileError, read_records
from knowledge.repair import repair_text


def test_jsonl_good_and_bad_rows(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a1", "source": "alert", "title": "Disk full", "severity": 2,
                    "categories": ["x", "y"], "split": "train"}),
        "",
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"title": "no id"}),
        json.dumps({"id": "a2"}),
        json.dumps({"id": "a1", "title": "duplicate"}),
        json.dumps({"id": "a3", "description": "only a description"}),
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = read_records(path)
    assert [r.id for r in result.records] == ["a1", "a3"]
    first = result.records[0]
    assert first.severity == "2" and first.team == "" and first.extra == {
        "categories": ["x", "y"], "split": "train"}
    errors = {e.line: e.message for e in result.errors}
    assert set(errors) == {3, 4, 5, 6, 7}
    assert errors[3].startswith("invalid JSON")
    assert "object" in errors[4]
    assert errors[5] == "missing id"
    assert "no text" in errors[6]
    assert "duplicate id 'a1'" in errors[7] and "line 1" in errors[7]


SERVICENOW = (
    "Number,Short description,Description,Category,Priority,Assignment group,"
    "Configuration item,Close notes,u_root_cause,Opened,Extra col\n"
    'INC001,VPN down,"Users cannot connect\nsince 9am",Network,1 - Critical,NetOps,vpn-gw,'
    "Restarted gateway,Expired cert,2024-01-02 10:00:00,foo\n"
    ",missing id,,,,,,,,,\n"
    "INC002,Printer jam,,Hardware,4 - Low,Desk,printer-3,,,,\n"
)


def test_servicenow_preset_and_multiline_rows(tmp_path: Path) -> None:
    path = tmp_path / "incidents.csv"
    path.write_text(SERVICENOW, encoding="utf-8")
    result = read_records(path, preset="servicenow", mapping={"service": "Configuration item",
                                                               "created_at": "Opened"})
    first, second = result.records
    assert first.id == "INC001" and first.title == "VPN down"
    assert first.description == "Users cannot connect\nsince 9am"
    assert first.team == "NetOps" and first.service == "vpn-gw"
    assert first.root_cause == "Expired cert" and first.resolution == "Restarted gateway"
    assert first.created_at == "2024-01-02 10:00:00" and first.source == "ticket"
    assert first.extra == {"Extra col": "foo"}
    assert second.id == "INC002"
    # the bad row starts on line 4 (the first record spans lines 2-3)
    assert [(e.line, e.message) for e in result.errors] == [(4, "missing id")]


def test_jira_preset(tmp_path: Path) -> None:
    path = tmp_path / "jira.csv"
    path.write_text(
        "Issue key,Summary,Description,Issue Type,Component/s,Priority,Assignee,Resolution,"
        "Created\nOPS-1,Checkout 500s,Errors after deploy,Incident,checkout,High,alice,Fixed,"
        "2024-03-01\n", encoding="utf-8")
    (rec,) = read_records(path, preset="jira").records
    assert (rec.id, rec.title, rec.category, rec.service, rec.priority) == (
        "OPS-1", "Checkout 500s", "Incident", "checkout", "High")
    assert rec.team == "alice" and rec.resolution == "Fixed" and rec.created_at == "2024-03-01"


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordFileError):
        read_records(tmp_path / "missing.jsonl")
    bad = tmp_path / "x.xml"
    bad.write_text("<a/>")
    with pytest.raises(RecordFileError, match="unsupported"):
        read_records(bad)
    good = tmp_path / "x.csv"
    good.write_text("id,title\n1,a\n")
    with pytest.raises(RecordFileError, match="preset"):
        read_records(good, preset="remedy")
    with pytest.raises(RecordFileError, match="unknown record fields"):
        read_records(good, mapping={"colour": "id"})


def test_latin1_csv_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes("id,title\n1,Caf\xe9 m\xe4chine\n".encode("latin-1"))
    assert read_records(path).records[0].title == "Café mächine"


def test_mojibake_and_control_characters_are_repaired(tmp_path: Path) -> None:
    """UTF-8 decoded as Windows-1252 somewhere upstream (8% of the public ITSM tickets)."""
    garbled = "vpn 无法连接，请帮忙 – café".encode().decode("cp1252")
    assert "è¿žæŽ¥" in garbled
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": "1", "title": garbled, "description": "ok\x1b[31m red\x00",
                                "team": "GRP_1"}), encoding="utf-8")
    record = read_records(path).records[0]
    assert record.title == "vpn 无法连接，请帮忙 – café"  # full-width comma kept
    assert record.description == "ok red"


def test_repair_leaves_clean_text_alone() -> None:
    for text in ("plain ascii & <b>html</b> &amp; \"quotes\"", "naïve “curly” ｆｕｌｌ", "日本語"):
        assert repair_text(text) == text
    assert repair_text("") == ""
    assert repair_text("שרת הדואר לא עונה") == "שרת הדואר לא עונה"  # right-to-left text as is


def test_repair_drops_bidi_overrides() -> None:
    # "invoice\u202egpj.exe" displays as "invoiceexe.jpg"
    assert repair_text("open invoice\u202egpj.exe now") == "open invoicegpj.exe now"
    assert repair_text("a\u2066b\u2069c\u202ad\u202c") == "abcd"
    assert repair_text("mark\u200fkept") == "mark\u200fkept"


def test_a_mapping_to_a_column_the_file_lacks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,Short description,team\n1,a,dba\n", encoding="utf-8")
    with pytest.raises(RecordFileError) as exc:
        read_records(path, mapping={"team": "nosuchcol"})
    assert str(exc.value) == ("--map team=nosuchcol: column 'nosuchcol' is not in the CSV header "
                              "(columns: id, Short description, team)")
    # matched as the reader matches columns: exactly or normalized
    assert read_records(path, mapping={"title": "short_description"}).records[0].title == "a"
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps({"id": "1", "title": "a", "grp": "x"}) + "\n", encoding="utf-8")
    assert read_records(jsonl, mapping={"team": "grp"}).records[0].team == "x"
    with pytest.raises(RecordFileError, match="key 'group' is in no JSON object"):
        read_records(jsonl, mapping={"team": "group"})


def test_columns_no_field_reads_are_reported_as_extra(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,title,colour,grp,size\n1,a,red,x,\n", encoding="utf-8")
    result = read_records(path, mapping={"team": "grp"})
    assert result.extra_columns == ("colour", "size")
    assert result.records[0].extra == {"colour": "red"}  # empty values are dropped


@pytest.mark.parametrize("name", ["b.csv", "b.jsonl"])
def test_binary_files_and_directories_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(RecordFileError, match=r"not a text (CSV|JSONL) file"):
        read_records(path)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(RecordFileError, match="is a directory"):
        read_records(folder)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_separated_by_semicolons_or_tabs_is_read(tmp_path: Path, sep: str) -> None:
    # Excel saves "CSV" with semicolons where the decimal mark is a comma (de, fr, ...); it
    # used to be one column named "Number;Short description;..." and every row "missing id"
    path = tmp_path / "export.csv"
    path.write_text(sep.join(["Number", "Short description", "Assignment group"]) + "\n"
                    + sep.join(["INC001", "Disk full, db-01 down", "dba"]) + "\n",
                    encoding="utf-8")
    result = read_records(path, preset="servicenow")
    assert not result.errors and result.extra_columns == ()
    [record] = result.records
    assert (record.id, record.title, record.team) == ("INC001", "Disk full, db-01 down", "dba")


def test_a_comma_csv_with_semicolons_in_its_text_stays_a_comma_csv(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('id,title\n1,"a; b; c"\n', encoding="utf-8")
    assert [r.title for r in read_records(path).records] == ["a; b; c"]


def test_an_id_or_label_too_long_to_store_is_a_bad_row_not_a_failed_import(tmp_path: Path) -> None:
    """On PostgreSQL one 250-character id (a misplaced column) failed the whole import with
    a DataError; such a row is now reported and skipped, the others read."""
    rows = [{"id": "X" * 201, "title": "Printer broken"},
            {"id": "T-2", "title": "VPN down", "category": "c" * 101},
            {"id": "T-3", "title": "Mail full", "team": "t" * 100, "priority": "P2"}]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = read_records(path)
    assert [r.id for r in result.records] == ["T-3"]
    assert [(e.line, e.message) for e in result.errors] == [
        (1, f"record {'X' * 60!r}: id is 201 characters long, at most 200 fit"),
        (2, "record 'T-2': category is 101 characters long, at most 100 fit")]


def test_the_length_limits_are_the_incident_columns() -> None:
    from bot.store.models import Incident
    from knowledge.records import FIELD_MAX_CHARS

    columns = Incident.__table__.c
    for name, limit in FIELD_MAX_CHARS.items():
        assert columns["external_id" if name == "id" else name].type.length == limit


def test_a_long_file_name_is_cut_to_its_column() -> None:
    from bot.knowledge_base import record_fields
    from bot.store.models import Incident
    from knowledge.records import Record

    fields = record_fields(Record(id="T-1", title="VPN down"), kind="ticket",
                           source_name="export-" + "x" * 240 + ".jsonl")
    assert len(fields["source_name"]) == Incident.__table__.c["source_name"].type.length


def test_text_under_common_column_names_is_read_without_a_mapping(tmp_path: Path) -> None:
    # public datasets and home-grown exports say "text", "body", "subject", "summary" ...
    path = tmp_path / "dump.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [
        {"id": "1", "text": "kernel: Out of memory: Killed process 4242", "label": "oom"},
        {"id": "2", "subject": "VPN down", "body": "cannot connect since 9am", "label": "net"},
        {"id": "3", "summary": "checkout 5xx", "message": "502 from the gateway"},
        # the field's own name wins over a common name, which then stays an extra column
        {"id": "4", "title": "disk full", "subject": "ignored", "description": "on db-01",
         "text": "also ignored"},
    ]), encoding="utf-8")
    result = read_records(path)
    assert not result.errors
    by_id = {r.id: r for r in result.records}
    assert by_id["1"].text == "kernel: Out of memory: Killed process 4242"
    assert (by_id["2"].title, by_id["2"].description) == ("VPN down", "cannot connect since 9am")
    assert (by_id["3"].title, by_id["3"].description) == ("checkout 5xx", "502 from the gateway")
    assert (by_id["4"].title, by_id["4"].description) == ("disk full", "on db-01")
    assert by_id["4"].extra == {"subject": "ignored", "text": "also ignored"}
    assert by_id["1"].extra == {"label": "oom"}
    # a preset's own column still comes first: Jira's "Summary" is the title
    jira = tmp_path / "jira.csv"
    jira.write_text("Issue key,Summary,Subject,Description\nOPS-1,db slow,x,p99 up\n",
                    encoding="utf-8")
    [issue] = read_records(jira, preset="jira").records
    assert (issue.title, issue.description) == ("db slow", "p99 up")


# --- the formats a user's export comes in (robustness sweep of `eval` and `import`) -----------

ROWS = [{"id": f"t{i}", "title": f"vpn down {i}", "description": "users cannot connect",
         "team": "net" if i % 2 else "desk"} for i in range(4)]


def _csv_text(delimiter: str = ",") -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(ROWS[0]), delimiter=delimiter,
                            lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(ROWS)
    return out.getvalue()


@pytest.mark.parametrize(("name", "content"), [
    # a JSON array (what most tools export), pretty-printed or on one line
    ("tickets.json", json.dumps(ROWS, indent=2).encode()),
    ("tickets.jsonl", json.dumps(ROWS).encode()),
    # an object wrapping the records: ServiceNow's {"records": [...]}, Jira's {"issues": [...]}
    ("tickets.json", json.dumps({"records": ROWS}).encode()),
    ("issues.json", json.dumps({"total": 4, "issues": ROWS}, indent=1).encode()),
    # JSONL that is named .json or .txt
    ("tickets.json", "\n".join(map(json.dumps, ROWS)).encode()),
    ("tickets.txt", "\n".join(map(json.dumps, ROWS)).encode()),
    # compressed, tab-separated, UTF-16 (Excel's "Unicode text")
    ("tickets.jsonl.gz", __import__("gzip").compress("\n".join(map(json.dumps, ROWS)).encode())),
    ("tickets.csv.gz", __import__("gzip").compress(_csv_text().encode())),
    ("tickets.tsv", _csv_text("\t").encode()),
    ("tickets.csv", _csv_text("|").encode()),
    ("tickets.csv", _csv_text().encode("utf-16")),
    ("tickets.txt", _csv_text("\t").encode("utf-16")),
    ("tickets.jsonl", "\n".join(map(json.dumps, ROWS)).encode("utf-16")),
])
def test_json_arrays_compressed_tab_separated_and_utf16_files_are_read(
        tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = read_records(path)
    assert result.errors == []
    assert [(r.id, r.title, r.team) for r in result.records] == [
        (r["id"], r["title"], r["team"]) for r in ROWS]


def test_a_json_array_reports_its_bad_items_by_line(tmp_path: Path) -> None:
    path = tmp_path / "tickets.json"
    items = [json.dumps(ROWS[0]), '"a string"', json.dumps({"id": "x"}), json.dumps(ROWS[1])]
    path.write_text("[\n  " + ",\n  ".join(items) + "\n]\n", encoding="utf-8")
    result = read_records(path)
    assert [r.id for r in result.records] == ["t0", "t1"]
    assert [(e.line, e.message[:20]) for e in result.errors] == [
        (3, "expected a JSON obje"), (4, "record 'x' has no te")]


def test_broken_gzip_and_unknown_types_are_one_line_errors(tmp_path: Path) -> None:
    broken = tmp_path / "tickets.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(RecordFileError, match=r"cannot read .*tickets\.jsonl\.gz"):
        read_records(broken)
    xlsx = tmp_path / "tickets.xlsx"
    xlsx.write_bytes(b"PK\x03\x04")
    with pytest.raises(RecordFileError, match=r"tickets\.xlsx: unsupported .* use .jsonl, "
                                              r".json, .csv or .tsv"):
        read_records(xlsx)


def test_nested_json_fields_are_found_by_name_or_by_dotted_path(tmp_path: Path) -> None:
    """A Jira REST export keeps its fields in a nested object: ``fields.summary``."""
    path = tmp_path / "jira.jsonl"
    path.write_text("\n".join(json.dumps({
        "key": f"OPS-{i}",
        "fields": {"summary": f"disk full {i}", "description": "on node-3",
                   "priority": {"name": "High"}, "customfield_1": {"value": "storage"}},
    }) for i in range(3)), encoding="utf-8")
    first = read_records(path, preset="jira").records[0]
    assert (first.id, first.title, first.description) == ("OPS-0", "disk full 0", "on node-3")
    assert first.priority == "High"  # a label as an object: its name
    mapped = read_records(path, mapping={"id": "key", "team": "fields.customfield_1.value",
                                         "title": "Fields.Summary"}).records[0]
    assert (mapped.id, mapped.team, mapped.title) == ("OPS-0", "storage", "disk full 0")
    with pytest.raises(RecordFileError, match=r"fields\.nope"):
        read_records(path, mapping={"team": "fields.nope"})
