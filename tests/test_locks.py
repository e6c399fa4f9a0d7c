"""The lock layer: subscribers and modifiers across threads and processes.

Child processes (tests/lock_worker.py) use the test database through
DATABASE_URL; threads of this process use their own connections.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import include, path

from mutant import locks
from mutant.errors import DefinitionBusy
from mutant.models import CharFieldDefinition, FieldDefinition, ModelDefinition
from tests.schema_helpers import columns

pytestmark = pytest.mark.usefixtures("schema_db")

WORKER = str(Path(__file__).with_name("lock_worker.py"))
# How long a test waits for something that must happen (never a measure of speed).
PATIENCE = 60


def make_table(name: str = "Penguin") -> ModelDefinition:
    md = ModelDefinition.objects.create(object_name=name)
    CharFieldDefinition.objects.create(model_def=md, name="species", max_length=60, null=True)
    return md


def field_names(model) -> list[str]:
    return [f.name for f in model._meta.concrete_fields]


# -- running code elsewhere ---------------------------------------------------------


class Worker:
    """A child process running Python sent to it (tests/lock_worker.py)."""

    def __init__(self, env: dict[str, str], *args: str):
        self.process = subprocess.Popen(
            [sys.executable, WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.buffer = b""
        if not args:
            assert self.line(PATIENCE) == {"ready": True}

    def line(self, timeout: float) -> dict | None:
        """The next line of output as JSON, or None if none came within `timeout`."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.process.stdout], [], [], remaining)[0]:
                return None
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"worker exited with {self.process.wait()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send(self, code: str) -> None:
        self.process.stdin.write(json.dumps(code).encode() + b"\n")
        self.process.stdin.flush()

    def answer(self, timeout: float = PATIENCE):
        answer = self.line(timeout)
        if answer is None:
            raise AssertionError("the worker did not answer in time")
        if "error" in answer:
            raise AssertionError("the worker failed:\n" + answer["error"])
        return answer["result"]

    def run(self, code: str, timeout: float = PATIENCE):
        self.send(code)
        return self.answer(timeout)

    def silent(self, seconds: float) -> bool:
        """True if the worker says nothing for `seconds` (it is still blocked)."""
        return self.line(seconds) is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(PATIENCE)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(PATIENCE)
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()


class InThread:
    """The same interface as Worker, running code in a thread of this process."""

    def __init__(self, namespace: dict):
        self.namespace = dict(namespace)
        self.future: Future | None = None

    def send(self, code: str) -> None:
        self.future = Future()

        def run() -> None:
            try:
                self.namespace.pop("result", None)
                exec(code, self.namespace)  # noqa: S102 - test driver
                self.future.set_result(self.namespace.get("result"))
            except BaseException as error:
                self.future.set_exception(error)
            finally:
                connection.close()

        threading.Thread(target=run, daemon=True).start()

    def answer(self, timeout: float = PATIENCE):
        return self.future.result(timeout)

    def run(self, code: str, timeout: float = PATIENCE):
        self.send(code)
        return self.answer(timeout)

    def silent(self, seconds: float) -> bool:
        try:
            self.future.exception(seconds)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        if self.future is not None:
            self.future.exception(PATIENCE)


SETUP = """
from mutant import locks
from mutant.errors import DefinitionBusy
from mutant.models import CharFieldDefinition, ModelDefinition
md = ModelDefinition.objects.get(pk={pk})
"""


@pytest.fixture
def workers(db_env):
    """Starts child processes (or threads) on the test database; stops them after the test."""
    started: list = []

    def start(md: ModelDefinition | None = None, *, where: str = "process", **env: str):
        if where == "thread":
            runner = InThread({})
        else:
            runner = Worker({**db_env, **env})
        started.append(runner)
        if md is not None:
            runner.run(SETUP.format(pk=md.pk))
        return runner

    yield start
    for runner in started:
        runner.close()


