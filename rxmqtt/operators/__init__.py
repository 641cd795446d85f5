"""ReactiveX operators rxmqtt is built from, usable on any ``reactivex`` observable.

- :func:`retry_when`: resubscribe to a failed source when a notifier says so (RxJS semantics,
  which ``reactivex`` lacks).
- :func:`retry_with_backoff`: resubscribe after a :class:`~rxmqtt.policies.Backoff` delay, a
  bounded number of times, skipping errors that are not worth retrying; reports each retry as a
  :class:`RetryAttempt`.

Timed operators take a scheduler (or use the one given to ``subscribe()``, or the running
asyncio loop's); none falls back to a thread-based default, so everything is marble-testable on
a ``reactivex.testing.TestScheduler``.
"""

from ._retry_when import retry_when
from ._retry_with_backoff import RetryAttempt, retry_with_backoff

__all__ = ["RetryAttempt", "retry_when", "retry_with_backoff"]
