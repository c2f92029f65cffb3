"""The outage rules of the outbox, without a database: one probe per receiver, the probe's
delay, and when a success must release the deliveries backing off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from receiver.model.delivery import Outages, RetryPolicy

T = datetime(2026, 11, 28, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def test_a_probe_honours_retry_after_as_given_without_backoff_on_top():
    policy = RetryPolicy(initial=2, maximum=300, probe=3)
    assert policy.probe_delay(None) == 3
    assert policy.probe_delay(0) == 3  # "now" would spin: the probe interval instead
    assert policy.probe_delay(1.5) == 1.5  # shorter than the interval: as asked
    assert policy.probe_delay(120) == 120
    assert policy.delay(8, 5, rand=lambda: 1.0) == 256  # the others keep backing off


def test_the_first_failure_is_the_probe_and_the_others_back_off_while_it_lasts():
    outages = Outages()
    assert outages.failed("pd", 1, at(0), delay=2)
    assert not outages.failed("pd", 2, at(0), delay=2)
    assert not outages.failed("pd", 3, at(1.9), delay=2)
    assert outages.failed("slack", 4, at(1), delay=2)  # each receiver has its own


def test_the_probe_stays_the_probe_even_when_claimed_a_little_early():
    outages = Outages()
    assert outages.failed("pd", 1, at(0), delay=2)
    assert outages.failed("pd", 1, at(1.995), delay=2)  # claims take what falls due in 10 ms
    assert not outages.failed("pd", 2, at(3), delay=2)  # its next turn is at 3.995


def test_a_probe_that_did_not_come_back_in_time_is_replaced_by_the_next_failure():
    outages = Outages()
    assert outages.failed("pd", 1, at(0), delay=2)
    assert outages.failed("pd", 2, at(2), delay=5)  # 1 went elsewhere, or was cancelled
    assert not outages.failed("pd", 1, at(3), delay=2)  # back at last: it backs off now
    assert outages.failed("pd", 2, at(7), delay=2)


def test_a_success_after_failures_releases_once_and_a_healthy_one_never():
    outages = Outages()
    assert outages.succeeded("pd", at(0), None)  # the first since the worker started
    assert not outages.succeeded("pd", at(1), None)
    outages.failed("pd", 1, at(2), delay=2)
    outages.failed("pd", 2, at(2), delay=2)
    assert outages.succeeded("pd", at(4), at(4))  # the probe came back: release
    assert not outages.succeeded("pd", at(4.1), at(4))  # released by that, or due before it
    assert not outages.succeeded("pd", at(5), None)


def test_a_success_of_a_delivery_that_backed_off_elsewhere_releases():
    """Another worker saw the outage: this one only learns of it from a delivery that had
    failed and fell due after this worker's last release."""
    outages = Outages()
    assert outages.succeeded("pd", at(0), None)
    assert outages.succeeded("pd", at(60), at(59))
    assert not outages.succeeded("pd", at(61), at(60))
    assert outages.succeeded("slack", at(62), None)  # its first
