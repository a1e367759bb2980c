"""Great Expectations checks of the quality gate: checkpoints and results. The suites they
run, generated from the contracts or written by hand, are :mod:`lakehouse.quality.suites`.

Each table is validated by a Checkpoint of its own, on a pandas frame
(:mod:`lakehouse.quality.frames`), whose actions write the Data Docs site under
``<docs_dir>/gx`` and alert (a warning in the log, a JSON POST to ``alert_webhook_url``)
when an expectation fails. The context is ephemeral: nothing is written but the Data Docs.
Every expectation gives one :class:`CheckResult`; its severity is ``meta.severity``. A
table holding personal data (PII columns, an unreviewed contract) is validated without
sample values: its results, Data Docs, alerts and quality marts carry counts only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

import great_expectations as gx
import pandas as pd
from great_expectations.checkpoint.actions import (
    ActionContext,
    UpdateDataDocsAction,
    ValidationAction,
)
from great_expectations.checkpoint.checkpoint import CheckpointResult
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from lakehouse.contracts import Contract, load_source_contracts
from lakehouse.exceptions import MissingTableError
from lakehouse.quality import CheckResult, Layer, Severity
from lakehouse.quality.alerts import post_json
from lakehouse.quality.frames import read_lake_table, read_mart
from lakehouse.quality.reconcile import IN_FLIGHT_MARGIN, source_kind
from lakehouse.quality.suites import LAYERS, ORPHAN, contract_suite, referenced, rule_suites
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

DOCS_SITE = "lakehouse"
# kwargs that say what is checked, not what passes
_DOMAIN_KWARGS = {"column", "column_A", "column_B", "column_list", "batch_id", "row_condition"}


@dataclass
class _Target:
    """One table to validate, by its suites."""

    layer: Layer
    table: str
    suites: list[gx.ExpectationSuite] = field(default_factory=list)
    contract: Contract | None = None
    # it holds personal data (a PII column, an unreviewed contract, a rule on a column
    # named like a PII column): its results, Data Docs, alerts and the quality marts
    # then carry counts, never sample values
    personal: bool = False

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.table}"

    def columns(self) -> list[str]:
        wanted = [*(self.contract.column_names if self.contract else [])]
        if self.layer == "bronze":
            wanted.append("_op")
        for suite in self.suites:
            wanted += _suite_columns(suite)
        return list(dict.fromkeys(wanted))


def _suite_columns(suite: gx.ExpectationSuite) -> list[str]:
    out: list[str] = []
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        out += _kwargs_columns(kwargs)
        out += _condition_columns(kwargs.get("row_condition"))
    return out


def _kwargs_columns(kwargs: Mapping[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list") or [])


def _condition_columns(condition: Any) -> list[str]:
    """Columns of a row condition, in its serialised form (a dict)."""
    if not isinstance(condition, dict):
        return []
    if "conditions" in condition:  # and / or
        return [c for part in condition["conditions"] for c in _condition_columns(part)]
    return [condition["column"]["name"]] if "column" in condition else []


def _condition_text(condition: Any) -> str:
    """A row condition (serialised) as a person reads it: ``status IN [shipped]``."""
    if not isinstance(condition, dict):
        return str(condition)
    kind = condition.get("type")
    if kind in ("and", "or"):
        return f" {kind} ".join(_condition_text(c) for c in condition["conditions"])
    if kind == "comparison":
        parameter = _text(condition["parameter"])
        return f"{condition['column']['name']} {condition['operator']} {parameter}"
    if kind == "nullity":
        return f"{condition['column']['name']} is {'' if condition['is_null'] else 'not '}null"
    return str(condition.get("pass_through_filter", condition))


class _Frames:
    """Reads the frame of each target; keeps the referenced keys for the foreign keys."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._keys: dict[tuple[str, str], tuple[pd.Series, pd.Timestamp | None]] = {}
        # a live source goes on while the lander lands its tables one after the other
        self.live = source_kind(settings) == "live"

    def frame(self, target: _Target) -> pd.DataFrame:
        if target.layer == "marts":
            return read_mart(self.settings, target.table, target.columns())
        columns = target.columns()
        if self.live and target.layer == "silver":
            columns.append("_source_ts")
        frame = read_lake_table(self.settings, target.layer, target.table, columns)
        if target.layer == "silver" and target.contract is not None:
            for column in target.contract.columns:
                if column.references and column.name in frame.columns:
                    values = frame[column.name]
                    known, newest = self._referenced_keys(*referenced(target.contract, column))
                    orphan = ~values.isin(known)
                    if newest is not None and "_source_ts" in frame.columns:
                        # committed after the newest referenced row silver held when its
                        # keys were read (less a margin): its parent may be in flight
                        orphan &= frame["_source_ts"] < newest - IN_FLIGHT_MARGIN
                    frame[column.name + ORPHAN] = values.where(orphan)
        return frame

    def _referenced_keys(self, table: str, key: str) -> tuple[pd.Series, pd.Timestamp | None]:
        """The referenced table's keys, and on a live source its newest source commit."""
        if (table, key) not in self._keys:
            columns = [key, "_source_ts"] if self.live else [key]
            try:
                keys = read_lake_table(self.settings, "silver", table, columns)
            except MissingTableError:  # no referenced row at all: its own suite says why
                keys = pd.DataFrame({key: []})
            newest = keys["_source_ts"].max() if "_source_ts" in keys and len(keys) else None
            self._keys[table, key] = (
                keys[key] if key in keys else pd.Series([]),
                None if pd.isna(newest) else newest,
            )
        return self._keys[table, key]


