import datetime as dt
from pathlib import Path

import pytest

from gateway.core.contacts_csv import (
    ParsedNumber, RowError, parse_bool, parse_contacts_csv, parse_date, parse_language,
    parse_needs, split_numbers,
)

DATA = Path(__file__).parent / "data"


def parse_ok(text: str, encoding: str = "utf-8"):
    """Parse, and insist that the file as a whole was importable."""
    result = parse_contacts_csv(text.encode(encoding))
    assert result.fatal is None, result.fatal
    return result


def only_contact(text: str):
    result = parse_ok(text)
    assert result.errors == []
    assert len(result.contacts) == 1
    return result.contacts[0]


def e164s(contact):
    return [n.e164 for n in contact.numbers]


# --- whole files, as offices export them ---------------------------------------

def test_italian_excel_export_semicolon_cp1252():
    result = parse_contacts_csv((DATA / "contacts_excel_it_cp1252.csv").read_bytes())
    assert result.fatal is None
    assert (result.encoding, result.delimiter) == ("cp1252", ";")
    assert result.ignored_columns == ["Città"]

    luca, ana = result.contacts
    assert luca.line == 2
    assert luca.name == "Lucà Nicolò"
    assert luca.numbers == [
        ParsedNumber("+390665211234", "landline", "06 6521 1234"),
        ParsedNumber("+393331234567", "mobile", "333.1234567"),
    ]
    assert luca.zone == "Santa Maria"
    assert luca.groups == ["volontari", "anziani"]
    assert (luca.language, luca.vulnerable, luca.needs) == ("it", True, None)
    assert luca.address == "Via Roma 1 scala B"
    assert luca.consent_date == dt.date(2024, 3, 1)
    assert luca.consent_source == "modulo cartaceo"

    # The quoted address spans lines 2-3, so Ana is on line 4, not 3.
    assert ana.line == 4
    assert (ana.name, ana.language, ana.vulnerable, ana.needs) == ("Ana Popescu", "ro", False, "text_only")
    assert ana.consent_date == dt.date(2024, 3, 2)

    # Zoè has one good and one bad number: rejected, on line 5.
    assert [str(e) for e in result.errors] == [
        "line 5, column 'Telefono': '06 abc' is not a phone number"]


def test_web_export_comma_utf8_bom_english_headers():
    result = parse_contacts_csv((DATA / "contacts_web_en_utf8_bom.csv").read_bytes())
    assert result.fatal is None
    assert (result.encoding, result.delimiter) == ("utf-8-sig", ",")
    assert result.errors == [] and result.ignored_columns == []

    jane, mario = result.contacts
    assert jane.name == "Jane O'Neil"           # the BOM did not end up in the 'Name' header
    assert e164s(jane) == ["+390665211234", "+393331234567", "+393471234567"]
    assert [n.kind for n in jane.numbers] == ["landline", "mobile", "mobile"]
    assert jane.groups == ["school", "red zone"]
    assert (jane.language, jane.vulnerable, jane.needs) == ("en", True, "voice_only")
    assert (jane.email, jane.notes, jane.external_id) == (
        "jane@example.org", 'uses "landline" mostly', "A-17")
    assert jane.consent_date == dt.date(2024, 2, 29)
    assert jane.consent_source == "web form"

    # The same mobile on two rows (a household) is not an error here.
    assert mario.line == 3 and e164s(mario) == ["+393331234567"]
    assert (mario.zone, mario.groups, mario.language, mario.consent_date) == (None, [], "it", None)


def test_plain_utf8_without_bom():
    result = parse_ok("nome,telefono\nNicolò Lucà,333 1234567\n")
    assert result.encoding == "utf-8"
    assert result.contacts[0].name == "Nicolò Lucà"


def test_utf8_with_bom_and_semicolons():
    result = parse_contacts_csv("nome;telefono\nLucà;06 6521 1234\n".encode("utf-8-sig"))
    assert (result.encoding, result.delimiter) == ("utf-8-sig", ";")
    assert result.contacts[0].name == "Lucà"


def test_cp1252_is_used_only_when_the_bytes_are_not_utf8():
    data = "nome;telefono\r\nFòrmica;333 1234567\r\n".encode("cp1252")
    result = parse_contacts_csv(data)
    assert result.encoding == "cp1252"
    assert result.contacts[0].name == "Fòrmica"


def test_bom_followed_by_cp1252_bytes_still_finds_the_header():
    result = parse_contacts_csv(b"\xef\xbb\xbfnome;telefono\r\nLuc\xe0;333 1234567\r\n")
    assert result.encoding == "cp1252"
    assert result.contacts[0].name == "Lucà"


