"""ChatOps on Slack: approval requests, status messages kept up to date, /hookwise.

`client` talks to Slack, `messages` lays out what people read, `verify` checks that a
request came from Slack, `approvals` and `notify` are the runner's side, and
`interactions` and `commands` are the two HTTP endpoints Slack calls.
"""
