"""Slack, hookwise's ChatOps surface, in one place.

hookwise's approvals, status messages and `/hookwise` command are Slack features, and
they share one workspace connection with the `slack.message` and `slack.update`
actions. So Slack lives wholly in core, with slack-sdk a declared dependency, rather
than split between core and a plugin: one settings model, one guarded client, one
place where Slack's errors are classified.

- `settings`: `integrations.slack`;
- `api`: the guarded slack-sdk clients, and Slack's failures turned into outcomes;
- `text`: escaping and summaries for messages people read;
- `chat`: the async client ChatOps uses (post, update, ephemeral, group members);
- `messages`: the approval request and the run's status message;
- `notify`: a rule's `notify:` message, kept up to date;
- `verify`: is a request from Slack (signature, timestamp);
- `interactions`, `commands`: the HTTP endpoints Slack calls;
- `actions`: `slack.message` and `slack.update`, a built-in plugin like any other.
"""
