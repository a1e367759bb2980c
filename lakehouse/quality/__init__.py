"""Quality gates: the checks that stand between a build and the readers.

Every check (a dbt test or model contract, a source's freshness, a Great Expectations
expectation, a reconciliation with the source) reports a :class:`CheckResult`. The gate
(write-audit-publish) publishes the marts only when no error-level check failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warn"]
Kind = Literal["dbt_test", "dbt_model", "freshness", "expectation", "reconciliation"]
Layer = Literal["source", "bronze", "silver", "staging", "intermediate", "marts"]


@dataclass(frozen=True)
class CheckResult:
    """One check of one run.

    ``check`` is a stable name, the same from run to run, that the error and the
    ``mart_data_quality`` history use: ``dbt:<test name>``, ``dbt:model:<model>``,
    ``freshness:<source>.<table>``, ``gx:<suite>:<expectation>(<column>)``,
    ``reconcile:<table>:<measure>``.
    """

    check: str
    kind: Kind
    layer: Layer
    table: str
    severity: Severity  # what a failure means: "error" blocks publication
    passed: bool
    observed: str | None = None  # the value seen (a count, a lag, a checksum)
    expected: str | None = None  # what would have passed
    detail: str = ""  # one line for a person

    @property
    def blocks(self) -> bool:
        return not self.passed and self.severity == "error"

    @property
    def warns(self) -> bool:
        return not self.passed and self.severity == "warn"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