def test_excel_sep_hint_line_is_honoured_and_counted():
    result = parse_ok("sep=;\nnome;telefono\nRossi, Mario;333 1234567\nBad;12\n")
    assert result.delimiter == ";"
    assert result.contacts[0].name == "Rossi, Mario"
    assert [str(e) for e in result.errors] == ["line 4, column 'telefono': '12' is too short"]


def test_delimiter_comes_from_the_header_not_from_commas_in_the_data():
    result = parse_ok('nome;telefono\n"Rossi, Mario";"333 1234567, 06 6521 1234"\n')
    assert result.delimiter == ";"
    assert e164s(result.contacts[0]) == ["+393331234567", "+390665211234"]


def test_old_mac_line_endings():
    result = parse_ok("nome;telefono\rA;333 1234567\rB;12\r")
    assert [c.line for c in result.contacts] == [2]
    assert result.errors[0].line == 3


# --- headers -------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    "Nominativo;Telefono", "COGNOME E NOME;TEL", "Nome e cognome;Cell", "name;phone",
    "  Full Name ;Mobile", "nome;numeri", "Name;Numbers", "nome;cellphone", "nome;Telefono fisso",
    "nome;landline", "nome;Telefono 2", "nome;TELEFONO_1",
])
def test_header_synonyms_case_spaces_and_numbering(header):
    contact = only_contact(f"{header}\nMario Rossi;333 1234567\n")
    assert contact.name == "Mario Rossi"
    assert e164s(contact) == ["+393331234567"]


@pytest.mark.parametrize("first, last", [("Nome", "Cognome"), ("first_name", "last_name"),
                                         ("First Name", "Surname")])
def test_separate_first_and_last_name_columns_are_joined(first, last):
    contact = only_contact(f"{last};{first};telefono\nRossi;Mario;333 1234567\n")
    assert contact.name == "Mario Rossi"


def test_first_name_only_or_last_name_only():
    result = parse_ok("nome;cognome;telefono\n;Rossi;333 1234567\nMario;;347 1234567\n")
    assert [c.name for c in result.contacts] == ["Rossi", "Mario"]


@pytest.mark.parametrize("header, field, expected", [
    ("Zona", "zone", "Centro"), ("Frazione", "zone", "Centro"), ("quartiere", "zone", "Centro"),
    ("Indirizzo", "address", "Centro"), ("address", "address", "Centro"),
    ("Codice", "external_id", "Centro"), ("ID", "external_id", "Centro"),
    ("external_id", "external_id", "Centro"), ("Fonte", "consent_source", "Centro"),
    ("E-mail", "email", "Centro"), ("Note", "notes", "Centro"),
])
def test_text_column_synonyms(header, field, expected):
    contact = only_contact(f"nome;telefono;{header}\nA;333 1234567;Centro\n")
    assert getattr(contact, field) == expected


def test_accents_in_header_names_do_not_matter():
    contact = only_contact("Nóme;Téléfono;Fragilità;Vulnerabìle\nA;333 1234567;sì;\n")
    assert contact.vulnerable is True


def test_unknown_columns_are_ignored_and_listed():
    result = parse_ok("nome;telefono;Codice Fiscale;;Città\nA;333 1234567;RSSMRA80A01H501U;x;Roma\n")
    assert result.ignored_columns == ["Codice Fiscale", "(column 4 without a name)", "Città"]
    assert result.contacts[0].name == "A"


def test_several_phone_columns_are_all_read():
    contact = only_contact("nome;telefono;cellulare;telefono 2;cellulare 2\n"
                           "A;06 6521 1234;333 1234567;;347 1234567\n")
    assert e164s(contact) == ["+390665211234", "+393331234567", "+393471234567"]


# --- numbers in a cell -----------------------------------------------------------

@pytest.mark.parametrize("cell, expected", [
    ("06 6521 1234 / 333 1234567", ["06 6521 1234", "333 1234567"]),
    ("06 6521 1234, 333 1234567", ["06 6521 1234", "333 1234567"]),
    ("3331234567,0665211234", ["3331234567", "0665211234"]),
    ("06 6521 1234; 333 1234567", ["06 6521 1234", "333 1234567"]),
    ("06 6521 1234 - 333 1234567", ["06 6521 1234", "333 1234567"]),
    ("06 6521 1234\n333 1234567", ["06 6521 1234", "333 1234567"]),
    ("333-123-4567", ["333-123-4567"]),           # unspaced dashes belong to the number
    ("06/6521234", ["06 6521234"]),               # area code / number, old Italian style
    ("333/1234567 / 06/65211234", ["333 1234567", "06 65211234"]),
    ("3331234567,00", ["3331234567,00"]),         # decimal comma: not two numbers
    ("3,33123E+09", ["3,33123E+09"]),
    ('="0665211234"', ["0665211234"]),            # Excel text-formula wrapper
    (" / ; ", []),
])
def test_split_numbers(cell, expected):
    assert split_numbers(cell) == expected


