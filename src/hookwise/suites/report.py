"""Rule test results for people (a line a case, each failure under it) and for CI (JUnit)."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

from hookwise.suites.cases import CaseResult


def text(results: list[CaseResult]) -> list[str]:
    lines = []
    for result in results:
        if not result.failures:
            lines.append(f"ok    {result.where}  {result.name}")
            continue
        lines.append(f"FAIL  {result.where}  {result.name}")
        lines += [f"      {line}" for failure in result.failures for line in failure.split("\n")]
    failed = sum(bool(result.failures) for result in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return lines


def junit(results: list[CaseResult], path: Path) -> None:
    """One <testsuite> per test file, one <testcase> per case, as CI systems read them."""
    root = ElementTree.Element("testsuites", name="hookwise rule tests")
    by_file: dict[str, list[CaseResult]] = {}
    for result in results:
        by_file.setdefault(result.file, []).append(result)
    for file, cases in by_file.items():
        failed = sum(bool(case.failures) for case in cases)
        suite = ElementTree.SubElement(
            root, "testsuite", name=file, tests=str(len(cases)), failures=str(failed)
        )
        for case in cases:
            element = ElementTree.SubElement(
                suite, "testcase", classname=file, name=case.name, file=file, line=str(case.line)
            )
            if case.failures:
                failure = ElementTree.SubElement(
                    element, "failure", message=case.failures[0].split("\n")[0]
                )
                failure.text = "\n".join(case.failures)
    ElementTree.indent(root)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