def wait_until_a_modifier_waits(pk: int) -> None:
    """Block until some modifier is queued for definition `pk` (it cannot be asked)."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if modifier_waiting(pk):
            return
        time.sleep(0.01)
    raise AssertionError("no modifier started waiting")


def modifier_waiting(pk: int) -> bool:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND mode = 'ExclusiveLock' AND classid = %s AND objid = %s AND objsubid = 2",
                [locks.PostgresLocks.NAMESPACE, pk],
            )
            return cursor.fetchone()[0] > 0
    # A modifier holds the gate while it waits for the main lock.
    backend = locks._registry(DEFAULT_DB_ALIAS).backend
    fd = os.open(backend.directory / f"{pk}.gate", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# -- one thread ---------------------------------------------------------------------------


def test_subscribing_gives_the_current_class_and_holds_the_table():
    md = make_table()
    with md.subscribe() as Penguin:
        assert field_names(Penguin) == ["id", "species"]
        assert Penguin is md.model_class()
        assert locks.held(md.pk) == "shared"
        Penguin.objects.create(species="Adelie")
    assert locks.held(md.pk) is None
    CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
    with md.subscribe() as Penguin:
        assert field_names(Penguin) == ["id", "species", "age"]


def test_a_subscriber_may_change_its_table_and_keeps_its_subscription():
    md = make_table()
    with md.subscribe():
        CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
        assert locks.held(md.pk) == "shared"
        with md.subscribe() as Penguin:
            assert field_names(Penguin) == ["id", "species", "age"]
    assert locks.held(md.pk) is None


def test_a_modifier_may_read_and_group_changes():
    md = make_table()
    with md.modify():
        assert locks.held(md.pk) == "exclusive"
        CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
        with md.subscribe() as Penguin:
            assert field_names(Penguin) == ["id", "species", "age"]
            Penguin.objects.create(species="Gentoo", age="3")
        assert locks.held(md.pk) == "exclusive"
    assert locks.held(md.pk) is None


def test_subscribing_to_a_deleted_table_says_it_does_not_exist():
    md = make_table()
    ModelDefinition.objects.get(pk=md.pk).delete()
    with pytest.raises(ModelDefinition.DoesNotExist):
        with md.subscribe():
            pass
    assert locks.held(md.pk) is None


def test_a_nested_subscription_does_not_queue_behind_a_waiting_modifier(workers, settings):
    """Reentrant: asking the backend again would deadlock against the modifier."""
    md = make_table()
    modifier = workers(md, where="thread")
    with md.subscribe():
        modifier.send("with md.modify(timeout=30): result = 'changed'")
        wait_until_a_modifier_waits(md.pk)
        with md.subscribe(timeout=0.2) as Penguin:
            assert field_names(Penguin) == ["id", "species"]
        assert modifier.silent(0.2)
    assert modifier.answer() == "changed"


# -- writer preference -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["thread", "process"])
def test_a_waiting_modifier_goes_before_subscribers_that_arrive_after_it(workers, where):
    md = make_table()
    modifier = workers(md, where=where)
    latecomer = workers(md, where=where)
    with md.subscribe() as Penguin:
        modifier.send(
            "CharFieldDefinition.objects.create(model_def=md, name='age', max_length=5, null=True)"
        )
        wait_until_a_modifier_waits(md.pk)
        latecomer.send(
            "with md.subscribe() as Model: result = [f.name for f in Model._meta.fields]"
        )
        # The modifier waits for this subscription; the latecomer waits for the modifier.
        assert modifier.silent(0.3)
        assert latecomer.silent(0.1)
        assert "age" not in columns(md.db_table)
        Penguin.objects.create(species="Emperor")
    modifier.answer()
    assert latecomer.answer() == ["id", "species", "age"]


# -- timeouts and dead holders ----------------------------------------------------------


def test_a_modifier_blocked_past_the_timeout_gets_definition_busy_and_changes_nothing(
    workers, settings
):
    md = make_table()
    holder = workers(md)
    holder.run("held = md.subscribe(); held.__enter__()")
    settings.MUTANT_LOCK_TIMEOUT = 0.3
    with pytest.raises(DefinitionBusy, match="being changed"):
        CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
    assert "age" not in columns(md.db_table)
    assert not FieldDefinition.objects.filter(model_def=md, name="age").exists()
    assert ModelDefinition.objects.get(pk=md.pk).version == md.version
    assert locks.held(md.pk) is None

    holder.run("held.__exit__(None, None, None)")
    CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
    assert "age" in columns(md.db_table)


def test_a_subscriber_blocked_past_the_timeout_gets_definition_busy(workers):
    md = make_table()
    holder = workers(md)
    holder.run("held = md.modify(); held.__enter__()")
    with pytest.raises(DefinitionBusy):
        with md.subscribe(timeout=0.2):
            pass
    assert locks.held(md.pk) is None


@pytest.mark.parametrize(
    "hold",
    [
        "held = md.subscribe(); held.__enter__()",
        "held = md.modify(); held.__enter__()",
        # In the middle of a change: the lock and the schema transaction are open.
        "held = md.batch(); held.__enter__();"
        " CharFieldDefinition.objects.create(model_def=md, name='half', max_length=5)",
    ],
    ids=["subscription", "modify-lock", "half-done-change"],
)
def test_a_process_killed_while_holding_a_table_does_not_leave_it_locked(workers, settings, hold):
    md = make_table()
    holder = workers(md)
    holder.run(hold)
    holder.kill()
    settings.MUTANT_LOCK_TIMEOUT = 10
    CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
    with md.subscribe() as Penguin:
        assert field_names(Penguin) == ["id", "species", "age"]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_ddl_stuck_behind_a_long_transaction_gives_up_with_definition_busy(workers, settings):
    """A reader that did not subscribe still holds PostgreSQL's table lock."""
    md = make_table()
    reader = workers(md)
    reader.run(
        "from django.db import transaction\n"
        "reading = transaction.atomic(); reading.__enter__()\n"
        "result = md.model_class().objects.count()"
    )
    settings.MUTANT_DDL_LOCK_TIMEOUT = 0.3
    with pytest.raises(DefinitionBusy):
        CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
    assert "age" not in columns(md.db_table)
    assert not FieldDefinition.objects.filter(model_def=md, name="age").exists()
    reader.run("reading.__exit__(None, None, None)")