def test_several_numbers_in_one_quoted_cell_with_newline_and_duplicates():
    result = parse_ok('nome;numeri;cellulare\n'
                      '"A";"06 6521 1234\n+39 333 123 4567 / 0039 333 1234567";333.1234567\n'
                      'B;12;\n')
    contact = result.contacts[0]
    assert contact.numbers == [ParsedNumber("+390665211234", "landline", "06 6521 1234"),
                               ParsedNumber("+393331234567", "mobile", "+39 333 123 4567")]
    assert result.errors == [RowError(4, "numeri", "'12' is too short")]


def test_spreadsheet_mangled_numbers_get_a_clear_error():
    result = parse_ok("nome;telefono\nA;3,33123E+09\nB;3331234567,00\n")
    assert result.contacts == []
    assert [e.line for e in result.errors] == [2, 3]
    assert all("turned into a number by the spreadsheet" in e.reason for e in result.errors)


# --- row rules -------------------------------------------------------------------

def test_bad_row_line_number_counts_embedded_newlines():
    text = ('nome;telefono;note\n'
            'A;333 1234567;"prima riga\nseconda riga\nterza riga"\n'
            'B;06 abc;\n')
    result = parse_ok(text)
    assert result.contacts[0].line == 2
    assert result.contacts[0].notes == "prima riga\nseconda riga\nterza riga"
    assert [str(e) for e in result.errors] == [
        "line 5, column 'telefono': '06 abc' is not a phone number"]


def test_row_with_one_good_and_one_bad_number_is_rejected_with_one_error_per_bad_number():
    result = parse_ok("nome;telefono;cellulare\nA;06 abc;333 1234567 / 112\n")
    assert result.contacts == []
    assert [str(e) for e in result.errors] == [
        "line 2, column 'telefono': '06 abc' is not a phone number",
        "line 2, column 'cellulare': '112' is an emergency number, not a recipient",
    ]


def test_row_without_any_number_is_an_error():
    result = parse_ok("nome;telefono;cellulare\nA;;\nB;333 1234567;\n")
    assert [str(e) for e in result.errors] == ["line 2: no phone number"]
    assert [c.name for c in result.contacts] == ["B"]


def test_missing_name_is_allowed_and_blank_rows_are_skipped():
    result = parse_ok("nome;telefono\n\n;;\n;333 1234567\n\n")
    assert result.errors == []
    assert [(c.line, c.name) for c in result.contacts] == [(4, "")]


def test_row_with_more_fields_than_the_header_is_an_error():
    result = parse_ok("nome;telefono\nRossi;Mario;333 1234567\nB;347 1234567;;\n")
    assert [str(e) for e in result.errors] == [
        "line 2: 3 values but the header has 2 columns (an unquoted separator?)"]
    # Trailing empty values (a separator at the end of the line) are harmless.
    assert [c.name for c in result.contacts] == ["B"]


def test_row_with_fewer_fields_is_padded():
    contact = only_contact("nome;telefono;zona;lingua\nA;333 1234567\n")
    assert (contact.zone, contact.language) == (None, "it")


def test_badly_quoted_row_is_an_error_and_parsing_goes_on():
    result = parse_ok('nome;telefono\n"A"x;333 1234567\nB;347 1234567\n')
    assert [(e.line, e.column) for e in result.errors] == [(2, None)]
    assert "badly quoted" in result.errors[0].reason
    assert [(c.line, c.name) for c in result.contacts] == [(3, "B")]


def test_every_problem_in_a_row_is_reported():
    result = parse_ok("nome;telefono;lingua;fragile;consenso\nA;12;klingon;forse;31/02/2024\n")
    assert [e.column for e in result.errors] == ["telefono", "lingua", "fragile", "consenso"]
    assert result.contacts == []


def test_row_error_str_with_and_without_column():
    assert str(RowError(7, "telefono", "'06 abc' is not a phone number")) == \
        "line 7, column 'telefono': '06 abc' is not a phone number"
    assert str(RowError(3, None, "no phone number")) == "line 3: no phone number"


# --- fatal -------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (b"   \r\n\r\n", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    (bytes(range(256)) * 4, "binary"),
    (bytes(range(1, 256)) * 4, "not text"),                 # bytes cp1252 cannot decode
    (bytes(b for b in range(1, 256) if b not in b"\x81\x8d\x8f\x90\x9d") * 4, "binary"),
    (b"PK\x03\x04\x14\x00\x06\x00", "workbook"),
    ("nome;telefono\n".encode("utf-16"), "UTF-16"),
    (b"nome;zona;lingua\nA;Centro;it\n", "no phone column"),
    (b"Mario Rossi;333 1234567\nAnna;347 1234567\n", "no known column names"),
    (b'nome;telefono\nA;333 1234567\n"B;347 1234567\nC;06 6521 1234\n', "line 3: a quoted value is never closed"),
])
def test_fatal(data, message):
    result = parse_contacts_csv(data)
    assert result.fatal is not None and message in result.fatal
    assert result.contacts == []


