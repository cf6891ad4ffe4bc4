import pytest

from deepsync.parallel import parallel_map


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


@pytest.mark.parametrize("workers", [1, 2])
def test_every_result_comes_back(workers):
    assert sorted(parallel_map(square, range(20), workers)) == [x * x for x in range(20)]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_in_a_job_reaches_the_caller(workers):
    with pytest.raises(ValueError, match="three"):
        list(parallel_map(fail_on_three, range(10), workers))
