"""Run reports: report.json (design.md keys), report.md and plots/ from a run folder's results."""
from .build import report_from_dir

__all__ = ["report_from_dir"]
