"""`make test PYTEST_ARGS=...`: which arguments name tests (run as one pytest) and which are
options for every lane (scripts/test_lanes.py)."""

from scripts.test_lanes import named_tests


def test_folders_files_and_node_ids_name_tests() -> None:
    args = ["-x", "tests/unit/gateway", "tests/unit/test_ids.py::test_one", "-q"]
    assert named_tests(args) == ["tests/unit/gateway", "tests/unit/test_ids.py::test_one"]


def test_options_and_their_values_name_no_tests() -> None:
    # "tests" is a folder, but here it is -k's expression and --deselect's node id.
    args = ["-x", "-k", "tests", "--deselect", "tests/unit", "--ignore=tests/e2e", "-p", "no:x"]
    assert named_tests(args) == []


def test_a_path_that_does_not_exist_names_no_tests() -> None:
    assert named_tests(["tests/no_such_folder"]) == []