def test_header_only_is_not_fatal_but_empty():
    result = parse_ok("nome;telefono\n")
    assert (result.contacts, result.errors) == ([], [])


# --- values ------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["si", "sì", "SÌ", "s", "yes", "Y", "true", "1", "x", "X"])
def test_bool_true(value):
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", ["no", "NO", "n", "false", "0", "", "  "])
def test_bool_false(value):
    assert parse_bool(value) is False


def test_bool_unknown_is_a_row_error():
    with pytest.raises(ValueError, match="'forse' is not yes or no"):
        parse_bool("forse")
    result = parse_ok("nome;telefono;vulnerabile\nA;333 1234567;forse\n")
    assert [str(e) for e in result.errors] == [
        "line 2, column 'vulnerabile': 'forse' is not yes or no (write sì or no)"]


@pytest.mark.parametrize("value, code", [
    ("Italiano", "it"), ("", "it"), ("inglese", "en"), ("English", "en"), ("romeno", "ro"),
    ("Rumeno", "ro"), ("arabo", "ar"), ("francese", "fr"), ("tedesco", "de"),
    ("spagnolo", "es"), ("albanese", "sq"), ("ucraino", "uk"), ("cinese", "zh"),
    ("EN", "en"), ("en-GB", "en"), ("it_IT", "it"),
])
def test_language(value, code):
    assert parse_language(value) == code


def test_unknown_language_is_a_row_error():
    result = parse_ok("nome;telefono;lingua\nA;333 1234567;klingon\n")
    assert result.contacts == []
    assert [(e.line, e.column) for e in result.errors] == [(2, "lingua")]
    assert "'klingon' is not a known language" in result.errors[0].reason


@pytest.mark.parametrize("value, need", [
    ("sordo", "text_only"), ("Sorda", "text_only"), ("deaf", "text_only"),
    ("non udente", "text_only"), ("cieco", "voice_only"), ("Non vedente", "voice_only"),
    ("blind", "voice_only"), ("cieca", "voice_only"), ("", None), ("nessuna", None),
])
def test_needs(value, need):
    assert parse_needs(value) == need


def test_unknown_or_contradictory_needs_are_row_errors():
    result = parse_ok("nome;telefono;esigenze\nA;333 1234567;carrozzina\nB;347 1234567;sordo e cieco\n")
    assert result.contacts == []
    assert [(e.line, e.column) for e in result.errors] == [(2, "esigenze"), (3, "esigenze")]


def test_groups_separated_by_comma_semicolon_or_bar():
    contact = only_contact('nome,telefono,gruppi\nA,333 1234567,"scuola; volontari | anziani,scuola"\n')
    assert contact.groups == ["scuola", "volontari", "anziani"]


@pytest.mark.parametrize("value, date", [
    ("2024-03-01", dt.date(2024, 3, 1)),
    ("01/03/2024", dt.date(2024, 3, 1)),      # day first, as in Italy
    ("1/3/2024", dt.date(2024, 3, 1)),
    ("01.03.2024", dt.date(2024, 3, 1)),
    ("01/03/2024 10:15", dt.date(2024, 3, 1)),
    ("2024-03-01 10:15:00", dt.date(2024, 3, 1)),
])
def test_consent_date(value, date):
    assert parse_date(value) == date


@pytest.mark.parametrize("value", ["31/02/2024", "03/13/2024", "marzo 2024", "24-03-01"])
def test_bad_consent_date(value):
    with pytest.raises(ValueError):
        parse_date(value)


def test_empty_consent_date_is_none():
    assert only_contact("nome;telefono;consenso\nA;333 1234567;\n").consent_date is None


# --- hostile content -----------------------------------------------------------------

def test_html_in_a_name_is_kept_as_text():
    # Escaping is the panel's job; the importer keeps what the office wrote.
    contact = only_contact("nome;telefono\n<script>alert(1)</script>;333 1234567\n")
    assert contact.name == "<script>alert(1)</script>"


def test_formula_in_a_name_is_kept_as_text():
    # Kept verbatim: whoever exports contacts back to CSV must neutralise it.
    contact = only_contact('nome;telefono\n"=HYPERLINK(""http://x"";""y"")";333 1234567\n')
    assert contact.name == '=HYPERLINK("http://x";"y")'
