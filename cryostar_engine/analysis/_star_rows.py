"""Row-level view of a STAR file's particle table, for copying rows verbatim.

The particle table's data lines are kept as the exact text of the input, so a subset keeps every
column, number format, comment, the optics table and any other block untouched.  Only the
``rlnImageName`` column can be rewritten (token-wise, the rest of the line unchanged).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io import read_star_tables

__all__ = ["StarRows", "read_star_rows"]

_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|\S+")


@dataclass
class StarRows:
    """A STAR file split around its particle rows.

    Attributes
    ----------
    path : the file.
    head : lines before the first particle row (blocks, loop header), with their line ends.
    rows : one line per particle, verbatim, in file order.
    tail : lines after the last particle row.
    columns : column names of the particle loop (without the leading ``_``), in order.
    """

    path: Path
    head: list
    rows: list
    tail: list
    columns: list

    def __len__(self) -> int:
        return len(self.rows)

    def column_index(self, name: str) -> int:
        try:
            return self.columns.index(name)
        except ValueError:
            raise InputError(f"{self.path}: the particle table has no {name} column") from None

    def token(self, row: int, col: int) -> str:
        """The ``col``-th value of particle ``row`` (quotes kept)."""
        toks = _TOKEN.findall(self.rows[row])
        if col >= len(toks):
            raise InputError(f"{self.path}: particle row {row + 1} has {len(toks)} values, "
                             f"the header names {len(self.columns)} columns")
        return toks[col]

    def with_token(self, row: int, col: int, value: str) -> str:
        """Line of particle ``row`` with its ``col``-th value replaced by ``value``."""
        line = self.rows[row]
        spans = [m.span() for m in _TOKEN.finditer(line)]
        a, b = spans[col]
        return line[:a] + value + line[b:]


def _blocks(lines) -> list[tuple[str, int, int]]:
    starts = [(ln.strip().split()[0], i) for i, ln in enumerate(lines)
              if ln.strip().startswith("data_")]
    return [(name, s, starts[j + 1][1] if j + 1 < len(starts) else len(lines))
            for j, (name, s) in enumerate(starts)]


def _loop(lines, start: int, end: int):
    """``(columns, first_data_line)`` of the first loop in ``lines[start:end]``, or None."""
    i = start
    while i < end and lines[i].strip() != "loop_":
        i += 1
    if i == end:
        return None
    cols, i = [], i + 1
    while i < end:
        s = lines[i].strip()
        if s.startswith("_"):
            cols.append(s.split()[0][1:])
        elif s and not s.startswith("#"):
            break
        i += 1
    return cols, i


def _is_row(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#")


def read_star_rows(star_path) -> StarRows:
    """Split a RELION particle STAR file (3.0 single table or 3.1+ optics + particles).

    The row count is checked against :func:`cryostar_engine.io.read_star_tables`; a file whose
    rows span several lines (never written by RELION) is refused with an :class:`InputError`.
    """
    star_path = Path(star_path)
    _, particles = read_star_tables(star_path)
    lines = star_path.read_text().splitlines(keepends=True)
    found = None
    for name, s, e in sorted(_blocks(lines), key=lambda b: b[0] != "data_particles"):
        loop = _loop(lines, s, e)
        if loop and (name == "data_particles" or "rlnImageName" in loop[0]):
            found = (loop, e)
            break
    if found is None:
        raise InputError(f"{star_path}: no particle table (a loop with rlnImageName) found")
    (columns, first), end = found
    idx = [i for i in range(first, end) if _is_row(lines[i])]
    stop = next((i for i in idx if lines[i].strip() in ("loop_",) or
                 lines[i].strip().startswith(("_", "data_"))), None)
    if stop is not None:
        idx = [i for i in idx if i < stop]
    if len(idx) != len(particles):
        raise InputError(f"{star_path}: found {len(idx)} particle lines but the STAR parser reads "
                         f"{len(particles)} particles; rewrite the file with one particle per line "
                         "(e.g. relion_star_handler)")
    return StarRows(path=star_path, head=lines[:idx[0]], rows=[lines[i] for i in idx],
                    tail=lines[idx[-1] + 1:], columns=columns)
