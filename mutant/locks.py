"""The lock layer: work that uses a table subscribes to its definition, a
schema change modifies it, and neither ever sees the other half done.

Subscribers share a table. A modifier keeps new subscribers out while it
waits for the current ones to finish (writer preference), changes the schema,
bumps the version and releases; the subscribers that waited then read the new
version and get the new class. This holds across threads, processes and hosts
because the cross-process part lives in a small backend chosen by database
vendor: PostgreSQL advisory locks, or file locks beside a SQLite database file.

Locks are keyed by definition pk and always taken in ascending order, so two
modifiers of the same tables cannot deadlock. They are reentrant per thread:
a thread that holds a table shared or exclusive does not ask the backend
again, a modifier may subscribe, and a subscriber may modify (its shared lock
is traded for the exclusive one and given back afterwards). Waiting is
bounded by `settings.MUTANT_LOCK_TIMEOUT`; past it the caller gets
`DefinitionBusy`.

Subscribing again to a table nobody changed costs no round trip: on
PostgreSQL a process keeps its shared locks between subscriptions in a
session of its own and lets go when a modifier asks (LockSession); on SQLite
a counter in the lock file tells whether the version read last time still
holds (FileLocks).
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from mutant.errors import DefinitionBusy

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model

    from mutant.models import ModelDefinition

logger = logging.getLogger(__name__)

# SQLSTATEs of a database lock that was not granted: lock_not_available
# (lock_timeout ran out) and deadlock_detected.
LOCK_CONFLICTS = frozenset({"55P03", "40P01"})


def is_lock_conflict(error: BaseException) -> bool:
    """True if `error` is the database refusing a lock (a timeout or a deadlock)."""
    return any(
        getattr(candidate, "sqlstate", None) in LOCK_CONFLICTS
        for candidate in (error, error.__cause__)
    )


# -- the public interface ---------------------------------------------------------


class TableLock:
    """Holds definitions shared (a subscription) or exclusive (a modification).

    Use it as a context manager. `versions` maps each locked pk to the
    definition's version as read after the lock was granted (subscriptions
    only; None for a definition that does not exist).
    """

    def __init__(
        self,
        pks: Iterable[int],
        *,
        exclusive: bool,
        using: str = DEFAULT_DB_ALIAS,
        timeout: float | None = None,
    ):
        self.keys = sorted({int(pk) for pk in pks if pk})
        self.exclusive = exclusive
        self.using = using
        self.timeout = settings.MUTANT_LOCK_TIMEOUT if timeout is None else timeout
        self.versions: dict[int, int | None] = {}
        self._registry: _Registry | None = None

    def __enter__(self) -> TableLock:
        registry = _registry(self.using)
        if self.keys:
            registry.enter(self.keys, self.exclusive, self.timeout, self)
        self._registry = registry
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        registry, self._registry = self._registry, None
        if registry is not None and self.keys:
            registry.exit(self.keys, self.exclusive)
        if exc is not None and not isinstance(exc, DefinitionBusy) and is_lock_conflict(exc):
            # A statement inside (DDL under lock_timeout) met someone else's lock.
            raise DefinitionBusy() from exc
        return False

    def extend(self, pks: Iterable[int]) -> None:
        """Lock more definitions while this lock is held (a change that grows).

        Taken after the ones already held, so the global order can be broken:
        prefer naming every table up front; a conflict ends in DefinitionBusy
        after the timeout, never in a hang.
        """
        more = sorted({int(pk) for pk in pks if pk} - set(self.keys))
        if not more:
            return
        if self._registry is not None:
            extra = TableLock(
                more, exclusive=self.exclusive, using=self.using, timeout=self.timeout
            )
            self._registry.enter(more, self.exclusive, self.timeout, extra)
            self.versions.update(extra.versions)
        self.keys = sorted({*self.keys, *more})


def subscribe(
    pks: Iterable[int], *, using: str = DEFAULT_DB_ALIAS, timeout: float | None = None
) -> TableLock:
    """Share definitions `pks`: no schema change to them until the block ends."""
    return TableLock(pks, exclusive=False, using=using, timeout=timeout)


def modify(
    pks: Iterable[int], *, using: str = DEFAULT_DB_ALIAS, timeout: float | None = None
) -> TableLock:
    """Hold definitions `pks` alone: wait for their subscribers, keep new ones out."""
    return TableLock(pks, exclusive=True, using=using, timeout=timeout)


def definition_keys(definition: ModelDefinition) -> list[int]:
    """The definitions a subscriber to `definition` locks: the table itself.

    Its linked tables need no lock of their own: a change to any table of a
    linked group locks the whole group (SchemaChange.lock_keys).
    """
    return [definition.pk] if definition.pk else []


class Subscription:
    """`with md.subscribe() as Model:` the table's class, fresh, held until the block ends.

    A class rather than a generator: it runs before every use of a table.
    """

    __slots__ = ("definition", "timeout", "lock")

    def __init__(self, definition: ModelDefinition, *, timeout: float | None = None):
        if not definition.pk:
            raise ValueError("Save the table definition before subscribing to it.")
        self.definition = definition
        self.timeout = timeout
        self.lock: TableLock | None = None

    def __enter__(self) -> type[Model]:
        from mutant import classes

        definition = self.definition
        using = definition._state.db or DEFAULT_DB_ALIAS
        lock = subscribe(definition_keys(definition), using=using, timeout=self.timeout)
        lock.__enter__()
        try:
            version = lock.versions.get(definition.pk)
            if version is None:
                classes.forget(definition.pk)
                raise type(definition).DoesNotExist(f"No table definition with id {definition.pk}.")
            definition.version = version
            model = classes.for_definition(definition.pk, version)
        except BaseException as error:
            lock.__exit__(type(error), error, error.__traceback__)
            raise
        self.lock = lock
        return model

    def __exit__(self, exc_type, exc, tb) -> bool:
        lock, self.lock = self.lock, None
        return lock.__exit__(exc_type, exc, tb) if lock is not None else False


@contextmanager
def modification(
    definition: ModelDefinition, *, timeout: float | None = None
) -> Iterator[ModelDefinition]:
    """`with md.modify():` group changes to the table under one exclusive lock."""
    using = definition._state.db or DEFAULT_DB_ALIAS
    with modify(definition_keys(definition), using=using, timeout=timeout):
        yield definition


# -- per-thread bookkeeping -------------------------------------------------------


class _Hold:
    """What this thread holds on one definition, and how often."""

    __slots__ = ("shared", "exclusive", "version", "lost")

    def __init__(self, version: int | None = None):
        self.shared = 0
        self.exclusive = 0
        # Read while held; nobody else can change it until the hold ends.
        self.version = version
        # True when the backend no longer holds it (a failed upgrade).
        self.lost = False


class _Registry:
    """One thread's holds on one database, and the backend that makes them real."""

    def __init__(self, backend: LockBackend):
        self.backend = backend
        self.holds: dict[int, _Hold] = {}

    def enter(self, keys: list[int], exclusive: bool, timeout: float, lock: TableLock) -> None:
        if exclusive:
            self._enter_exclusive(keys, timeout)
            return
        holds = self.holds
        new = [key for key in keys if key not in holds]
        if new:
            versions = self.backend.subscribe(new, timeout)
            for key in new:
                holds[key] = _Hold(versions.get(key))
        for key in keys:
            holds[key].shared += 1
        unknown = [key for key in keys if holds[key].version is None]
        if unknown:
            try:
                versions = self.backend.read_versions(unknown)
            except BaseException:
                self.exit(keys, exclusive=False)
                raise
            for key in unknown:
                holds[key].version = versions.get(key)
        lock.versions = {key: holds[key].version for key in keys}

    def _enter_exclusive(self, keys: list[int], timeout: float) -> None:
        holds = self.holds
        new = [key for key in keys if key not in holds or holds[key].lost]
        # A subscriber that modifies trades its shared lock for the exclusive
        # one: holding on to it would deadlock against a second such thread.
        upgrade = [key for key in keys if key in holds and not holds[key].exclusive]
        upgrade = [key for key in upgrade if not holds[key].lost]
        if upgrade:
            self.backend.release(upgrade)
        wanted = sorted(new + upgrade)
        if wanted:
            try:
                self.backend.acquire(wanted, exclusive=True, timeout=timeout)
            except BaseException:
                if upgrade:
                    self._restore_shared(upgrade, timeout)
                raise
        for key in keys:
            hold = holds.setdefault(key, _Hold())
            hold.exclusive += 1
            hold.lost = False
            # This thread may change the table now: read the version again later.
            hold.version = None

    def _restore_shared(self, keys: list[int], timeout: float) -> None:
        try:
            self.backend.acquire(keys, exclusive=False, timeout=timeout)
        except BaseException:
            logger.warning("Lost the subscription to definitions %s after a failed change", keys)
            for key in keys:
                self.holds[key].lost = True
        for key in keys:
            # Unheld for a moment: someone else may have changed the table.
            self.holds[key].version = None

    def exit(self, keys: list[int], exclusive: bool) -> None:
        release, downgrade = [], []
        for key in keys:
            hold = self.holds[key]
            if exclusive:
                hold.exclusive -= 1
            else:
                hold.shared -= 1
            if hold.exclusive:
                continue
            if not hold.shared:
                del self.holds[key]
                if not hold.lost:
                    release.append(key)
            elif exclusive and not hold.lost:
                downgrade.append(key)
        if downgrade:
            self.backend.downgrade(downgrade)
        if release:
            self.backend.release(release)

    def held(self, key: int) -> str | None:
        hold = self.holds.get(key)
        if hold is None or hold.lost:
            return None
        return "exclusive" if hold.exclusive else "shared"


