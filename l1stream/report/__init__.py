"""The error report: the profile pass (histograms, L2, jackknife blocks, time series),
intervals, and rendering (HTML with inline SVG, matplotlib)."""

from l1stream.report.job import ReportJob, evaluate_report
from l1stream.report.report import Report

__all__ = ["Report", "ReportJob", "evaluate_report"]
