"""Errors a user can act on. The CLI prints their message on one line and exits non-zero."""

from __future__ import annotations


class LakehouseError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class ConfigError(LakehouseError):
    """The settings or the config file are invalid."""


class ContractError(LakehouseError):
    """A data contract file is missing or malformed."""


class SourceError(LakehouseError):
    """The change-event source cannot be read (missing directory, bad segment name...)."""


class PipelineError(LakehouseError):
    """A pipeline stage (dbt, a flow) failed; the message names the stage."""


class OltpError(LakehouseError):
    """The operational database cannot be installed, started, reached or simulated."""


class LakeBusy(LakehouseError):
    """Another writer holds the lake (a lander, a build) or keeps committing first."""


class LakeError(LakehouseError):
    """A Delta table of the lake cannot be read (a damaged transaction log, ...)."""


class ServiceError(LakehouseError):
    """A service cannot be installed, started or stopped; the message names the step."""


class MissingTableError(LakehouseError):
    """A table to read or check does not exist (yet): not ingested, or not built."""


class ForecastError(LakehouseError):
    """A forecasting job cannot run on its input (the panel breaks its contract, no
    champion to score with, ...)."""


class PropositionsError(LakehouseError):
    """A propositions job cannot run on its input (no purchases, no champion, ...)."""


class FeatureStoreError(LakehouseError):
    """The feature store cannot be applied, materialized or read (no exported tables, an
    unknown feature service, a Feast repository that does not load)."""


class SearchError(LakehouseError):
    """Product search cannot run: no index yet, a bad query or filter, a model that does
    not load, a search store that cannot be opened."""


class ReportError(LakehouseError):
    """An insight report cannot be built (no published marts, a chart with no data)."""


class ApiError(LakehouseError):
    """The API cannot start or serve (no key for a scope, a port in use)."""


class LineageError(LakehouseError):
    """The lineage record cannot answer: an unknown mart, or nothing recorded yet."""