def _registry(using: str) -> _Registry:
    connection = connections[using]
    # Kept on the connection object, which Django gives each thread (and each
    # async context) of its own: a registry's backend must lock through the
    # very connection its caller uses. The name is part of the key: a test run
    # swaps the database under the alias.
    name = str(connection.settings_dict["NAME"])
    registries = connection.__dict__.setdefault("_mutant_lock_registries", {})
    registry = registries.get(name)
    if registry is None:
        try:
            factory = BACKENDS[connection.vendor]
        except KeyError:
            raise NotImplementedError(
                f"Mutant has no lock backend for {connection.vendor} databases."
            ) from None
        registry = registries[name] = _Registry(factory(connection))
    return registry


def held(pk: int, *, using: str = DEFAULT_DB_ALIAS) -> str | None:
    """How this thread holds definition `pk`: "shared", "exclusive" or None."""
    return _registry(using).held(pk)


def held_version(pk: int, *, using: str = DEFAULT_DB_ALIAS) -> int | None:
    """Definition `pk`'s version if this thread subscribes to it (it cannot change), else None."""
    hold = _registry(using).holds.get(pk)
    if hold is None or hold.lost or hold.exclusive:
        return None
    return hold.version


# -- backends -----------------------------------------------------------------------


class LockBackend:
    """Cross-process locks on definition pks, for one thread's use of one database.

    The registry asks a backend only for keys this thread does not hold yet,
    sorted, and to release or downgrade keys it holds. A lock that cannot be
    had before the timeout raises DefinitionBusy and leaves nothing held.
    """

    def __init__(self, connection: BaseDatabaseWrapper):
        self.connection = connection
        self._versions_sql = _versions_sql(connection)

    def acquire(self, keys: list[int], *, exclusive: bool, timeout: float) -> None:
        raise NotImplementedError

    def release(self, keys: list[int]) -> None:
        raise NotImplementedError

    def downgrade(self, keys: list[int]) -> None:
        """Turn exclusive holds into shared ones without letting a modifier in between."""
        raise NotImplementedError

    def subscribe(self, keys: list[int], timeout: float) -> dict[int, int | None]:
        """Lock `keys` shared, then read their versions (a backend may do both at once)."""
        self.acquire(keys, exclusive=False, timeout=timeout)
        try:
            return self.read_versions(keys)
        except BaseException:
            self.release(keys)
            raise

    def read_versions(self, keys: list[int]) -> dict[int, int | None]:
        self.connection.ensure_connection()
        cursor = self.connection.connection.cursor()
        try:
            cursor.execute(self._versions_sql(keys))
            return dict(cursor.fetchall())
        finally:
            cursor.close()


