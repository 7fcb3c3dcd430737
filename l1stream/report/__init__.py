"""The error report: the profile pass (histograms, L2, jackknife blocks, time series),
intervals, and rendering (HTML with inline SVG, matplotlib)."""

from l1stream.report.report import Report, ReportJob, evaluate_report

__all__ = ["Report", "ReportJob", "evaluate_report"]
