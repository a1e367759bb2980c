"""Source positions: the order of change events, per connector (see docs/change-events.md).

Every connector's position is mapped to two int64 columns, ``_commit_pos`` (monotonic
across transactions, in commit order) and ``_event_pos`` (the event's place inside its
transaction). Events sort by ``(_commit_pos, _event_pos)``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# The last commit LSN is the first element of PostgreSQL's ``source.sequence``.
_PG_LAST_COMMIT = r'^\[\s*(?:"(?P<commit>\d+)"|null)'

SUPPORTED_CONNECTORS = ("postgresql",)


def postgres_positions(source: pa.StructArray) -> tuple[pa.Array, pa.Array]:
    """``(_commit_pos, _event_pos)`` of PostgreSQL events: (last commit LSN, LSN).

    A per-event LSN is not monotonic across concurrent transactions; the last commit LSN
    is. A snapshot row (or a record without ``sequence``) has no last commit: it sorts
    at its own LSN.
    """
    lsn = pc.struct_field(source, "lsn")
    sequence = pc.struct_field(source, "sequence")
    extracted = pc.struct_field(pc.extract_regex(sequence, _PG_LAST_COMMIT), "commit")
    commit = pc.if_else(pc.equal(extracted, ""), None, extracted)
    commit_pos = pc.coalesce(pc.cast(commit, pa.int64()), lsn)
    return commit_pos, lsn
