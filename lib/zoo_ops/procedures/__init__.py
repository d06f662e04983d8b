"""Procedures: one function per runbook step, taking an Environment and plain values."""