def _autocommit(connection: BaseDatabaseWrapper) -> bool:
    """Whether `connection` is outside any transaction (connecting it if need be).

    get_autocommit() without its async-safety check, which costs more than
    the rest of a subscription served from memory.
    """
    if connection.connection is None:
        connection.ensure_connection()
    return connection.autocommit


def _versions_sql(connection: BaseDatabaseWrapper) -> Callable[[list[int]], str]:
    """The query reading definitions' versions, as a function of their pks.

    The pks (ints) are written into the text, so that on PostgreSQL the query
    can share one round trip with the lock statement.
    """
    from mutant.models import ModelDefinition

    opts, qn = ModelDefinition._meta, connection.ops.quote_name
    pk = qn(opts.pk.column)
    version = qn(opts.get_field("version").column)
    prefix = f"SELECT {pk}, {version} FROM {qn(opts.db_table)} WHERE {pk} IN ("  # noqa: S608
    return lambda keys: prefix + ", ".join(str(int(key)) for key in keys) + ")"


class PostgresLocks(LockBackend):
    """PostgreSQL advisory locks: they live in the server, so they hold across hosts.

    Outside a transaction the locks are session locks, released explicitly;
    inside one they are transaction locks, released when it ends (a session
    lock could not be released from a transaction that failed). The server
    queues a shared request behind a waiting exclusive one, which gives
    writer preference, and drops every lock of a session that dies.
    """

    # The two-integer key space, with a class id of our own: "MU" and 1.
    NAMESPACE = 0x4D5501

    def __init__(self, connection: BaseDatabaseWrapper):
        super().__init__(connection)
        # key -> (exclusive, the DB-API connection of a session lock, or None)
        self.modes: dict[int, tuple[bool, object | None]] = {}

    @staticmethod
    def _objid(key: int) -> int:
        return (key + 2**31) % 2**32 - 2**31

    @classmethod
    def _call(cls, function: str, keys: list[int]) -> str:
        """`function` called on each of `keys`, as the list of a SELECT."""
        return ", ".join(f"{function}({cls.NAMESPACE}, {cls._objid(key)})" for key in keys)

    @staticmethod
    def _function(exclusive: bool, session: bool, wait: bool) -> str:
        scope = "" if session else "xact_"
        mode = "" if exclusive else "_shared"
        return f"pg_{'' if wait else 'try_'}advisory_{scope}lock{mode}"

    def subscribe(self, keys: list[int], timeout: float) -> dict[int, int | None]:
        # Outside a transaction the process's lock session serves, mostly
        # without a round trip. Inside one, this connection's transaction
        # locks do: they see its own uncommitted changes and last until it ends.
        session = lock_session(self.connection) if _autocommit(self.connection) else None
        served = session.take(keys) if session is not None else {}
        for key in served:
            self.modes[key] = (False, session)
        rest = [key for key in keys if key not in served]
        if not rest:
            return served
        try:
            return served | self._lock(rest, exclusive=False, timeout=timeout, read_versions=True)
        except BaseException:
            self.release(list(served))
            raise

    def acquire(self, keys: list[int], *, exclusive: bool, timeout: float) -> None:
        self._lock(keys, exclusive=exclusive, timeout=timeout, read_versions=False)

    def _lock(
        self, keys: list[int], *, exclusive: bool, timeout: float, read_versions: bool
    ) -> dict[int, int | None]:
        connection = self.connection
        connection.ensure_connection()
        raw = connection.connection
        session = connection.get_autocommit()
        owner = raw if session else None
        # First try without waiting: one round trip that takes the locks and,
        # in a second statement (so with a snapshot taken after the locks),
        # reads the versions.
        if session or len(keys) == 1:
            sql = "SELECT " + self._call(self._function(exclusive, session, wait=False), keys)
            if read_versions:
                sql += "; " + self._versions_sql(keys)
            cursor = raw.cursor()
            try:
                cursor.execute(sql)
                granted = cursor.fetchone()
                if all(granted):
                    for key in keys:
                        self.modes[key] = (exclusive, owner)
                    if read_versions:
                        cursor.nextset()
                        return dict(cursor.fetchall())
                    return {}
                if session and any(granted):
                    taken = [key for key, ok in zip(keys, granted, strict=True) if ok]
                    self._unlock(cursor, taken, exclusive)
            finally:
                cursor.close()
        wait = self._wait_in_session if session else self._wait_in_transaction
        if exclusive:
            waiting = self._ask_to_let_go(keys)
            try:
                wait(keys, exclusive, timeout)
            finally:
                if waiting is not None:
                    waiting.unwant(keys)
        else:
            wait(keys, exclusive, timeout)
        for key in keys:
            self.modes[key] = (exclusive, owner)
        if not read_versions:
            return {}
        try:
            return self.read_versions(keys)
        except BaseException:
            self.release(keys)
            raise

    def _ask_to_let_go(self, keys: list[int]) -> LockSession | None:
        """Processes keep shared locks between subscriptions: ask them for `keys`.

        Through this process's lock session, which repeats the request while
        the returned session is wanting them (until unwant()).
        """
        for _attempt in range(2):
            session = lock_session(self.connection)
            if session is None:
                break
            try:
                session.want(keys)
                return session
            except Exception:  # noqa: S112 - it died, with its locks: try a new one
                continue
        if _autocommit(self.connection):
            # No session: outside a transaction a notification leaves at once.
            cursor = self.connection.connection.cursor()
            try:
                cursor.execute(LockSession.request_sql(keys))
            finally:
                cursor.close()
        return None

    def _wait_in_session(self, keys: list[int], exclusive: bool, timeout: float) -> None:
        function = self._function(exclusive, session=True, wait=True)
        deadline = time.monotonic() + timeout
        taken: list[int] = []
        cursor = self.connection.connection.cursor()
        try:
            for key in keys:
                ms = max(1, int((deadline - time.monotonic()) * 1000))
                # SET LOCAL lasts for this one implicit transaction only.
                cursor.execute(
                    f"SET LOCAL lock_timeout = {ms}; SELECT {self._call(function, [key])}"
                )
                taken.append(key)
        except Exception as error:
            cursor.close()
            for key in taken:
                self.modes[key] = (exclusive, self.connection.connection)
            self.release(taken)
            if is_lock_conflict(error):
                raise DefinitionBusy() from error
            raise
        cursor.close()

    def _wait_in_transaction(self, keys: list[int], exclusive: bool, timeout: float) -> None:
        function = self._function(exclusive, session=False, wait=True)
        deadline = time.monotonic() + timeout
        try:
            # A savepoint: a lock that times out must not spoil the caller's transaction.
            with (
                transaction.atomic(using=self.connection.alias),
                self.connection.cursor() as cursor,
            ):
                cursor.execute("SELECT current_setting('lock_timeout')")
                (previous,) = cursor.fetchone()
                for key in keys:
                    ms = max(1, int((deadline - time.monotonic()) * 1000))
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{ms}ms"])
                    cursor.execute(f"SELECT {self._call(function, [key])}")
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
        except Exception as error:
            if is_lock_conflict(error):
                raise DefinitionBusy() from error
            raise

    def _unlock(self, cursor, keys: list[int], exclusive: bool) -> None:
        function = "pg_advisory_unlock" if exclusive else "pg_advisory_unlock_shared"
        cursor.execute(f"SELECT {self._call(function, keys)}")

    def release(self, keys: list[int]) -> None:
        raw = self.connection.connection
        by_mode: dict[bool, list[int]] = {}
        served: dict[LockSession, list[int]] = {}
        for key in keys:
            exclusive, owner = self.modes.pop(key)
            if isinstance(owner, LockSession):
                served.setdefault(owner, []).append(key)
            # Transaction locks go with the transaction; a closed session took its locks along.
            elif owner is not None and owner is raw:
                by_mode.setdefault(exclusive, []).append(key)
        for session, taken in served.items():
            session.leave(taken)
        if not by_mode:
            return
        cursor = raw.cursor()
        try:
            for exclusive, taken in by_mode.items():
                self._unlock(cursor, taken, exclusive)
        except Exception:
            # Only a failed transaction refuses this; the session keeps the
            # locks until it ends, so end it rather than block every modifier.
            logger.warning("Could not release table locks %s; closing the connection", keys)
            self.connection.close()
        finally:
            cursor.close()

    def downgrade(self, keys: list[int]) -> None:
        raw = self.connection.connection
        session = [key for key in keys if self.modes[key][1] is raw and raw is not None]
        for key in keys:
            self.modes[key] = (False, self.modes[key][1])
        if not session:
            return
        # A session's own locks never conflict: take the shared one, then drop
        # the exclusive one, and no modifier gets in between.
        cursor = raw.cursor()
        try:
            cursor.execute(
                f"SELECT {self._call('pg_advisory_lock_shared', session)}; "
                f"SELECT {self._call('pg_advisory_unlock', session)}"
            )
        finally:
            cursor.close()


