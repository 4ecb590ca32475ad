"""Read the contact lists Italian municipal offices export, from bytes.

Pure code: the caller reads the upload and stores the result; this module only
decides what each row means. The rules, in the order a file meets them:

* Encoding: UTF-8 (with or without the BOM Excel writes), else Windows-1252,
  which is what Excel "CSV (delimitato dal separatore di elenco)" produces.
* Separator: ';' (Italian Excel) or ',', whichever the header line has more of
  outside quotes; a first line ``sep=;`` (an Excel hint) is honoured.
* Header: Italian or English names, compared without case, accents, spaces or
  punctuation, with synonyms (``_COLUMNS``). "telefono 2" counts as "telefono".
  Columns nobody recognises are ignored and listed in ``ignored_columns``.
* Rows: a row is imported whole or not at all. Every problem in a row becomes
  its own RowError, so the office can fix everything in one pass; a row with
  any problem is rejected, because importing a person without one of their
  numbers would silently lose that number. Line numbers are physical lines, so
  they match what the office sees in a text editor even after a quoted value
  that spans several lines.
* Values are kept as text: a name like ``<script>`` or ``=HYPERLINK(...)`` is
  a name. Escaping for HTML is the panel's job, and whoever exports contacts
  back to CSV must neutralise a leading '=', '+', '-' or '@' (formula
  injection); the importer must not rewrite what the office wrote.

Duplicate numbers across rows are not reported: a household shares a number,
and the importer merges those into one recipient.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from dataclasses import dataclass, field

from gateway.core.control_chars import control_characters
from gateway.core.phone import InvalidNumber, normalise_number


@dataclass(frozen=True)
class ParsedNumber:
    e164: str
    kind: str   # 'mobile' | 'landline'
    raw: str    # as written in the cell, for error messages and audit


@dataclass
class ParsedContact:
    line: int                   # physical line where the row starts; the header is line 1
    name: str
    numbers: list[ParsedNumber]  # de-duplicated within the row, order kept
    zone: str | None
    groups: list[str]
    language: str               # ISO 639-1
    vulnerable: bool
    needs: str | None           # None | 'text_only' | 'voice_only'
    address: str | None
    external_id: str | None
    consent_date: dt.date | None
    consent_source: str | None
    email: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None          # the header text as written in the file
    reason: str

    def __str__(self) -> str:
        if self.column is None:
            return f"line {self.line}: {self.reason}"
        return f"line {self.line}, column {self.column!r}: {self.reason}"


@dataclass
class ParseResult:
    contacts: list[ParsedContact] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    fatal: str | None = None    # the file as a whole cannot be imported; contacts is empty
    ignored_columns: list[str] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""


class CsvFormatError(ValueError):
    """Raised internally for a file that cannot be imported at all; becomes ``fatal``."""


# Column names after _header_key(), per field. Phone columns may repeat.
_COLUMNS: dict[str, set[str]] = {
    "full_name": {"nominativo", "cognome e nome", "nome e cognome", "cognome nome",
                  "nome cognome", "full name", "fullname", "nome completo"},
    "first_name": {"nome", "name", "first name", "firstname", "given name"},
    "last_name": {"cognome", "last name", "lastname", "surname", "family name"},
    "phone": {"telefono", "phone", "tel", "telefono fisso", "landline", "fisso",
              "tel fisso", "telephone", "phone number", "numero di telefono",
              "numero telefono", "numero", "recapito telefonico"},
    "mobile": {"cellulare", "mobile", "cell", "cellphone", "cell phone", "mobile phone",
               "telefono cellulare", "numero cellulare", "cel"},
    "numbers": {"numeri", "numbers", "numeri di telefono", "telefoni", "phones",
                "phone numbers", "recapiti", "recapiti telefonici"},
    "zone": {"zona", "zone", "frazione", "quartiere", "area"},
    "groups": {"gruppo", "gruppi", "group", "groups"},
    "language": {"lingua", "language", "lang"},
    "vulnerable": {"fragile", "vulnerabile", "vulnerable", "persona fragile",
                   "soggetto fragile", "fragilita"},
    "address": {"indirizzo", "address", "via", "residenza"},
    "email": {"email", "e mail", "mail", "posta elettronica"},
    "notes": {"note", "notes", "nota", "annotazioni"},
    "external_id": {"id", "codice", "external id", "externalid", "codice contatto"},
    "needs": {"esigenze", "needs", "esigenza", "esigenze particolari", "special needs"},
    "consent_date": {"consenso", "consent", "data consenso", "consent date",
                     "data del consenso"},
    "consent_source": {"fonte", "source", "origine", "fonte consenso", "consent source"},
}
_FIELD_BY_HEADER = {name: fld for fld, names in _COLUMNS.items() for name in names}
_PHONE_FIELDS = ("phone", "mobile", "numbers")

_TRUE = {"si", "s", "yes", "y", "true", "1", "x", "vero"}
_FALSE = {"no", "n", "false", "0", "", "falso"}

_LANGUAGES = {
    "it": {"it", "ita", "italiano", "italiana", "italian"},
    "en": {"en", "eng", "inglese", "english"},
    "ro": {"ro", "ron", "rum", "romeno", "rumeno", "romena", "rumena", "romanian"},
    "ar": {"ar", "ara", "arabo", "araba", "arabic"},
    "fr": {"fr", "fra", "fre", "francese", "french"},
    "de": {"de", "deu", "ger", "tedesco", "tedesca", "german"},
    "es": {"es", "spa", "spagnolo", "spagnola", "spanish"},
    "sq": {"sq", "sqi", "alb", "albanese", "albanian"},
    "uk": {"uk", "ukr", "ucraino", "ucraina", "ukrainian"},
    "zh": {"zh", "zho", "chi", "cinese", "chinese"},
}
_LANGUAGE_BY_NAME = {name: code for code, names in _LANGUAGES.items() for name in names}

# Matched as whole words in the accent-free, lower-case cell.
_TEXT_ONLY = re.compile(r"\b(sord[oaie]|sordomut[oaie]|non udente|ipoudente|deaf|"
                        r"hard of hearing|solo sms|text only|text_only)\b")
_VOICE_ONLY = re.compile(r"\b(ciec[oaih]e?|non vedente|nonvedente|ipovedente|blind|"
                         r"solo voce|solo chiamat[ae]|voice only|voice_only)\b")
_NO_NEEDS = {"", "no", "nessuna", "nessuno", "none", "-"}

# Separators between several numbers in one cell: newline, ';', ',', '/' and a
# spaced dash (an unspaced one is inside a number: 333-123-4567).
_NUMBER_SEPARATOR = re.compile(r"(\n|;|,|/|\s+-\s+)")
# A comma between digits is a decimal comma when 1-2 digits or an exponent
# follow: what a spreadsheet writes for a number cell (3331234567,00; 3,33E+09).
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=(?:\d{1,2}|\d+[eE][+-]?\d+)\s*(?:$|[\n;/]))")
_SPREADSHEET_NUMBER = re.compile(r"^\d+(?:[.,]\d+)?[eE][+-]?\d+$|^\d+,\d+$")
# ="0665211234" is how some exports keep Excel from dropping the leading zero.
_EXCEL_TEXT_FORMULA = re.compile(r'^="(.*)"$', re.DOTALL)
# A piece this short before '/' or ' - ' is a prefix, as in 06/6521234 or 333/1234567.
_MAX_PREFIX_DIGITS = 4

_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$")
_ITALIAN_DATE = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?: \d{1,2}:\d{2}(?::\d{2})?)?$")


def parse_contacts_csv(data: bytes, *, default_region: str = "IT") -> ParseResult:
    """Parse an uploaded contact list; never raises for bad content."""
    result = ParseResult()
    try:
        text, result.encoding = _decode(data)
        _parse_text(text, default_region, result)
    except CsvFormatError as exc:
        result.fatal = str(exc)
        result.contacts = []
    return result


def _decode(data: bytes) -> tuple[str, str]:
    if not data.strip():
        raise CsvFormatError("the file is empty")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvFormatError("the file is UTF-16 text; save it from the spreadsheet as "
                             "'CSV UTF-8' or 'CSV (separatore di elenco)'")
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise CsvFormatError("this is a spreadsheet workbook (.xlsx/.xls/.ods), not CSV; "
                             "save it as CSV first")
    try:
        text = data.decode("utf-8-sig")
        encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    except UnicodeDecodeError:
        try:
            # A BOM followed by non-UTF-8 bytes: a file re-saved by two programs.
            text, encoding = data.removeprefix(b"\xef\xbb\xbf").decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            # NUL bytes alone do not make a file binary (a stray one in a name rejects its row), but
            # with bytes no text encoding has, they do.
            raise CsvFormatError("the file is binary, not CSV text" if b"\x00" in data else
                                 "the file is not text (neither UTF-8 nor Windows-1252)") from None
    control = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\r\n\t")
    if control > len(text) // 100:
        raise CsvFormatError("the file is binary, not CSV text")
    return text, encoding


def _parse_text(text: str, region: str, result: ParseResult) -> None:
    lines = io.StringIO(text, newline="")
    first = lines.readline()
    hint = re.fullmatch(r"sep=([,;])", first.strip("\r\n"), flags=re.IGNORECASE)
    if hint:
        delimiter = hint.group(1)
        header_line_no = 1   # lines consumed before the csv reader starts
    else:
        delimiter = _guess_delimiter(text)
        header_line_no = 0
        lines.seek(0)
    result.delimiter = delimiter

    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    columns: list[tuple[str, str]] = []   # (field, header text) per position; field '' = ignored
    while True:
        start = header_line_no + reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise CsvFormatError(f"line {start}: a quoted value is never closed, so the "
                                     "rest of the file cannot be read") from None
            if header is None:
                raise CsvFormatError(f"line {start}: the header is not valid CSV ({exc})") from None
            result.errors.append(RowError(start, None, f"badly quoted value ({exc})"))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = row
            columns = _map_header(header, result)
            continue
        contact, errors = _parse_row(row, start, columns, region)
        result.errors.extend(errors)
        if contact is not None:
            result.contacts.append(contact)
    if header is None:
        raise CsvFormatError("the file is empty")


def _guess_delimiter(text: str) -> str:
    """';' or ',', whichever appears more often outside quotes in the header line.

    Counting beats csv.Sniffer here: the sniffer looks at data rows too, where
    commas inside names and numbers ("Rossi, Mario"; "333 1234567, 06 ...")
    outvote the real separator.
    """
    header_line = next((line for line in text.splitlines() if line.strip()), "")
    unquoted = re.sub(r'"[^"]*"', "", header_line)
    return ";" if unquoted.count(";") > unquoted.count(",") else ","


def _header_key(name: str) -> str:
    """'Telefono  Cellulare 2' -> 'telefono cellulare'; 'Città' -> 'citta'."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).lower()
    plain = re.sub(r"[^a-z0-9]+", " ", plain).strip()
    return re.sub(r"\s*\d+$", "", plain) or plain


