"""CSV cells a spreadsheet opens safely (OWASP's "CSV injection"): a text cell that starts with
`=`, `+`, `-`, `@`, a tab or a carriage return would be read as a formula, so every CSV export
writes it with a leading single quote, which spreadsheets take as "this is text".

Only text is quoted: numbers, and text that is just a number (`-0.5`), stay as they are. A text
that already starts with quotes before such a character gets one more, so that `csv_cell_read`
(the dataset import) gives back exactly what was exported.
"""

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def csv_cell(value):
    """The value to write to a CSV cell: text a spreadsheet would run as a formula starts with `'`."""
    return "'" + value if isinstance(value, str) and _quoted(value) else value


def csv_cell_read(text: str) -> str:
    """A cell as `csv_cell` wrote it, read back: without the quote it added."""
    return text[1:] if text.startswith("'") and _quoted(text[1:]) else text


def _quoted(text: str) -> bool:
    return text.lstrip("'").startswith(FORMULA_STARTS) and not NUMBER.fullmatch(text)
