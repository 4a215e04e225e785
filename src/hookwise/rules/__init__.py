"""The rule language: what a rule author writes, and how rule files are read and checked.

- `model`: a rule, its actions and retry policy;
- `when`: the conditions a rule matches on, shared with `wait_for.when`;
- `globs`: the patterns those conditions are written in, compiled once;
- `flow`: the flow-control blocks, and `BLOCKS`, the one table of them;
- `loader`: finding rule files and validating them, every mistake at `file:line:col`;
- `schema`: the JSON Schema of rule files, for editors.
"""

from hookwise.rules.loader import RULE_SUFFIXES, RuleLoader, rule_files
from hookwise.rules.model import ActionCall, RetryPolicy, Rule, RuleFile, referenced_env

__all__ = [
    "RULE_SUFFIXES",
    "ActionCall",
    "RetryPolicy",
    "Rule",
    "RuleFile",
    "RuleLoader",
    "referenced_env",
    "rule_files",
]
