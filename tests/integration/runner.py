"""Runs the integration test modules given on the command line with
unittest and prints one summary line `N passed, N failed` that tests/run.sh
adds up. Each test's name and result go to stderr as they finish."""
import importlib.util
import os
import sys
import time
import unittest


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)


def main(paths):
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for p in paths:
        name = os.path.splitext(os.path.basename(p))[0]
        sys.path.insert(0, os.path.dirname(os.path.abspath(p)))
        spec = importlib.util.spec_from_file_location(name, p)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        suite.addTests(loader.loadTestsFromModule(mod))
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=Result)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors)
    failed += len(res.unexpectedSuccesses)
    # expected failures are known limitations: reported, never counted as passes
    skipped = len(res.skipped) + len(res.expectedFailures)
    passed = res.testsRun - failed - skipped
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and res.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
