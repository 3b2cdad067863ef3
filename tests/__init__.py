"""The valuesim test suite, a package so that every test module has a unique,
rootdir-relative name (tests.calibration.test_fit and tests.survey.demo.test_fit can
both exist) and shared helpers import one way: ``from tests.fixtures.<module> import ...``.
"""
