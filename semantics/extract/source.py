"""Decoding a source file and mapping `ast` positions to byte offsets in the file's raw bytes.

`ast` reports columns in UTF-8 bytes of the decoded text, with the BOM stripped. For a UTF-8 file
(the common case) a raw offset is the line's start offset plus the column; for a file in a legacy
encoding (a PEP 263 coding cookie) the column is re-encoded in the file's own encoding.
"""

from __future__ import annotations

import codecs
import io
import re
import tokenize

import msgspec

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=]", re.M)
_UTF8_NAMES = frozenset({"utf-8", "utf-8-sig"})


class DecodeFailure(Exception):
    """The file's bytes cannot be turned into text (bad cookie, undecodable bytes)."""

    def __init__(self, code: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.line = line


class SourceText(msgspec.Struct):
    raw: bytes
    text: str
    encoding: str
    line_starts: list[int]  # raw byte offset of each line's start; line N at index N-1
    is_utf8: bool
    is_ascii: bool

    def offset(self, line: int, col: int) -> int:
        """Raw byte offset of an `ast` (1-based line, UTF-8 byte column) position."""
        start = self.line_starts[line - 1]
        if self.is_utf8:
            return start + col
        end = self.line_starts[line] if line < len(self.line_starts) else len(self.raw)
        utf8_line = self.raw[start:end].decode(self.encoding).encode("utf-8")
        return start + len(utf8_line[:col].decode("utf-8").encode(self.encoding))

    def end_position(self) -> tuple[int, int]:
        """(line, UTF-8 byte column) of the end of the file, as `ast` would report it."""
        last = len(self.line_starts)
        tail = self.raw[self.line_starts[-1] :]
        return last, len(tail) if self.is_utf8 else len(tail.decode(self.encoding).encode("utf-8"))

    def segment(self, bstart: int, bend: int) -> str:
        return self.raw[bstart:bend].decode(self.encoding, errors="replace")

    @property
    def line_count(self) -> int:
        """Lines as an editor counts them: a final line without a newline still counts."""
        last_line_empty = self.line_starts[-1] == len(self.raw)
        return len(self.line_starts) - (1 if last_line_empty else 0)


def line_starts_of(raw: bytes, first: int = 0) -> list[int]:
    """Start offsets of every line; `\\r\\n`, `\\r` and `\\n` all end a line, as for the tokenizer."""
    return [first, *(m.end() for m in _LINE_BREAK.finditer(raw, first))]


def decode_source(raw: bytes) -> SourceText:
    """Decode per PEP 263 (BOM, coding cookie, UTF-8 default); raise DecodeFailure if impossible."""
    # detect_encoding reads lines split on \n only; old Mac files end lines with a lone \r
    probe = raw.replace(b"\r", b"\n") if b"\n" not in raw[:4096] and b"\r" in raw[:4096] else raw
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(probe).readline)
    except SyntaxError as err:
        if _COOKIE.search(b"\n".join(probe.removeprefix(codecs.BOM_UTF8).splitlines()[:2])):
            raise DecodeFailure("bad_encoding_declaration", str(err), getattr(err, "lineno", None)) from err
        # no cookie: the first lines are simply not UTF-8
        raise _undecodable(raw, "utf-8") from err
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as err:
        raise _undecodable(raw, encoding) from err
    codec = codecs.lookup(encoding).name
    is_utf8 = codec in _UTF8_NAMES or encoding in _UTF8_NAMES
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    if encoding == "utf-8-sig":
        encoding = "utf-8"  # we slice raw bytes past the BOM ourselves
    return SourceText(
        raw=raw,
        text=text,
        encoding=encoding,
        line_starts=line_starts_of(raw, bom),
        is_utf8=is_utf8,
        is_ascii=raw.isascii(),
    )


def _undecodable(raw: bytes, encoding: str) -> DecodeFailure:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = len(line_starts_of(raw[: err.start]))
        return DecodeFailure("undecodable", f"cannot decode as {encoding}: {err.reason} at byte {err.start}", line)
    except LookupError as err:
        return DecodeFailure("undecodable", f"unknown encoding {encoding}: {err}")
    return DecodeFailure("undecodable", f"cannot decode as {encoding}")


def undecoded_source(raw: bytes) -> SourceText:
    """Positions for a file we could not decode: enough for its MODULE node's span."""
    return SourceText(
        raw=raw,
        text="",
        encoding="latin-1",
        line_starts=line_starts_of(raw),
        is_utf8=False,
        is_ascii=raw.isascii(),
    )
