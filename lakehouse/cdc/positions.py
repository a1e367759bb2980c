"""Source positions: the order of change events, per connector (see docs/change-events.md).

Every connector's position is mapped to two columns, ``_commit_pos`` (monotonic across
transactions, in commit order) and ``_event_pos`` (the event's place inside its
transaction); events sort by ``(_commit_pos, _event_pos)``. Both are ``decimal(38, 0)``:
PostgreSQL LSNs fit in 64 bits, SQL Server's take 80.

- postgresql: ``_commit_pos`` = the last commit LSN (``sequence[0]``), else ``lsn``;
  ``_event_pos`` = ``lsn``, else (a row of an incremental snapshot, which has no ``lsn``)
  ``sequence[1]``: the position of the snapshot window's close.
- sqlserver: ``_commit_pos`` = ``commit_lsn``; ``_event_pos`` = ``change_lsn`` * 2^20 +
  ``event_serial_no``.

All of it is vectorised: SQL Server's hexadecimal LSNs are parsed with numpy and the
128-bit decimals built straight from their bytes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

POSITION_TYPE = pa.decimal128(38, 0)
SUPPORTED_CONNECTORS = ("postgresql", "sqlserver")
# Fields of ``source`` the positions come from (besides ``connector``).
SOURCE_FIELDS = [
    pa.field("txId", pa.int64()),
    pa.field("lsn", pa.int64()),
    pa.field("sequence", pa.string()),
    pa.field("commit_lsn", pa.string()),
    pa.field("change_lsn", pa.string()),
    pa.field("event_serial_no", pa.int64()),
]

# The last commit LSN is the first element of PostgreSQL's ``source.sequence``, the LSN
# of the last event processed the second.
_PG_SEQUENCE = r'^\[\s*(?:"(?P<commit>\d+)"|null)(?:\s*,\s*(?:"(?P<event>\d+)"|null))?'
# SQL Server: virtual log file, log block, slot: 8, 8 and 4 hexadecimal digits.
_MS_LSN = r"^[0-9a-fA-F]{8}:[0-9a-fA-F]{8}:[0-9a-fA-F]{4}$"
_MS_ZERO = "00000000:00000000:0000"
_SERIAL_BITS = 20
_HEX = np.zeros(256, dtype=np.uint64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def positions(source: pa.StructArray) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``(_commit_pos, _event_pos, problem)`` per event; ``problem`` is null or the reason
    the event's position is unusable."""
    connector = pc.struct_field(source, "connector")
    commit, event, problem = _postgres(source)
    is_sqlserver = pc.fill_null(pc.equal(connector, "sqlserver"), False)
    if pc.any(is_sqlserver).as_py():
        ms_commit, ms_event, ms_problem = _sqlserver(source)
        commit = pc.if_else(is_sqlserver, ms_commit, commit)
        event = pc.if_else(is_sqlserver, ms_event, event)
        problem = pc.if_else(is_sqlserver, ms_problem, problem)
    return commit, event, problem


def _postgres(source: pa.StructArray) -> tuple[pa.Array, pa.Array, pa.Array]:
    """A per-event LSN is not monotonic across concurrent transactions; the last commit
    LSN is. A snapshot row, or the first transaction streamed after it, has no last
    commit: it sorts at its own LSN.

    A row of an incremental snapshot (``source.snapshot`` "incremental") has no ``lsn``;
    it is sent when the connector streams the watermark that closes its chunk's window,
    with that event's ``sequence``: ``(last commit before the watermark's transaction,
    the watermark's LSN)``. That sorts it after every transaction committed before the
    watermark's and before every one committed after (their last commit is the
    watermark's, or later); a row changed inside the window is not sent (Debezium drops
    it from the chunk: the change's own event carries it)."""
    lsn = pc.struct_field(source, "lsn")
    sequence = pc.struct_field(source, "sequence")
    parts = pc.extract_regex(sequence, _PG_SEQUENCE)
    last_commit, last_event = (
        pc.cast(_blank_to_null(pc.struct_field(parts, name)), pa.int64())
        for name in ("commit", "event")
    )
    event = pc.coalesce(lsn, last_event)
    commit = pc.coalesce(last_commit, event)
    problem = pc.if_else(
        pc.is_null(event), pa.scalar("no source.lsn"), pa.scalar(None, pa.string())
    )
    return pc.cast(commit, POSITION_TYPE), pc.cast(event, POSITION_TYPE), problem


def _blank_to_null(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, ""), None, text)


def _sqlserver(source: pa.StructArray) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Commit LSN, then change LSN and the event's serial number within it. A snapshot
    row has no change LSN: it sorts at the snapshot's commit LSN."""
    commit_lsn = pc.struct_field(source, "commit_lsn")
    change_lsn = pc.coalesce(pc.struct_field(source, "change_lsn"), commit_lsn)
    serial = pc.fill_null(pc.struct_field(source, "event_serial_no"), 0)
    commit_ok = pc.fill_null(pc.match_substring_regex(commit_lsn, _MS_LSN), False)
    change_ok = pc.fill_null(pc.match_substring_regex(change_lsn, _MS_LSN), False)
    serial_ok = pc.and_(pc.greater_equal(serial, 0), pc.less(serial, 1 << _SERIAL_BITS))
    problem = pa.nulls(len(source), pa.string())
    for ok, message in (
        (serial_ok, "source.event_serial_no out of range"),
        (change_ok, "source.change_lsn is not a SQL Server LSN (xxxxxxxx:xxxxxxxx:xxxx)"),
        (commit_ok, "source.commit_lsn is not a SQL Server LSN (xxxxxxxx:xxxxxxxx:xxxx)"),
    ):
        problem = pc.if_else(ok, problem, message)
    c_hi, c_lo = _lsn_parts(commit_lsn, commit_ok)
    e_hi, e_lo = _lsn_parts(change_lsn, change_ok)
    serial_np = serial.to_numpy(zero_copy_only=False).astype(np.uint64)
    e_hi = (e_hi << np.uint64(_SERIAL_BITS)) | (e_lo >> np.uint64(64 - _SERIAL_BITS))
    e_lo = (e_lo << np.uint64(_SERIAL_BITS)) | serial_np
    return _decimal(c_hi, c_lo), _decimal(e_hi, e_lo), problem


def _lsn_parts(lsn: pa.Array, ok: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The 80-bit LSN as (high 16 bits, low 64 bits); rows that are not ``ok`` give 0."""
    text = pc.replace_substring(pc.if_else(ok, lsn, _MS_ZERO), ":", "")
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + n + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + 20 * n]
    digits = _HEX[data.reshape(n, 20)]
    hi = np.zeros(n, dtype=np.uint64)
    lo = np.zeros(n, dtype=np.uint64)
    for j in range(4):
        hi = (hi << np.uint64(4)) | digits[:, j]
    for j in range(4, 20):
        lo = (lo << np.uint64(4)) | digits[:, j]
    return hi, lo


def _decimal(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """Non-negative 128-bit integers from their high and low 64 bits, as decimal(38, 0)."""
    words = np.empty((len(lo), 2), dtype=np.uint64)
    words[:, 0], words[:, 1] = lo, hi  # little-endian: low word first
    return pa.Array.from_buffers(POSITION_TYPE, len(lo), [None, pa.py_buffer(words.tobytes())])