def _map_header(header: list[str], result: ParseResult) -> list[tuple[str, str]]:
    columns = []
    for position, title in enumerate(header, start=1):
        fld = _FIELD_BY_HEADER.get(_header_key(title), "")
        if not fld:
            result.ignored_columns.append(title.strip() or f"(column {position} without a name)")
        columns.append((fld, title.strip()))
    if not any(fld for fld, _ in columns):
        found = ", ".join(repr(t) for t in header[:6])
        raise CsvFormatError("the first line has no known column names (found "
                             f"{found}); it must name the columns, e.g. nome;telefono")
    if not any(fld in _PHONE_FIELDS for fld, _ in columns):
        raise CsvFormatError("no phone column: name one 'telefono', 'cellulare' or 'numeri'")
    return columns


def _parse_row(row: list[str], line: int, columns: list[tuple[str, str]],
               region: str) -> tuple[ParsedContact | None, list[RowError]]:
    errors: list[RowError] = []
    extra = row[len(columns):]
    if any(cell.strip() for cell in extra):
        # Trailing empty cells (a separator at the end of the line) are harmless.
        errors.append(RowError(line, None, f"{len(row)} values but the header has "
                                           f"{len(columns)} columns (an unquoted separator?)"))
        return None, errors

    values: dict[str, str] = {}       # first non-empty value per single-valued field
    titles: dict[str, str] = {}
    numbers: list[ParsedNumber] = []
    for (fld, title), cell in zip(columns, row):
        if not fld:
            continue
        controls = control_characters(cell)
        if controls:
            # A NUL or another control character in a name or a zone: invisible, and refused by
            # PostgreSQL. The row is rejected (with the others, as every row problem), not the file.
            errors.append(RowError(line, title, f"contains control characters ({controls}): remove them"))
            continue
        if fld in _PHONE_FIELDS:
            for raw in split_numbers(cell):
                try:
                    numbers.append(_parse_number(raw, region))
                except InvalidNumber as exc:
                    errors.append(RowError(line, title, str(exc)))
        elif cell.strip() and fld not in values:
            values[fld] = cell.strip()
            titles[fld] = title
    if not numbers and not errors:
        errors.append(RowError(line, None, "no phone number"))

    def convert(fld: str, parse, default):
        if fld not in values:
            return default
        try:
            return parse(values[fld])
        except ValueError as exc:
            errors.append(RowError(line, titles[fld], str(exc)))
            return default

    contact = ParsedContact(
        line=line,
        name=_name(values),
        numbers=_unique(numbers),
        zone=values.get("zone"),
        groups=parse_groups(values.get("groups", "")),
        language=convert("language", parse_language, "it"),
        vulnerable=convert("vulnerable", parse_bool, False),
        needs=convert("needs", parse_needs, None),
        address=_one_line(values.get("address")),
        external_id=values.get("external_id"),
        consent_date=convert("consent_date", parse_date, None),
        consent_source=values.get("consent_source"),
        email=values.get("email"),
        notes=values.get("notes"),
    )
    return (None if errors else contact), errors