def _targets(settings: Settings, layers: Iterable[Layer]) -> list[_Target]:
    wanted = set(layers)
    contracts = load_source_contracts(settings) if wanted & {"bronze", "silver"} else {}
    every = contracts or load_source_contracts(settings, allow_empty=True)
    pii_names = {c.name for contract in every.values() for c in contract.columns if c.pii}
    targets: dict[tuple[str, str], _Target] = {}
    lake: tuple[Literal["bronze", "silver"], ...] = ("bronze", "silver")
    for layer in lake:
        for name, contract in sorted(contracts.items()) if layer in wanted else []:
            suite = contract_suite(layer, contract)
            personal = not contract.reviewed or any(c.pii for c in contract.columns)
            targets[layer, name] = _Target(layer, name, [suite], contract, personal)
    for suite in rule_suites():
        layer, table = suite.meta["layer"], suite.meta["table"]
        if layer in wanted:
            target = targets.setdefault((layer, table), _Target(layer, table))
            target.suites.append(suite)
            target.personal |= bool(pii_names & set(_suite_columns(suite)))
    return sorted(targets.values(), key=lambda t: (LAYERS.index(t.layer), t.table))


# -- running ----------------------------------------------------------------------------------


def run_expectations(
    settings: Settings, layers: Iterable[Layer] = LAYERS, *, run_id: str
) -> list[CheckResult]:
    """Validate every table of ``layers`` through its Checkpoint: one result per
    expectation, in a stable order. A table that does not exist (yet) is one failed
    error-level check per suite, ``gx:<suite>:expect_table_to_exist(<table>)``.

    The Data Docs site then shows this call's validations (GX drops the pages of results
    its stores no longer hold): validate all layers in one call to see them together."""
    started = time.monotonic()
    targets = _targets(settings, layers)
    context = _context(settings)
    source = context.data_sources.add_pandas("lakehouse")
    frames = _Frames(settings)
    results: list[CheckResult] = []
    for target in targets:
        begun = time.monotonic()
        try:
            frame = frames.frame(target)
        except MissingTableError as exc:
            log.warning("expectations: %s", exc)
            results += [_missing(target, suite.name, str(exc)) for suite in target.suites]
            continue
        checkpoint = _checkpoint(context, source, target, settings)
        outcome = checkpoint.run(
            batch_parameters={"dataframe": frame},
            # GX would read a run_time out of a run name that looks like a date
            run_id=RunIdentifier(run_name=run_id, run_time=datetime.now(UTC)),
        )
        for validation in outcome.run_results.values():
            results += [
                CheckResult(kind="expectation", layer=target.layer, table=target.table, **o)
                for o in _outcomes(validation)
            ]
        log.info("expectations: %s, %d rows, %.1fs", target.name, len(frame), _since(begun))
    log.info("expectations: %d checks in %.1fs", len(results), _since(started))
    return results


def _since(moment: float) -> float:
    return time.monotonic() - moment


def _missing(target: _Target, suite: str, why: str) -> CheckResult:
    return CheckResult(
        check=f"gx:{suite}:expect_table_to_exist({target.table})",
        kind="expectation",
        layer=target.layer,
        table=target.table,
        severity="error",
        passed=False,
        detail=why,
    )


def _context(settings: Settings) -> Any:
    """An ephemeral context, no usage statistics, Data Docs under ``<docs_dir>/gx``."""
    docs = settings.docs_dir / "gx"
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _checkpoint(context: Any, source: Any, target: _Target, settings: Settings) -> gx.Checkpoint:
    asset = source.add_dataframe_asset(target.name)
    batch = asset.add_batch_definition_whole_dataframe("frame")
    definitions = [
        context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=context.suites.add(suite))
        )
        for suite in target.suites
    ]
    actions: list[ValidationAction] = [
        UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE]),
        AlertAction(name="alert", webhook_url=settings.alert_webhook_url),
    ]
    checkpoint = gx.Checkpoint(
        name=target.name,
        validation_definitions=definitions,
        actions=actions,
        result_format=(
            {"result_format": "BASIC", "partial_unexpected_count": 0}  # counts, no values
            if target.personal
            else {"result_format": "BASIC"}
        ),
    )
    return cast(gx.Checkpoint, context.checkpoints.add(checkpoint))


