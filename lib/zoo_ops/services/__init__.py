"""Services shared by the steps and the CLI: the whitelist, the automation, deploying and
waiting, test applications, preflights, the staging gate, step results."""