def _name(values: dict[str, str]) -> str:
    if "full_name" in values:
        return _one_line(values["full_name"]) or ""
    parts = [values.get("first_name", ""), values.get("last_name", "")]
    return _one_line(" ".join(p for p in parts if p)) or ""


def _one_line(value: str | None) -> str | None:
    return " ".join(value.split()) if value else None


def _unique(numbers: list[ParsedNumber]) -> list[ParsedNumber]:
    seen: set[str] = set()
    unique = []
    for number in numbers:
        if number.e164 not in seen:
            seen.add(number.e164)
            unique.append(number)
    return unique


def _parse_number(raw: str, region: str) -> ParsedNumber:
    if _SPREADSHEET_NUMBER.match(raw):
        raise InvalidNumber(f"{raw!r} was turned into a number by the spreadsheet; "
                            "format the column as text and export again")
    number = normalise_number(raw, region)
    return ParsedNumber(e164=number.e164, kind=number.kind, raw=raw)


def split_numbers(cell: str) -> list[str]:
    """The numbers written in one cell, as text: '06 6521 1234 / 333 1234567' -> two.

    A piece of at most four digits before '/' or ' - ' is a prefix of the next
    piece (06/6521234, 333/1234567): no number we can call is that short.
    """
    cell = cell.strip()
    wrapped = _EXCEL_TEXT_FORMULA.match(cell)
    if wrapped:
        cell = wrapped.group(1)
    masked = _DECIMAL_COMMA.sub("\x00", cell.replace("\r\n", "\n").replace("\r", "\n"))
    tokens = _NUMBER_SEPARATOR.split(masked)
    pieces: list[str] = [tokens[0].strip()]
    for separator, piece in zip(tokens[1::2], tokens[2::2]):
        previous = pieces[-1]
        digits = sum(ch.isdigit() for ch in previous)
        if separator.strip() in ("/", "-") and 0 < digits <= _MAX_PREFIX_DIGITS:
            pieces[-1] = f"{previous} {piece.strip()}"
        else:
            pieces.append(piece.strip())
    return [p.replace("\x00", ",") for p in pieces if p]


