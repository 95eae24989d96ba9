"""Stage 4, analysis: AUCs and their intervals, paired statistics, figures and the report."""
