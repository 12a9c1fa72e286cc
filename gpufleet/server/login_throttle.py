"""Login throttling: too many wrong passwords for one username, or from one address, earn a lockout.

A password guesser is slowed down twice over: per username (``per_user`` failures within
``WINDOW`` seconds lock that name, whoever tries it) and per client address (``per_address``
failures lock the address, whatever names it tries; 10 by default too, as the contract says;
raise it where many people share one NAT or proxy). IPv6 addresses count per /64: one host
usually holds a whole /64 and could otherwise spread its guesses over it. While a key is locked
every attempt under it answers 429 with ``Retry-After`` without checking the password — no
argon2 work is spent on it, so a flood of guesses costs the server next to nothing. Each lockout
of the same key lasts twice as long as the one before (``lockout`` seconds the first time, at
most ``MAX_LOCKOUT``); a correct password resets its username's record, and a key forgets its
past ``MAX_LOCKOUT`` seconds after its last failure.

Unknown usernames are counted like known ones, so a lockout does not reveal which names exist.

The record is in memory, per server process: a restart forgets it, and each replica of a
high-availability setup holds its own (an attacker spreading guesses over N replicas gets N
times the attempts, still bounded). The client address is the socket peer as uvicorn reports it
(uvicorn applies ``X-Forwarded-For`` only from the proxies it trusts: loopback by default).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gpufleet.common.errors import GpufleetError

WINDOW = 60.0  # seconds over which failures are counted
MAX_LOCKOUT = 15 * 60.0  # seconds: the longest a repeated lockout grows to
MAX_KEYS = 100_000  # records kept at most; beyond it, unlocked ones go; locked ones are never dropped


class TooManyAttempts(GpufleetError):
    """Too many failed logins (HTTP 429); ``retry_after`` is the whole seconds until the next try."""

    status_code = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)  # monotonic times within WINDOW
    pending: int = 0  # attempts being checked now: each may be one more failure
    locked_until: float = 0.0
    lockouts: int = 0  # lockouts so far: each doubles the next
    last_failure: float = 0.0


class LoginThrottle:
    """Counts failed logins per username and per address; refuses attempts while either is locked.

    An attempt is ``begin``-ed before its password is checked and ``end``-ed with the outcome, so
    that attempts being checked at the same moment count too: a burst of 100 concurrent guesses
    gets no more password checks than the limit, the rest answer 429 at once."""

    def __init__(
        self,
        per_user: int = 10,
        per_address: int = 10,
        lockout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = {"user": per_user, "address": per_address}
        self.lockout = lockout
        self.clock = clock
        self._records: dict[tuple[str, str], _Record] = {}

    def begin(self, username: str, address: str | None) -> None:
        """Raise ``TooManyAttempts`` if the username or the address is locked (or would be, should
        the attempts under way all fail); else count this attempt as under way."""
        now = self.clock()
        keys = self._keys(username, address)
        waits = [wait for key in keys if (wait := self._wait(key, now)) > 0]
        if waits:
            retry_after = max(1, math.ceil(max(waits)))
            raise TooManyAttempts(
                f"too many failed logins for this username or from this address; try again in {retry_after} s",
                retry_after=retry_after,
            )
        for record in [self._record(key, now) for key in keys]:  # all found (or refused) before any counts
            record.pending += 1

    def end(self, username: str, address: str | None, *, succeeded: bool | None) -> None:
        """The attempt's outcome: True (right password), False (wrong) or None (it did not get to
        a verdict, e.g. the database failed: not counted)."""
        now = self.clock()
        for key in self._keys(username, address):
            record = self._records.get(key) or self._records.setdefault(key, _Record(last_failure=now))
            record.pending = max(0, record.pending - 1)
            if succeeded is False:
                self._failed(key, record, now)
        if succeeded:
            self._records.pop(("user", username), None)  # the username starts over; the address does not

    def _wait(self, key: tuple[str, str], now: float) -> float:
        record = self._records.get(key)
        if record is None:
            return 0.0
        if record.locked_until > now:
            return record.locked_until - now
        recent = sum(1 for t in record.failures if now - t <= WINDOW)
        return 1.0 if recent + record.pending >= self.limits[key[0]] else 0.0

    def _failed(self, key: tuple[str, str], record: _Record, now: float) -> None:
        record.last_failure = now
        while record.failures and now - record.failures[0] > WINDOW:
            record.failures.popleft()
        record.failures.append(now)
        if len(record.failures) >= self.limits[key[0]]:
            record.lockouts += 1
            record.locked_until = now + min(self.lockout * 2 ** (record.lockouts - 1), MAX_LOCKOUT)
            record.failures.clear()

    def _record(self, key: tuple[str, str], now: float) -> _Record:
        record = self._records.get(key)
        if record is not None and not record.pending and now - record.last_failure > MAX_LOCKOUT:
            record = None  # its past is long enough ago to forget (any lockout has ended)
        if record is None:
            self._make_room(now)
            record = self._records[key] = _Record(last_failure=now)
        return record

    @staticmethod
    def _keys(username: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("user", username)]
        if address:
            keys.append(("address", address_key(address)))
        return keys

    def _make_room(self, now: float) -> None:
        """Drop what may be forgotten first, then unlocked records; locked ones and attempts under
        way stay, whatever the flood: dropping them would hand a locked name fresh guesses. Only
        when every record is one of those does a new key wait (429) until room frees up."""
        if len(self._records) < MAX_KEYS:
            return
        self._records = {
            key: record
            for key, record in self._records.items()
            if record.pending or record.locked_until > now or now - record.last_failure <= WINDOW
        }
        if len(self._records) >= MAX_KEYS:
            self._records = {
                key: record for key, record in self._records.items() if record.pending or record.locked_until > now
            }
        if len(self._records) >= MAX_KEYS:
            message = "too many failed logins from many places at once; try again in a minute"
            raise TooManyAttempts(message, retry_after=60)


def address_key(address: str) -> str:
    """The key an address counts under: IPv4 (and IPv4-mapped) as it is, IPv6 by its /64."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an IP (a test client, a unix socket): as it is
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
