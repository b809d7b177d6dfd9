import sys
from pathlib import Path

# Tests import the packages from the checkout (the venv also has them installed editable).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "missing_resource(reason): the parameter list was empty because a resource is absent "
                   "(tests.realdata.params): skip, or fail under CI=true")


def pytest_runtest_setup(item):
    mark = item.get_closest_marker("missing_resource")
    if mark is not None:
        from tests.realdata import missing
        missing(mark.args[0])