def parse_bool(value: str) -> bool:
    key = _plain(value)
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ValueError(f"{value!r} is not yes or no (write sì or no)")


def parse_language(value: str) -> str:
    key = re.split(r"[-_]", _plain(value))[0] if value.strip() else ""
    if not key:
        return "it"
    if key in _LANGUAGE_BY_NAME:
        return _LANGUAGE_BY_NAME[key]
    raise ValueError(f"{value!r} is not a known language (e.g. italiano, inglese, it, en)")


def parse_needs(value: str) -> str | None:
    key = _plain(value)
    if key in _NO_NEEDS:
        return None
    text_only = bool(_TEXT_ONLY.search(key))
    voice_only = bool(_VOICE_ONLY.search(key))
    if text_only and voice_only:
        raise ValueError(f"{value!r} asks for both text only and voice only")
    if text_only:
        return "text_only"
    if voice_only:
        return "voice_only"
    raise ValueError(f"{value!r} is not a known need (sordo/deaf: SMS only; "
                     "cieco/non vedente/blind: calls only)")


def parse_groups(value: str) -> list[str]:
    groups: list[str] = []
    for group in re.split(r"[,;|]", value):
        group = " ".join(group.split())
        if group and group not in groups:
            groups.append(group)
    return groups


def parse_date(value: str) -> dt.date:
    """2024-03-01 or 01/03/2024 (day first, as in Italy); a time part is ignored."""
    text = value.strip()
    try:
        if match := _ISO_DATE.match(text):
            year, month, day = match.groups()
            return dt.date(int(year), int(month), int(day))
        if match := _ITALIAN_DATE.match(text):
            day, month, year = match.groups()
            return dt.date(int(year), int(month), int(day))
    except ValueError:
        raise ValueError(f"{value!r} is not a real date") from None
    raise ValueError(f"{value!r} is not a date (write 2024-03-01 or 01/03/2024)")


def _plain(value: str) -> str:
    """Lower case, accents removed, spaces collapsed: 'Sì ' -> 'si'."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(text.split())