def _outcomes(validation: ExpectationSuiteValidationResult) -> Iterator[dict[str, Any]]:
    """The CheckResult fields of each expectation of a suite's validation."""
    for result in validation.results:
        yield _outcome(validation.suite_name, result)


def _outcome(suite: str, result: ExpectationValidationResult) -> dict[str, Any]:
    config = result.expectation_config
    assert config is not None
    kwargs = config.kwargs
    meta = config.meta or {}
    severity = cast(Severity, meta.get("severity", "error"))
    details = result.result or {}
    unexpected = details.get("unexpected_count")
    observed = unexpected if unexpected is not None else details.get("observed_value")
    expected = ", ".join(
        f"{k}={_short(v)}" for k, v in sorted(kwargs.items()) if k not in _DOMAIN_KWARGS
    )
    error = _exception(result.exception_info)
    if error:
        detail = f"could not be evaluated: {error}"
    elif result.success:
        rows = details.get("element_count")
        detail = "passed" if unexpected is None else f"passed on {rows} rows"
    elif unexpected is not None:
        values = details.get("partial_unexpected_list") or []
        rows = details.get("element_count")
        detail = f"{unexpected} of {rows} rows unexpected"
        if values:  # none of a table holding personal data
            detail += f", e.g. {_short(values, 5)}"
    else:
        detail = f"observed {_short(observed)}"
    if kwargs.get("row_condition"):
        detail += f" (rows where {_condition_text(kwargs['row_condition'])})"
    if meta.get("rule"):
        detail = f"{meta['rule']}: {detail}"
    return {
        "check": f"gx:{suite}:{config.type}({','.join(_kwargs_columns(kwargs))})",
        "severity": severity,
        "passed": bool(result.success) and not error,
        "observed": None if observed is None else _short(observed),
        "expected": expected or None,
        "detail": " ".join(detail.split()),
    }


def _exception(info: Any) -> str | None:
    """The first exception message of a result (GX keys them by metric, or not)."""
    if not isinstance(info, dict):
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message") or "an exception")
    return None


def _short(value: Any, items: int = 10, chars: int = 200) -> str:
    text = _text(value, items)
    return text if len(text) <= chars else text[: chars - 3] + "..."


def _text(value: Any, items: int = 10) -> str:
    """Values as a person writes them: ``[-1, (3.5, 4.0)]``, not numpy reprs."""
    if isinstance(value, list | tuple):
        parts = [_text(v) for v in value[:items]] + (["..."] if len(value) > items else [])
        body = ", ".join(parts)
        return f"({body})" if isinstance(value, tuple) else f"[{body}]"
    return str(value)


# -- the alert action -------------------------------------------------------------------------


class AlertAction(ValidationAction):
    """When an expectation failed: a warning in the log naming the failed expectations,
    and a JSON summary POSTed to ``webhook_url`` (when set). A webhook that cannot be
    reached is logged, never raised: alerting must not break the validation."""

    type: Literal["lakehouse_alert"] = "lakehouse_alert"
    webhook_url: str | None = None
    timeout_seconds: float = 5.0

    def run(
        self, checkpoint_result: CheckpointResult, action_context: ActionContext | None = None
    ) -> dict[str, Any]:
        failed = [
            outcome
            for validation in checkpoint_result.run_results.values()
            for outcome in _outcomes(validation)
            if not outcome["passed"]
        ]
        if not failed:
            return {"alerted": False}
        name = checkpoint_result.checkpoint_config.name
        log.warning(
            "expectations failed on %s: %s",
            name,
            "; ".join(f"{o['check']} [{o['severity']}] {o['detail']}" for o in failed),
        )
        pages = self._get_data_docs_pages_from_prior_action(action_context) or {}
        payload = {
            "event": "expectations_failed",
            "summary": f"{len(failed)} expectation(s) failed on {name}",
            "checkpoint": name,
            "run_id": checkpoint_result.run_id.run_name,
            "blocking": any(o["severity"] == "error" for o in failed),
            "failed": failed,
            "data_docs": sorted({url for page in pages.values() for url in page.values()}),
        }
        return {"alerted": True, "posted": self._post(payload)}

    def _post(self, payload: dict[str, Any]) -> bool:
        return post_json(self.webhook_url, payload, self.timeout_seconds)
