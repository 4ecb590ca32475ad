"""`allerta contacts import` from the command line: exit codes, row errors on stderr, re-import, --strict."""
from pathlib import Path

from sqlalchemy import func, select

from gateway.shell.cli import main
from gateway.core.models import Contact, PhoneNumberRow

DATA = Path(__file__).parent / "data"


def _counts(services) -> tuple[int, int]:
    with services.sessions() as s:
        return (s.scalar(select(func.count()).select_from(Contact)),
                s.scalar(select(func.count()).select_from(PhoneNumberRow)))


def _import(config_path, path, *flags):
    return main(["--config", str(config_path), "contacts", "import", str(path), *flags])


def test_office_export_imports_with_its_bad_row_reported_and_reimports_unchanged(services, config_path, capsys):
    # Windows-1252, semicolons, Italian headers, a quoted address over two lines, "06 abc" on line 5.
    assert _import(config_path, DATA / "contacts_excel_it_cp1252.csv") == 2
    out, err = capsys.readouterr()
    assert "2 contacts created" in out and "1 row rejected" in out
    assert ":5:" in err or "line 5" in err, err
    first = _counts(services)
    assert first == (2, 3)
    assert _import(config_path, DATA / "contacts_excel_it_cp1252.csv") == 2
    out, _ = capsys.readouterr()
    assert "0 contacts created, 0 updated, 2 unchanged; 0 new numbers" in out
    assert _counts(services) == first


def test_strict_imports_nothing_when_a_row_is_bad(services, config_path, capsys):
    assert _import(config_path, DATA / "contacts_excel_it_cp1252.csv", "--strict") == 1
    assert "nothing imported (--strict" in capsys.readouterr().err
    assert _counts(services) == (0, 0)


def test_rows_rejected_counts_rows_not_errors(services, config_path, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("nome;cellulare;telefono\nA;333 111 0001;\nB;abc;06 xyz\nC;;\n", encoding="utf-8")
    assert _import(config_path, path) == 2
    out, err = capsys.readouterr()
    assert "1 contact created" in out and "2 rows rejected" in out
    assert err.count("\n") >= 2 and "abc" in err


def test_a_file_without_a_phone_column_is_fatal_and_imports_nothing(services, config_path, tmp_path, capsys):
    path = tmp_path / "nophone.csv"
    path.write_text("nome;zona\nA;Centro\n", encoding="utf-8")
    assert _import(config_path, path) == 1
    assert "nothing imported" in capsys.readouterr().err
    assert _counts(services) == (0, 0)


def test_a_missing_file_is_a_clear_error(services, config_path, tmp_path, capsys):
    assert _import(config_path, tmp_path / "absent.csv") != 0
    assert "absent.csv" in capsys.readouterr().err
