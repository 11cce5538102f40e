"""The export format and the offline ``audit verify`` command."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from audit.checkpoint import generate_signing_key, sign_checkpoint
from audit.cli import main
from audit.events import Event
from audit.export import Export, ExportEntry, ExportError, read_export, write_csv, write_export
from audit.merkle import EMPTY_ROOT, root
from audit.verify import VerificationError, verify_export

pytestmark = pytest.mark.unit

NAME = "gateway.example/audit"
PRIVATE, VKEY = generate_signing_key(NAME, seed=b"\x05" * 32)


def entries(n: int, actor: str = "u") -> list[ExportEntry]:
    return [
        ExportEntry.from_canonical(i, Event("uploader:item:viewed", actor_id=f"{actor}{i}",
                                            time="2026-01-01T00:00:00Z",
                                            event_id=f"{i:032x}").canonical())
        for i in range(n)
    ]


def checkpoint(items: list[ExportEntry], size: int, private: bytes = PRIVATE) -> str:
    return sign_checkpoint(NAME, size, root(bytes.fromhex(e.leaf_hash) for e in items[:size]),
                           NAME, private)


def export_text(items: list[ExportEntry], notes: list[str], vkey: str | None = VKEY) -> str:
    fp = io.StringIO()
    write_export(items, notes, vkey, fp)
    return fp.getvalue()


@pytest.fixture
def log() -> tuple[list[ExportEntry], list[str]]:
    items = entries(10)
    return items, [checkpoint(items, 4), checkpoint(items, 10)]


# -- the format -----------------------------------------------------------------------


def test_export_round_trip(log: tuple[list[ExportEntry], list[str]]) -> None:
    items, notes = log
    text = export_text(items, notes)
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0] == {"type": "public_key", "vkey": VKEY}
    assert [line["type"] for line in lines[1:3]] == ["checkpoint", "checkpoint"]
    assert lines[3] == {"position": 0, "leaf_hash": items[0].leaf_hash, "entry": items[0].entry}
    assert read_export(io.StringIO(text)) == Export(VKEY, notes, items)


def test_csv_has_the_entry_columns(log: tuple[list[ExportEntry], list[str]]) -> None:
    fp = io.StringIO()
    write_csv(log[0], fp)
    rows = list(csv.reader(io.StringIO(fp.getvalue())))
    assert rows[0] == ["position", "leaf_hash", "entry"]
    assert rows[1] == ["0", log[0][0].leaf_hash, log[0][0].entry]


GOOD = '{"position":0,"leaf_hash":"' + "0" * 64 + '","entry":"{}"}\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "{not json\n", "line 2: not valid JSON"),
        (GOOD + "\n", "line 2: not valid JSON"),  # blank line
        (GOOD[:-1] + " trailing\n", "line 1: text after the JSON object"),
        ("[1, 2]\n", "not a JSON object"),
        (GOOD + '{"type":"checkpoint","note":"x"}\n', "must precede the entries"),
        ('{"type":"signature","note":"x"}\n', "unknown record type"),
        ('{"type":"public_key","vkey":"a"}\n' * 2, "a second public_key"),
        ('{"type":"checkpoint","note":5}\n', "note must be a string"),
        (GOOD.replace('"position":0', '"position":true'), "non-negative integer"),
        (GOOD.replace('"position":0', '"position":-1'), "non-negative integer"),
        (GOOD.replace('"entry":"{}"', '"entry":{}'), "must be strings"),
        (GOOD.replace('"entry":"{}"', '"entry":"{}","extra":1'), "exactly position"),
        (GOOD.replace('"entry":"{}"', '"entri":"{}"'), "exactly position"),
    ],
)
def test_malformed_exports_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        read_export(io.StringIO(text))


# -- verification ---------------------------------------------------------------------


def test_verifies_with_the_given_key(log: tuple[list[ExportEntry], list[str]]) -> None:
    items, notes = log
    result = verify_export(read_export(io.StringIO(export_text(items, notes))), VKEY)
    assert (result.size, result.warnings) == (10, [])
    assert result.root == root(bytes.fromhex(e.leaf_hash) for e in items)


def test_trusting_the_exports_own_key_is_flagged(
    log: tuple[list[ExportEntry], list[str]]
) -> None:
    result = verify_export(Export(VKEY, log[1], log[0]))
    assert any("trusting the public key inside the export" in w for w in result.warnings)


def test_an_empty_log_verifies_against_the_empty_root() -> None:
    note = sign_checkpoint(NAME, 0, EMPTY_ROOT, NAME, PRIVATE)
    assert verify_export(Export(VKEY, [note], []), VKEY).root == EMPTY_ROOT


@pytest.mark.parametrize(
    ("export", "message"),
    [
        (Export(None, [], []), "no public key"),
        (Export(VKEY, [], entries(3)), "no signed checkpoint"),
        (Export("nonsense", [], []), "public key:"),
    ],
)
def test_nothing_to_trust_is_a_failure(export: Export, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        verify_export(export)


def test_checkpoints_of_another_log_are_refused() -> None:
    items = entries(3)
    other = sign_checkpoint("other.example/log", 3, root(bytes.fromhex(e.leaf_hash)
                                                         for e in items), NAME, PRIVATE)
    with pytest.raises(VerificationError, match="different logs"):
        verify_export(Export(VKEY, [checkpoint(items, 3), other], items), VKEY)


def test_unsigned_tail_is_a_failure() -> None:
    items = entries(6)
    with pytest.raises(VerificationError, match="position 4: not covered") as info:
        verify_export(Export(VKEY, [checkpoint(items, 4)], items), VKEY)
    assert info.value.position == 4


# -- the command ----------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path, log: tuple[list[ExportEntry], list[str]]) -> dict[str, Path]:
    items, notes = log
    paths = {
        "export": tmp_path / "export.jsonl",
        "earlier": tmp_path / "earlier.jsonl",
        "note": tmp_path / "checkpoint.txt",
        "vkey": tmp_path / "log.vkey",
    }
    paths["export"].write_text(export_text(items, notes))
    paths["earlier"].write_text(export_text(items[:4], notes[:1]))
    paths["note"].write_text(notes[0])
    paths["vkey"].write_text(VKEY + "\n")
    return paths


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_cli_ok(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", str(files["export"]), "--pubkey", VKEY)
    assert code == 0
    assert out.startswith("OK size=10 root=") and len(out.split("root=")[1].strip()) == 64
    assert "warning" not in err


def test_cli_pubkey_from_file_and_held_checkpoints(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "verify", str(files["export"]), "--pubkey", str(files["vkey"]),
                       "--checkpoint", str(files["note"]), "--checkpoint", str(files["earlier"]))
    assert (code, out[:10]) == (0, "OK size=10")


def test_cli_warns_without_pubkey(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "verify", str(files["export"]))
    assert code == 0
    assert "warning: trusting the public key inside the export" in err


def test_cli_names_the_edited_entry(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = files["export"].read_text().replace('"actor_id\\":\\"u7', '"actor_id\\":\\"u8')
    files["export"].write_text(text)
    code, out, _ = run(capsys, "verify", str(files["export"]), "--pubkey", VKEY)
    assert code == 1
    assert out == "FAILED: entry at position 7: leaf hash does not match its content\n"


def test_cli_reports_a_malformed_export_plainly(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["export"].write_text(files["export"].read_text() + "{oops\n")
    code, out, _ = run(capsys, "verify", str(files["export"]), "--pubkey", VKEY)
    assert (code, out) == (1, "FAILED: export is malformed: line 14: not valid JSON\n")


def test_cli_refuses_a_checkpoint_by_another_key(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    log: tuple[list[ExportEntry], list[str]],
) -> None:
    other, _ = generate_signing_key(NAME)
    files["note"].write_text(checkpoint(log[0], 4, other))
    code, out, _ = run(capsys, "verify", str(files["export"]), "--pubkey", VKEY,
                       "--checkpoint", str(files["note"]))
    assert code == 1
    assert "not signed by key" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["verify"],
        ["frobnicate", "x"],
        ["verify", "{missing}"],
        ["verify", "{export}", "--pubkey", "not-a-key"],
        ["verify", "{export}", "--checkpoint", "{missing}"],
    ],
)
def test_cli_usage_errors_exit_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    argv = [a.format(export=files["export"], missing=files["export"].parent / "nope")
            for a in argv]
    try:
        code, _, err = run(capsys, *argv)
    except SystemExit as exc:  # argparse's own usage errors
        code, err = int(str(exc.code)), capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and err.strip()


def test_cli_unexpected_error_is_not_a_traceback(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("audit.cli.verify_export", boom)
    code, out, _ = run(capsys, "verify", str(files["export"]), "--pubkey", VKEY)
    assert (code, out) == (1, "FAILED: internal error while verifying (RuntimeError)\n")
