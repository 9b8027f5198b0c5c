"""Learning-rate schedules by UER-py name: warm-up ramp, value at the end of warm-up and at the
last step, and that build_scheduler really drives an optimizer."""

import math

import pytest
import torch

from uer.errors import ConfigError
from uer.registry import SCHEDULERS
from uer.training import schedules
from uer.training.schedules import build_scheduler

NAMES = ["linear", "cosine", "constant", "constant_with_warmup", "inverse_sqrt", "polynomial"]
WARMUP, TOTAL = 10, 110


def value(name, step, warmup=WARMUP, total=TOTAL, **kw):
    return SCHEDULERS.get(name)(step, warmup, total, **kw)


def test_every_uer_schedule_is_registered():
    assert set(NAMES) <= set(SCHEDULERS.names())


@pytest.mark.parametrize("name", [n for n in NAMES if n != "constant"])
def test_warmup_is_a_linear_ramp_to_one(name):
    assert value(name, 0) == 0.0
    for step in range(WARMUP):
        assert value(name, step) == pytest.approx(step / WARMUP)
    assert value(name, WARMUP) == pytest.approx(1.0)


def test_constant_ignores_warmup():
    assert all(value("constant", s) == 1.0 for s in (0, 5, WARMUP, TOTAL, 10 * TOTAL))


def test_linear_decays_to_zero_at_total():
    assert value("linear", TOTAL) == 0.0
    assert value("linear", WARMUP + 50) == pytest.approx(0.5)
    assert value("linear", 2 * TOTAL) == 0.0                    # never negative
    # Same as Hugging Face's get_linear_schedule_with_warmup.
    for s in range(WARMUP, TOTAL + 1):
        assert value("linear", s) == pytest.approx(max(0.0, (TOTAL - s) / (TOTAL - WARMUP)))


def test_cosine_decays_to_zero_at_total():
    assert value("cosine", TOTAL) == pytest.approx(0.0, abs=1e-12)
    assert value("cosine", WARMUP + 50) == pytest.approx(0.5)
    assert value("cosine", WARMUP + 25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert value("cosine", 3 * TOTAL) == pytest.approx(0.0, abs=1e-12)
    decay = [value("cosine", s) for s in range(WARMUP, TOTAL + 1)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_constant_with_warmup_stays_at_one():
    assert all(value("constant_with_warmup", s) == 1.0 for s in (WARMUP, 50, TOTAL, 10 * TOTAL))


def test_inverse_sqrt_decays_as_one_over_sqrt_step():
    assert value("inverse_sqrt", 4 * WARMUP) == pytest.approx(0.5)
    assert value("inverse_sqrt", 100 * WARMUP) == pytest.approx(0.1)
    assert value("inverse_sqrt", TOTAL) == pytest.approx(math.sqrt(WARMUP / TOTAL))


@pytest.mark.parametrize("power,end_ratio", [(1.0, 0.0), (2.0, 0.0), (1.0, 0.1), (0.5, 0.25)])
def test_polynomial_ends_at_end_ratio(power, end_ratio):
    assert value("polynomial", TOTAL, power=power, end_ratio=end_ratio) == pytest.approx(end_ratio)
    assert value("polynomial", 5 * TOTAL, power=power, end_ratio=end_ratio) == pytest.approx(end_ratio)
    mid = value("polynomial", WARMUP + 50, power=power, end_ratio=end_ratio)
    assert mid == pytest.approx(end_ratio + (1 - end_ratio) * 0.5 ** power)
    assert value("polynomial", WARMUP, power=power, end_ratio=end_ratio) == pytest.approx(1.0)


@pytest.mark.parametrize("name", NAMES)
def test_no_warmup_starts_at_full_rate(name):
    assert value(name, 0, warmup=0) == pytest.approx(1.0)
    assert 0.0 <= value(name, 7, warmup=0) <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_warmup_equal_to_total_does_not_divide_by_zero(name):
    for s in (0, 5, 10, 11):
        v = value(name, s, warmup=10, total=10)
        assert math.isfinite(v) and 0.0 <= v <= 1.0


def test_unknown_name_is_a_config_error_listing_the_names():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError) as err:
        build_scheduler(opt, "cosin", 1, 10)
    msg = str(err.value)
    assert "--scheduler" in msg and all(n in msg for n in NAMES) and "cosine" in msg


@pytest.mark.parametrize("name", NAMES)
def test_build_scheduler_drives_the_learning_rate(name):
    param = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([param], lr=0.5)
    sched = build_scheduler(opt, name, WARMUP, TOTAL, power=2.0, end_ratio=0.1)
    fn = getattr(schedules, name)
    for step in range(TOTAL + 3):
        expected = 0.5 * fn(step, WARMUP, TOTAL, power=2.0, end_ratio=0.1)
        assert opt.param_groups[0]["lr"] == pytest.approx(expected), step
        param.grad = torch.ones(2)
        opt.step()
        sched.step()


def test_scheduler_state_round_trip():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = build_scheduler(opt, "linear", 4, 20)
    for _ in range(7):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = torch.optim.SGD([param], lr=1.0)
    sched2 = build_scheduler(opt2, "linear", 4, 20)
    sched2.load_state_dict(state)
    opt2.load_state_dict(opt.state_dict())
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx((20 - 8) / 16)
