"""Commands of the CLI that are not runbook steps: demo, status, history, report, rollout."""
