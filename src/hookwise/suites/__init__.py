"""Rule test suites: cases of events with what the rules must make of them, run in CI.

`model` is the file format, `cases` runs one case through the real pipeline on a
throwaway store (flow control included), `report` prints failures and JUnit XML.
"""

from hookwise.suites.cases import CaseResult, run_suites, suite_files

__all__ = ["CaseResult", "run_suites", "suite_files"]
