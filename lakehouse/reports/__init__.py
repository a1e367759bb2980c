"""Weekly insight reports: what changed and why, per scope (the whole business, each
region), as HTML and PDF with charts, under ``<data_dir>/reports/<scope>/<week>/``.

Every number is computed by SQL over the published marts (the ``mart_report_*`` models
and the stock and data-health marts, :mod:`.facts`); the narrative comes from an
OpenAI-compatible endpoint when one is configured, checked against the facts, else from a
template (:mod:`.narrative`). The API lists and serves what :func:`build_reports` wrote
(:mod:`.store`)."""

from __future__ import annotations

from lakehouse.reports.build import BuiltReport, build_reports
from lakehouse.reports.store import WHOLE_BUSINESS, ReportEntry, find, list_reports

__all__ = ["WHOLE_BUSINESS", "BuiltReport", "ReportEntry", "build_reports", "find", "list_reports"]
