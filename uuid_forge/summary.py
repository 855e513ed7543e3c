"""The one-line summaries now live in :mod:`uuid_forge.report`, beside the reports they summarise;
this module keeps the old import path working."""

from __future__ import annotations

from .report import audit_summary, counts_text, plural, write_summary

__all__ = ["audit_summary", "counts_text", "plural", "write_summary"]
