"""Evaluation: metrics JSON (PCC, MSE, bootstrap CI, subgroups), reports and plots."""