# -- several tables ------------------------------------------------------------------------


def test_two_modifiers_locking_two_tables_in_opposite_orders_both_finish(workers):
    first, second = make_table("Penguin"), make_table("Puffin")
    runners = []
    for order in ([first.pk, second.pk], [second.pk, first.pk]):
        runner = workers(first, MUTANT_LOCK_TIMEOUT="5")
        runner.run(f"a = ModelDefinition.objects.get(pk={order[0]}); order = {order}")
        runners.append(runner)
    # Both loops start together and run side by side for a while.
    loop = """
import time
while time.time() < {start}:
    time.sleep(0.001)
rounds = 0
while time.time() < {start} + 1.5:
    with locks.modify(order):
        if rounds % 50 == 0:
            a.verbose_name = f"changed {{rounds}}"
            a.save()
    rounds += 1
result = rounds
"""
    start = time.time() + 0.5
    for runner in runners:
        runner.send(loop.format(start=start))
    assert all(runner.answer() > 0 for runner in runners)


def test_a_lock_on_several_tables_that_times_out_leaves_none_of_them_held(workers):
    first, second = make_table("Penguin"), make_table("Puffin")
    holder = workers(second)
    holder.run("held = md.modify(); held.__enter__()")
    with pytest.raises(DefinitionBusy):
        with locks.modify([first.pk, second.pk], timeout=0.3):
            pass
    assert locks.held(first.pk) is None
    other = workers(first)
    assert other.run("with md.modify(timeout=0.3): result = 'changed'") == "changed"


@pytest.mark.parametrize("where", ["thread", "process"])
def test_two_subscribers_that_both_change_their_table_both_finish(workers, where):
    """Each trades its shared lock for the exclusive one; keeping it would deadlock."""
    md = make_table()
    runners = [workers(md, where=where, MUTANT_LOCK_TIMEOUT="20") for _ in range(2)]
    start = time.time() + 0.5
    for number, runner in enumerate(runners):
        runner.send(
            f"import time\n"
            f"with md.subscribe():\n"
            f"    while time.time() < {start}: time.sleep(0.001)\n"
            f"    CharFieldDefinition.objects.create(model_def=md, name='f{number}',"
            f" max_length=5, null=True)\n"
            f"    with md.subscribe() as Model:\n"
            f"        result = [f.name for f in Model._meta.fields]"
        )
    fields = [runner.answer() for runner in runners]
    assert "f0" in fields[0] and "f1" in fields[1]
    assert {"f0", "f1"} <= set(columns(md.db_table))


COULD_MODIFY = """
try:
    with md.modify(timeout=0.3):
        result = True
except DefinitionBusy:
    result = False
"""

# -- remembering between subscriptions ------------------------------------------------------

pg_only = pytest.mark.skipif("connection.vendor != 'postgresql'")


class CountingConnection:
    """Stands in for the lock session's connection and counts the statements sent."""

    def __init__(self, raw):
        self.raw = raw
        self.statements: list[str] = []

    def execute(self, sql, *args, **kwargs):
        self.statements.append(sql)
        return self.raw.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.raw, name)


