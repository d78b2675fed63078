#!/usr/bin/python3
# Reads a JUnit XML file with junitparser (Debian's python3-junitparser, the
# reader CI tools build on) and prints what a CI page would show, as JSON:
# per suite its name, counts and properties; per case its name and result
# (passed, failure, error, skipped) with the message. Run by
# tests/integration/ci_results_test.cpp with Debian's /usr/bin/python3.
import json
import sys

from junitparser import Error, Failure, JUnitXml, Skipped

xml = JUnitXml.fromfile(sys.argv[1])
suites = []
for suite in xml:
    cases = []
    for case in suite:
        result, message, text = "passed", None, None
        for r in case.result:
            if isinstance(r, Failure):
                result = "failure"
            elif isinstance(r, Error):
                result = "error"
            elif isinstance(r, Skipped):
                result = "skipped"
            message, text = r.message, r.text
        cases.append({"name": case.name, "classname": case.classname, "result": result,
                      "message": message, "text": text})
    suites.append({"name": suite.name, "tests": suite.tests, "failures": suite.failures,
                   "errors": suite.errors, "skipped": suite.skipped, "time": suite.time,
                   "properties": {p.name: p.value for p in suite.properties()}, "cases": cases})
print(json.dumps({"tests": xml.tests, "failures": xml.failures, "suites": suites}))