class LockSession:
    """A process's own PostgreSQL session, holding shared locks for all its threads.

    A subscription outside a transaction takes its shared lock here and, when
    it ends, leaves it held ("parked") with the version read under it: as long
    as the lock is held no schema change can happen, so the next subscription
    to that table, from any thread of the process, is served from memory
    without a round trip.

    A modifier that finds a table locked asks every process to let go: it
    sends a notification naming the tables on a channel all sessions listen
    to, and repeats it while it waits. On hearing it, a session releases those
    tables as soon as no thread of its process uses them and, for a moment,
    keeps no lock on them between subscriptions; subscriptions that arrive
    meanwhile wait on their own connection, queued behind the modifier like
    any other. A thread of the session reads the socket while nothing else
    does, so an idle process hears the request within milliseconds.

    A session that dies (its server process was killed, the network went)
    takes its locks with it; the process notices when the socket closes,
    forgets everything held here and opens a new session on the next
    subscription. Subscriptions running at that moment finish without a lock.
    """

    CHANNEL = "mutant_locks"
    KEEP = 64  # tables held between subscriptions, least recently used let go first
    COOLDOWN = 1.0  # seconds a table asked for is not kept between subscriptions
    REPEAT = 0.25  # seconds between a waiting modifier's requests

    def __init__(self, connection: BaseDatabaseWrapper):
        self._versions_sql = _versions_sql(connection)
        self.mutex = threading.RLock()
        # key -> [version, users]; held by this session, least recently used first
        self.held: OrderedDict[int, list[int]] = OrderedDict()
        self.wanting: dict[int, int] = {}  # key -> modifiers of this process waiting for it
        self.cooling: dict[int, float] = {}  # key -> when it may be kept between uses again
        self.asked: set[int] = set()  # keys named by notifications not acted on yet
        self.alive = True
        self._repeated = 0.0
        self.raw = connection.Database.connect(**connection.get_connection_params())
        try:
            self._start()
        except BaseException:
            self.raw.close()
            raise

    def _start(self) -> None:
        """Listen on the channel, then start the thread that hears it."""
        self.raw.autocommit = True
        self.raw.add_notify_handler(self._heard)
        statements = [f"LISTEN {self.CHANNEL}"]
        if self.raw.info.server_version >= 140000:
            # This session is idle by design: it must not be closed for that.
            statements.append("SET idle_session_timeout = 0")
        self.raw.execute("; ".join(statements))
        self.pid = self.raw.info.backend_pid
        self._wake_read, wake = os.pipe()
        self._wake_write: int | None = wake
        self.thread = threading.Thread(target=self._listen, name="mutant-lock-session", daemon=True)
        self.thread.start()

    @classmethod
    def request_sql(cls, keys: Iterable[int]) -> str:
        """The notification asking every process to let go of `keys`."""
        payload = ",".join(str(int(key)) for key in keys)
        return f"SELECT pg_notify('{cls.CHANNEL}', '{payload}')"

    # -- what the threads of this process call

    def take(self, keys: list[int]) -> dict[int, int | None]:
        """Share `keys` if this session can without waiting; their versions by key.

        Keys left out are either asked for by a modifier or locked by one: the
        caller waits for them on its own connection.
        """
        with self.mutex:
            if not self.alive:
                return {}
            now = time.monotonic()
            served: dict[int, int | None] = {}
            missing = []
            for key in keys:
                entry = self.held.get(key)
                if entry is not None:
                    if not self._wanted(key, now):
                        entry[1] += 1
                        self.held.move_to_end(key)
                        served[key] = entry[0]
                elif not self.wanting.get(key):
                    missing.append(key)
            if missing:
                try:
                    served.update(self._try(missing))
                except Exception:
                    self._die()
                    return {}
            return served

    def leave(self, keys: list[int]) -> None:
        """A subscription to `keys` served here ended."""
        with self.mutex:
            if not self.alive:
                return
            now = time.monotonic()
            for key in keys:
                entry = self.held.get(key)
                if entry is not None:
                    entry[1] -= 1
                    if not entry[1] and self._wanted(key, now):
                        self.asked.add(key)
            try:
                self._settle()
            except Exception:
                self._die()

    def want(self, keys: list[int]) -> None:
        """A modifier of this process is about to wait for `keys`: tell every process."""
        with self.mutex:
            for key in keys:
                self.wanting[key] = self.wanting.get(key, 0) + 1
            self.asked.update(keys)
            if self.alive:
                try:
                    self._settle(notify=keys)
                except Exception:
                    self._die()
                    raise
            self._wake()

    def unwant(self, keys: list[int]) -> None:
        with self.mutex:
            for key in keys:
                self.wanting[key] -= 1
                if not self.wanting[key]:
                    del self.wanting[key]

    def close(self) -> None:
        with self.mutex:
            self.alive = False
            self.held.clear()
            self._wake()
        self.thread.join(5)

    # -- inside, with the mutex held

    def _wanted(self, key: int, now: float) -> bool:
        return bool(self.wanting.get(key)) or self.cooling.get(key, 0.0) > now

    def _try(self, keys: list[int]) -> dict[int, int | None]:
        """Take `keys` shared without waiting and read their versions, in one round trip."""
        calls = PostgresLocks._call("pg_try_advisory_lock_shared", keys)
        cursor = self.raw.execute(f"SELECT {calls}; {self._versions_sql(keys)}")
        granted = cursor.fetchone()
        cursor.nextset()
        versions = dict(cursor.fetchall())
        served: dict[int, int | None] = {}
        for key, ok in zip(keys, granted, strict=True):
            if not ok:
                continue
            self.held[key] = [versions.get(key), 1]
            if key in versions:
                served[key] = versions[key]
            else:
                # Not a table (yet) as this session sees it: let the caller read it.
                self.held[key][1] = 0
                self.asked.add(key)
        self._settle()
        return served

    def _settle(self, notify: Iterable[int] = ()) -> None:
        """Release what was asked for and is unused, and the idle tables past KEEP."""
        while True:
            release = [key for key in self.asked if key in self.held and not self.held[key][1]]
            idle = [key for key, (_, users) in self.held.items() if not users]
            idle = [key for key in idle if key not in release]
            release += idle[: max(0, len(self.held) - len(release) - self.KEEP)]
            self.asked = {key for key in self.asked if key in self.held and key not in release}
            statements = []
            if release:
                for key in release:
                    self.held.pop(key, None)
                statements.append(
                    "SELECT " + PostgresLocks._call("pg_advisory_unlock_shared", release)
                )
            if notify:
                statements.append(self.request_sql(notify))
                notify = ()
            if not statements:
                return
            # Hearing more notifications while doing this goes round again.
            self.raw.execute("; ".join(statements))

    def _heard(self, notification) -> None:
        """A notification arrived (called by psycopg, inside a statement of this session)."""
        if notification.channel != self.CHANNEL or notification.pid == self.pid:
            return
        until = time.monotonic() + self.COOLDOWN
        for word in notification.payload.split(","):
            if word.isdigit():
                key = int(word)
                self.cooling[key] = until
                if key in self.held:
                    self.asked.add(key)

    def _die(self) -> None:
        if self.alive:
            logger.warning(
                "The lock session of this process was lost; the next subscription opens another"
            )
        self.alive = False
        self.held.clear()
        with _sessions_guard:
            for name, session in list(_sessions.items()):
                if session is self:
                    del _sessions[name]
        self._wake()

    def _wake(self) -> None:
        """Wake the listening thread (the pipe is closed only with the mutex held)."""
        if self._wake_write is not None:
            os.write(self._wake_write, b"w")

    # -- the listening thread

    def _listen(self) -> None:
        socket = self.raw.pgconn.socket
        poller = select.poll()
        poller.register(socket, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        while True:
            timeout = self.REPEAT if self.wanting else 5.0
            ready = {fd for fd, _ in poller.poll(timeout * 1000)}
            if self._wake_read in ready:
                os.read(self._wake_read, 512)
            with self.mutex:
                if not self.alive:
                    break
                try:
                    self._poll(socket in ready)
                except Exception:
                    self._die()
                    break
        with self.mutex:
            wake, self._wake_write = self._wake_write, None
            os.close(wake)
            os.close(self._wake_read)
        try:
            self.raw.close()
        except Exception:  # noqa: S110 - already broken
            pass

    def _poll(self, readable: bool) -> None:
        if readable:
            pgconn = self.raw.pgconn
            pgconn.consume_input()  # raises once the server has gone
            while (notification := pgconn.notifies()) is not None:
                pgconn.notify_handler(notification)
        now = time.monotonic()
        notify: list[int] = []
        if self.wanting and now - self._repeated >= self.REPEAT:
            notify = sorted(self.wanting)
            self._repeated = now
        self.cooling = {key: until for key, until in self.cooling.items() if until > now}
        self._settle(notify=notify)


_sessions: dict[tuple[int, str, str], LockSession] = {}
_sessions_guard = threading.Lock()
_inherited: list[LockSession] = []


RETRY_SESSION = 5.0
"""Seconds before trying again to open a lock session the server refused."""
_refused: dict[tuple[int, str, str], float] = {}


def lock_session(connection: BaseDatabaseWrapper) -> LockSession | None:
    """This process's lock session on `connection`'s database (opened on first use).

    None while the server refuses it (too many connections, say): callers
    then lock through their own connection, as they would in a transaction.
    """
    key = (os.getpid(), connection.alias, str(connection.settings_dict["NAME"]))
    session = _sessions.get(key)
    if session is not None and session.alive:
        return session
    if _refused.get(key, 0.0) > time.monotonic():
        return None
    with _sessions_guard:
        session = _sessions.get(key)
        if session is None or not session.alive:
            try:
                session = LockSession(connection)
            except Exception as error:
                logger.warning(
                    "Could not open this process's lock session (%s); subscriptions lock"
                    " through their own connections for %s s",
                    error,
                    RETRY_SESSION,
                )
                _refused[key] = time.monotonic() + RETRY_SESSION
                return None
            _sessions[key] = session
    return session


def reset() -> None:
    """Forget what this process keeps between subscriptions: locks and versions.

    For when definitions were changed behind the engine's back (a flush, raw
    SQL, a test dropping tables) and before dropping a database. Subscriptions
    must not be running.
    """
    with _sessions_guard:
        sessions = [s for (pid, *_), s in _sessions.items() if pid == os.getpid()]
        _sessions.clear()
    for session in sessions:
        session.close()
    _refused.clear()
    _seen.clear()


def _after_fork() -> None:
    # A child shares its parent's sockets: closing them, or letting them be
    # collected, would end the parent's sessions. Keep them, unused.
    global _sessions_guard
    _inherited.extend(_sessions.values())
    _sessions.clear()
    _sessions_guard = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


class FileLocks(LockBackend):
    """flock(2) on files beside a SQLite database: they hold across the processes of one host.

    Each definition has a main lock (shared for subscribers, exclusive for a
    modifier) and a gate. A modifier holds the gate while it waits for the
    main lock, and a subscriber passes through the gate (shared, so
    subscribers do not queue behind each other) before taking the main lock,
    so subscribers arriving after a waiting modifier queue behind it. flock
    locks belong to an open file description: each connection's backend
    opens its own (and keeps the most recent ones open), so threads of one
    process conflict like processes do, and the kernel drops the locks of a
    process that dies. Lock files are never deleted: a process holding an
    unlinked file would lock nothing that others can see.

    The main lock file holds a counter that every modifier bumps as soon as
    it holds the lock, before it changes anything. A subscriber that finds
    the counter where it was when it last read the table's version knows the
    version without asking the database.
    """

    KEEP_OPEN = 64  # definitions whose files a thread keeps open between uses

    def __init__(self, connection: BaseDatabaseWrapper, directory: Path):
        super().__init__(connection)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.pid = os.getpid()
        # key -> (gate fd, main lock fd), least recently used first
        self.files: OrderedDict[int, tuple[int, int]] = OrderedDict()
        # key -> whether this thread also holds the gate (a modifier)
        self.held: dict[int, bool] = {}
        self.name = str(directory)

    def __del__(self) -> None:
        # The connection (a thread's, a context's) is gone: so are its locks.
        for files in self.files.values():
            for fd in files:
                os.close(fd)

    def subscribe(self, keys: list[int], timeout: float) -> dict[int, int | None]:
        self.acquire(keys, exclusive=False, timeout=timeout)
        try:
            versions: dict[int, int | None] = {}
            # Inside a transaction the version read may be its own, not yet
            # committed (or later rolled back): neither use nor keep a memory.
            remember = _autocommit(self.connection)
            stamps = {key: os.pread(self.files[key][1], 8, 0) for key in keys}
            for key, stamp in stamps.items():
                seen = _seen.get((self.name, key))
                if remember and seen is not None and seen[0] == stamp:
                    versions[key] = seen[1]
            unknown = [key for key in keys if key not in versions]
            if unknown:
                read = self.read_versions(unknown)
                for key in unknown:
                    version = versions[key] = read.get(key)
                    if remember and version is not None:
                        _seen[self.name, key] = (stamps[key], version)
            return versions
        except BaseException:
            self.release(keys)
            raise

    def _files(self, key: int) -> tuple[int, int]:
        if self.pid != os.getpid():
            # A forked child shares these descriptions with its parent, and
            # locking through them would not exclude the parent: open anew.
            for gate, main in self.files.values():
                os.close(gate)
                os.close(main)
            self.files.clear()
            self.held.clear()
            self.pid = os.getpid()
        files = self.files.get(key)
        if files is not None:
            self.files.move_to_end(key)
            return files
        files = self.files[key] = (self._open(key, "gate"), self._open(key, "lock"))
        idle = [other for other in self.files if other not in self.held and other != key]
        for other in idle[: max(0, len(self.files) - self.KEEP_OPEN)]:
            for fd in self.files.pop(other):
                os.close(fd)
        return files

    def _open(self, key: int, suffix: str) -> int:
        path = os.path.join(self.directory, f"{key}.{suffix}")
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)

    def acquire(self, keys: list[int], *, exclusive: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        taken: list[int] = []
        try:
            for key in keys:
                gate, main = self._files(key)
                # Subscribers pass through the gate together; a modifier holds it alone.
                _flock(gate, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline)
                try:
                    _flock(main, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline)
                except BaseException:
                    fcntl.flock(gate, fcntl.LOCK_UN)
                    raise
                if exclusive:
                    _bump(main)
                if not exclusive:
                    fcntl.flock(gate, fcntl.LOCK_UN)
                self.held[key] = exclusive
                taken.append(key)
        except BaseException:
            self.release(taken)
            raise

    def release(self, keys: list[int]) -> None:
        for key in keys:
            gate, main = self.files[key]
            fcntl.flock(main, fcntl.LOCK_UN)
            if self.held.pop(key):
                fcntl.flock(gate, fcntl.LOCK_UN)

    def downgrade(self, keys: list[int]) -> None:
        for key in keys:
            gate, main = self.files[key]
            # Not atomic in the kernel, but nobody can reach the main lock
            # without the gate, which this thread holds until the lock is shared.
            fcntl.flock(main, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
            self.held[key] = False


# (lock directory, key) -> (the counter in its main lock file, the version read under it)
_seen: dict[tuple[str, int], tuple[bytes, int]] = {}


def _bump(fd: int) -> None:
    """Add one to the counter in lock file `fd` (8 bytes; an empty file counts 0)."""
    count = int.from_bytes(os.pread(fd, 8, 0) or b"\0", "little")
    os.pwrite(fd, ((count + 1) % 2**64).to_bytes(8, "little"), 0)


def _flock(fd: int, operation: int, deadline: float) -> None:
    """Lock `fd`, polling until `deadline` (flock itself cannot time out)."""
    delay = 0.0005
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DefinitionBusy()
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)


class _SharedExclusive:
    """An in-process shared/exclusive lock in which a waiting writer goes first."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.readers = 0
        self.writer = False
        self.writers_waiting = 0

    def acquire(self, exclusive: bool, timeout: float) -> bool:
        with self.condition:
            if not exclusive:
                granted = self.condition.wait_for(
                    lambda: not self.writer and not self.writers_waiting, timeout
                )
                if granted:
                    self.readers += 1
                return granted
            self.writers_waiting += 1
            try:
                granted = self.condition.wait_for(
                    lambda: not self.writer and not self.readers, timeout
                )
            finally:
                self.writers_waiting -= 1
            if granted:
                self.writer = True
            else:
                self.condition.notify_all()
            return granted

    def release(self, exclusive: bool) -> None:
        with self.condition:
            if exclusive:
                self.writer = False
            else:
                self.readers -= 1
            self.condition.notify_all()

    def downgrade(self) -> None:
        with self.condition:
            self.writer = False
            self.readers += 1
            self.condition.notify_all()


class MemoryLocks(LockBackend):
    """In-process locks, for an in-memory SQLite database that no other process can see."""

    _locks: dict[tuple[str, int], _SharedExclusive] = {}
    _guard = threading.Lock()

    def __init__(self, connection: BaseDatabaseWrapper):
        super().__init__(connection)
        self.modes: dict[int, bool] = {}

    def _lock(self, key: int) -> _SharedExclusive:
        with self._guard:
            return self._locks.setdefault((self.connection.alias, key), _SharedExclusive())

    def acquire(self, keys: list[int], *, exclusive: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        taken: list[int] = []
        for key in keys:
            if not self._lock(key).acquire(exclusive, max(0.0, deadline - time.monotonic())):
                self.release(taken)
                raise DefinitionBusy()
            self.modes[key] = exclusive
            taken.append(key)

    def release(self, keys: list[int]) -> None:
        for key in keys:
            self._lock(key).release(self.modes.pop(key))

    def downgrade(self, keys: list[int]) -> None:
        for key in keys:
            self._lock(key).downgrade()
            self.modes[key] = False


def _sqlite_locks(connection: BaseDatabaseWrapper) -> LockBackend:
    if connection.is_in_memory_db():
        return MemoryLocks(connection)
    database = Path(str(connection.settings_dict["NAME"])).resolve()
    return FileLocks(connection, database.with_name(database.name + "-locks"))


BACKENDS = {
    "postgresql": PostgresLocks,
    "sqlite": _sqlite_locks,
}
"""Lock backend factories by connection vendor (a MySQL/MariaDB one could use GET_LOCK)."""