def shared_holders(pk: int) -> set[int]:
    """Backend pids holding definition `pk` shared, from pg_locks."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND mode = 'ShareLock' AND classid = %s AND objid = %s AND objsubid = 2",
            [locks.PostgresLocks.NAMESPACE, pk],
        )
        return {pid for (pid,) in cursor.fetchall()}


def test_subscribing_again_to_an_unchanged_table_asks_the_database_nothing(monkeypatch):
    from django.test.utils import CaptureQueriesContext

    md = make_table()
    with md.subscribe():
        pass
    sent = None
    if connection.vendor == "postgresql":
        session = locks.lock_session(connection)
        sent = CountingConnection(session.raw)
        monkeypatch.setattr(session, "raw", sent)
    with CaptureQueriesContext(connection) as queries:
        with md.subscribe() as Penguin:
            assert field_names(Penguin) == ["id", "species"]
            assert locks.held(md.pk) == "shared"
        assert locks.held(md.pk) is None
    assert len(queries) == 0
    if sent is not None:
        assert sent.statements == []


def test_inside_a_subscription_the_tables_class_is_known_without_asking():
    from django.test.utils import CaptureQueriesContext

    md = make_table()
    with md.subscribe() as Penguin:
        with CaptureQueriesContext(connection) as queries:
            assert md.model_class() is Penguin
        assert len(queries) == 0
        with md.modify():
            CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
        # Changed by this thread: read again.
        assert field_names(md.model_class()) == ["id", "species", "age"]
    assert field_names(md.model_class()) == ["id", "species", "age"]


def test_a_change_made_elsewhere_is_seen_by_the_next_subscription_here(workers):
    md = make_table()
    with md.subscribe() as Penguin:
        assert field_names(Penguin) == ["id", "species"]
    changer = workers(md, MUTANT_LOCK_TIMEOUT=str(PATIENCE))
    changer.run(
        "CharFieldDefinition.objects.create(model_def=md, name='age', max_length=5, null=True)"
    )
    with md.subscribe() as Penguin:
        assert field_names(Penguin) == ["id", "species", "age"]
        Penguin.objects.create(species="Adelie", age="3")
    changer.run("CharFieldDefinition.objects.get(model_def=md, name='age').delete()")
    with md.subscribe() as Penguin:
        assert field_names(Penguin) == ["id", "species"]
        assert Penguin.objects.get().species == "Adelie"


@pg_only
def test_an_idle_process_keeps_its_lock_between_subscriptions_and_lets_a_modifier_in(
    workers, settings
):
    md = make_table()
    reader = workers(md)
    pid = reader.run(
        "from django.db import connection\n"
        "with md.subscribe() as Model: pass\n"
        "result = locks.lock_session(connection).pid"
    )
    # The reader is idle; its process still holds the table shared.
    assert pid in shared_holders(md.pk)
    settings.MUTANT_LOCK_TIMEOUT = PATIENCE
    CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
    assert "age" in columns(md.db_table)
    # Past the moment a table asked for is not kept: the next subscription
    # locks it again and reads its version, it does not remember the old one.
    time.sleep(locks.LockSession.COOLDOWN + 0.2)
    assert reader.run(
        "with md.subscribe() as Model: result = [f.name for f in Model._meta.fields]"
    ) == ["id", "species", "age"]
    assert pid in shared_holders(md.pk)


@pg_only
def test_a_process_whose_lock_session_is_killed_forgets_what_it_held(workers):
    md = make_table()
    with md.subscribe():
        pass
    session = locks.lock_session(connection)
    assert session.pid in shared_holders(md.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [session.pid])
    deadline = time.monotonic() + PATIENCE
    while session.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not session.alive
    # Nothing holds the table now: a change elsewhere goes through at once.
    workers(md).run(
        "CharFieldDefinition.objects.create(model_def=md, name='age', max_length=5, null=True)",
    )
    with md.subscribe() as Penguin:
        assert field_names(Penguin) == ["id", "species", "age"]
    assert locks.lock_session(connection) is not session
    assert locks.lock_session(connection).pid in shared_holders(md.pk)


@pg_only
def test_a_process_keeps_only_its_most_recently_used_tables_locked(monkeypatch):
    monkeypatch.setattr(locks.LockSession, "KEEP", 2)
    tables = [make_table(name) for name in ("Penguin", "Puffin", "Gannet")]
    session = locks.lock_session(connection)
    for md in tables:
        with md.subscribe():
            pass
    assert [session.pid in shared_holders(md.pk) for md in tables] == [False, True, True]
    with tables[1].subscribe():
        with tables[0].subscribe():
            pass
    assert [session.pid in shared_holders(md.pk) for md in tables] == [True, True, False]
    # What the session remembers holding is what the server holds.
    with tables[2].subscribe():
        pass
    assert session.held.keys() == {tables[0].pk, tables[2].pk}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s",
            [session.pid],
        )
        assert cursor.fetchone()[0] == 2


@pg_only
def test_without_a_lock_session_subscriptions_lock_through_their_own_connection(
    monkeypatch, workers
):
    import psycopg

    def refuse(self, connection):
        raise psycopg.OperationalError("sorry, too many clients already")

    md = make_table()
    locks.reset()
    monkeypatch.setattr(locks.LockSession, "__init__", refuse)
    modifier = workers(md)
    with md.subscribe() as Penguin:
        assert field_names(Penguin) == ["id", "species"]
        assert modifier.run(COULD_MODIFY) is False
    assert modifier.run(COULD_MODIFY) is True
    assert locks.lock_session(connection) is None
    CharFieldDefinition.objects.create(model_def=md, name="age", max_length=5, null=True)
    with md.subscribe() as Penguin:
        assert field_names(Penguin) == ["id", "species", "age"]


@pg_only
def test_a_forked_child_leaves_its_parents_lock_session_alone():
    md = make_table()
    with md.subscribe():
        pass
    session = locks.lock_session(connection)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status
        # Kept, unused: closing or collecting it would end the parent's session.
        os._exit(0 if not locks._sessions and session in locks._inherited else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    time.sleep(0.1)
    assert session.alive
    assert session.pid in shared_holders(md.pk)
    assert session.raw.execute("SELECT 1").fetchone() == (1,)


# -- the stress test ---------------------------------------------------------------------


def test_workers_see_no_errors_and_lose_nothing_while_the_schema_changes(db_env, tmp_path):
    md = ModelDefinition.objects.create(object_name="Stress")
    CharFieldDefinition.objects.create(model_def=md, name="token", max_length=50, unique=True)
    for name in ("first", "second"):
        CharFieldDefinition.objects.create(model_def=md, name=name, max_length=100, null=True)
    stop = str(tmp_path / "stop")
    env = {**db_env, "MUTANT_LOCK_TIMEOUT": "30", "LOCK_SESSION_COOLDOWN": "0.01"}
    # Two threads each: threads of a process share its lock session.
    writers = [Worker(env, "writer", str(md.pk), f"w{n}", stop, "2") for n in range(2)]
    changer = Worker(env, "changer", str(md.pk), "30", stop)
    try:
        changed = changer.line(PATIENCE * 3)
        reports = [writer.line(PATIENCE) for writer in writers]
    finally:
        Path(stop).touch()
        for worker in [changer, *writers]:
            worker.close()

    assert changed == {"changes": 30, "errors": []}
    for report in reports:
        assert report["errors"] == []
        assert report["iterations"] > 1
    md.refresh_from_db()
    assert md.object_name != "Stress"
    names = {f.pk: f.name for f in md.field_definitions()}
    rows = {row.token: row for row in md.model_class().objects.all()}
    checked = 0
    for report in reports:
        for token, values in report["written"].items():
            assert token in rows
            for field_pk, value in values.items():
                if int(field_pk) in names:
                    assert getattr(rows[token], names[int(field_pk)]) == value
                    checked += 1
    assert checked > 0


# -- the in-process backend ----------------------------------------------------------------


def test_the_in_process_lock_lets_a_waiting_writer_go_first():
    lock = locks._SharedExclusive()
    assert lock.acquire(exclusive=False, timeout=1)
    order = []

    def writer():
        assert lock.acquire(exclusive=True, timeout=10)
        order.append("writer")
        lock.release(exclusive=True)

    def reader():
        assert lock.acquire(exclusive=False, timeout=10)
        order.append("reader")
        lock.release(exclusive=False)

    threads = [threading.Thread(target=writer)]
    threads[0].start()
    while not lock.writers_waiting:
        time.sleep(0.001)
    threads.append(threading.Thread(target=reader))
    threads[1].start()
    assert not lock.acquire(exclusive=True, timeout=0.05)
    lock.release(exclusive=False)
    for thread in threads:
        thread.join(PATIENCE)
    assert order == ["writer", "reader"]


# -- requests ------------------------------------------------------------------------------


def table_fields(request, table):
    held = locks.held(request.mutant_definition.pk)
    return HttpResponse(f"{','.join(field_names(request.mutant_model))} {held}")


def busy_inside(request, table):
    raise DefinitionBusy()


def add_field(request, table):
    CharFieldDefinition.objects.create(
        model_def=request.mutant_definition, name="age", max_length=5, null=True
    )
    return HttpResponse(",".join(field_names(request.mutant_definition.model_class())))


def stream(request, table):
    def chunks():
        yield str(locks.held(request.mutant_definition.pk))

    return StreamingHttpResponse(chunks())


urlpatterns = [
    path("t/<str:table>/", table_fields),
    path("t/<str:table>/busy/", busy_inside),
    path("t/<str:table>/add/", add_field),
    path("t/<str:table>/stream/", stream),
    path("", include("config.urls")),
]

requests = pytest.mark.urls("tests.test_locks")


@requests
def test_a_request_to_a_table_holds_a_subscription_with_the_fresh_class(client):
    md = make_table()
    response = client.get("/t/penguin/")
    assert response.content.decode() == "id,species shared"
    assert locks.held(md.pk) is None
    assert client.get("/t/Puffin/").status_code == 404


@requests
def test_a_request_may_change_the_table_it_reads(client):
    md = make_table()
    assert client.get("/t/Penguin/add/").content.decode() == "id,species,age"
    assert locks.held(md.pk) is None


@requests
def test_a_busy_table_gives_a_friendly_503_page(client, workers, settings):
    md = make_table()
    holder = workers(md)
    holder.run("held = md.modify(); held.__enter__()")
    settings.MUTANT_LOCK_TIMEOUT = 0.2
    response = client.get("/t/Penguin/")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert "This table is being changed, try again in a moment." in response.content.decode()
    assert any(t.name == "builder/busy.html" for t in response.templates)
    holder.run("held.__exit__(None, None, None)")
    assert client.get("/t/Penguin/").status_code == 200


@requests
def test_definition_busy_raised_in_a_view_gives_the_503_page_and_releases(client):
    md = make_table()
    response = client.get("/t/Penguin/busy/")
    assert response.status_code == 503
    assert locks.held(md.pk) is None


@requests
def test_a_streaming_response_holds_the_subscription_until_it_is_closed(client):
    md = make_table()
    response = client.get("/t/Penguin/stream/")
    assert locks.held(md.pk) == "shared"
    assert b"".join(response.streaming_content) == b"shared"
    response.close()
    assert locks.held(md.pk) is None


@pg_only
def test_a_subscription_inside_a_transaction_lasts_until_the_transaction_ends(workers):
    """A session lock could not be released from a failed transaction: inside
    one, PostgreSQL's lock is the transaction's, whatever happens in it."""
    md = make_table()
    modifier = workers(md, where="thread")
    with pytest.raises(DatabaseError), transaction.atomic():
        with md.subscribe() as Penguin:
            Penguin.objects.create(species="Adelie")
        assert locks.held(md.pk) is None
        assert modifier.run(COULD_MODIFY) is False
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")  # the transaction fails
    assert modifier.run(COULD_MODIFY) is True


@pg_only
def test_each_connection_object_locks_through_itself(workers):
    """Django gives each async context its own connection object, even on one
    thread: a subscription must lock through the one its caller uses."""
    md = make_table()
    modifier = workers(md, where="thread")
    inside, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def subscriber() -> None:
        try:
            mine = connections[DEFAULT_DB_ALIAS]
            other = connections[DEFAULT_DB_ALIAS] = connections.create_connection(DEFAULT_DB_ALIAS)
            try:
                with md.subscribe():  # through the other object, in autocommit
                    pass
            finally:
                connections[DEFAULT_DB_ALIAS] = mine
                other.close()
            with transaction.atomic():
                with md.subscribe():
                    pass
                inside.set()
                done.wait(PATIENCE)
        except BaseException as error:
            errors.append(error)
            inside.set()
        finally:
            connection.close()

    thread = threading.Thread(target=subscriber)
    thread.start()
    try:
        assert inside.wait(PATIENCE)
        # Held until the transaction of the thread's own connection ends.
        assert modifier.run(COULD_MODIFY) is False
    finally:
        done.set()
        thread.join(PATIENCE)
    assert not errors
    assert modifier.run(COULD_MODIFY) is True
