#!/usr/bin/env python3
"""A Python external-task worker for ramp.

It does what `ramp worker` does, from a second gRPC implementation: it long-polls
the engine's fetchAndLock (camunda-external-task-client-python3), turns every send
task it fetches into a form task through ramp.v1.FormService/CreateFormTask
(grpcio, with stubs generated at startup from ramp's .proto files), and completes
the external task. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import requests
from camunda.client.external_task_client import ExternalTaskClient
from camunda.external_task.external_task import ExternalTask

log = logging.getLogger("ramp.python_worker")

HERE = Path(__file__).resolve().parent
DEFAULT_PROTO_DIR = HERE.parent.parent / "proto"

# Codes worth calling again at once (with backoff); when they persist, the task
# fails with retries left and the engine offers it again later.
RETRY_NOW = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.ABORTED,
}
# Backoff between CreateFormTask calls while ramp answers one of RETRY_NOW.
CALL_BACKOFF_SECONDS = (0.2, 0.4, 0.8, 1.6, 3.2)
FAILURE_MESSAGE = "ramp could not create the form"
# ramp refuses variables and form data above 256 KiB.
PREFILL_LIMIT_BYTES = 256 * 1024


class Shutdown(BaseException):
    """Raised by the signal handler to abort a long poll (a BaseException, so that
    nothing between us and the socket swallows it as an ordinary error)."""


class ConfigError(Exception):
    pass


# --- topics ----------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    """A topic to fetch, and where its forms' assignee comes from."""

    name: str
    # A dotted path into a JSON variable (`supplier.companyOwner`), split.
    assignee_path: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> "Topic":
        text = text.strip()
        name, sep, options = text.partition(":")
        name = name.strip()
        if not name:
            raise ConfigError(f"topic {text!r}: the topic name is empty")
        if not sep:
            return cls(name)
        if not options.startswith("assignee="):
            raise ConfigError(f"topic {text!r}: the only option is assignee=PATH")
        parts = tuple(options[len("assignee="):].split("."))
        if any(not part for part in parts):
            raise ConfigError(f"topic {text!r}: the assignee path has an empty part")
        return cls(name, parts)

    @classmethod
    def parse_list(cls, text: str) -> list["Topic"]:
        return [cls.parse(part) for part in text.split(",") if part.strip()]

    def __str__(self) -> str:
        if self.assignee_path:
            return f"{self.name}:assignee={'.'.join(self.assignee_path)}"
        return self.name


# --- variables and the assignee --------------------------------------------------


class Unreadable(Exception):
    pass


def decode_value(name: str, variable: dict[str, Any]) -> Any:
    """One engine variable (fetched with deserializeValues=false) as plain JSON."""
    kind = str(variable.get("type") or "").lower()
    value = variable.get("value")
    if value is None:
        return None
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    if kind == "object":
        info = variable.get("valueInfo") or {}
        data_format = info.get("serializationDataFormat")
        if not isinstance(value, str):
            return value
        if data_format == "application/json":
            return json.loads(value)
        raise Unreadable(f"variable {name} is an Object serialized as {data_format}")
    if kind in ("bytes", "file", "xml"):
        raise Unreadable(f"variable {name} is of type {variable.get('type')}")
    # String, Boolean, Short, Integer, Long, Double, Date (a string), Null.
    return value


def decode_variables(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The variables that can be read as JSON; the others are left out."""
    values: dict[str, Any] = {}
    for name, variable in (raw or {}).items():
        try:
            values[name] = decode_value(name, variable or {})
        except (Unreadable, ValueError) as error:
            log.debug("skipping a variable: %s", error)
    return values


class Unresolvable(Exception):
    """The assignee cannot be found: the task becomes an incident."""


def resolve_path(values: dict[str, Any], path: tuple[str, ...], origin: str) -> str:
    """Follows a dotted path (first part: a variable) to a non-empty text."""
    dotted = ".".join(path)
    if path[0] not in values:
        raise Unresolvable(f"{origin} {dotted}: there is no variable {path[0]}")
    value = values[path[0]]
    for part in path[1:]:
        if isinstance(value, str):
            # A String variable may hold JSON text too.
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise Unresolvable(f"{origin} {dotted}: {part!r} does not exist in variable {path[0]}")
    if not isinstance(value, str) or not value.strip():
        raise Unresolvable(f"{origin} {dotted} does not lead to a non-empty text (found {json.dumps(value)[:80]})")
    return value.strip()


CONTEXT_LIMIT = 200


def context_line(names: str, values: dict[str, Any]) -> str:
    """The form's context line (FormTaskSummary.context), as `ramp worker` makes it:
    the values of the variables the send task's `ramp.context` property lists
    (comma-separated; a dotted name reaches into a JSON variable), as text (true and
    false as "yes" and "no"), joined by ", "; unset, empty, null, lists and objects
    are left out; at most 200 characters."""
    shown = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        value: Any = values
        for step in name.split("."):
            value = value.get(step) if isinstance(value, dict) else None
            if value is None:
                break
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, (int, float)):
            text = str(value)
        elif isinstance(value, str):
            text = " ".join(value.split())
        else:
            continue
        if text:
            shown.append(text)
    line = ", ".join(shown)
    return line if len(line) <= CONTEXT_LIMIT else line[: CONTEXT_LIMIT - 1] + "\u2026"


def choose_assignee(
    topic: Topic | None,
    values: dict[str, Any],
    assignee_property: str | None,
    business_key: str,
) -> str:
    """Who fills the form: the topic's path into a JSON variable, else the
    `assignedTo` variable (the send task's local variable, set by an input
    mapping), else the variable the `ramp.assignee` property names, else the
    business key."""
    if topic is not None and topic.assignee_path:
        return resolve_path(values, topic.assignee_path, f"topic {topic.name}'s assignee path")
    assigned = values.get("assignedTo")
    if isinstance(assigned, str) and assigned.strip():
        return assigned.strip()
    if assignee_property:
        path = tuple(assignee_property.strip().split("."))
        if any(not part for part in path):
            raise Unresolvable(f"the ramp.assignee property {assignee_property!r} is not a variable name")
        return resolve_path(values, path, "the ramp.assignee property")
    return business_key


# --- generated gRPC stubs ----------------------------------------------------------


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def load_stubs(proto_dir: Path):
    """Generates Python stubs for ramp's protos (once per content and grpcio-tools
    version, into a cache folder) and imports them."""
    import grpc_tools
    from google import protobuf
    from grpc_tools import protoc

    proto_dir = proto_dir.resolve()
    files = sorted((proto_dir / "ramp" / "v1").glob("*.proto"))
    if not files:
        raise ConfigError(f"no .proto files in {proto_dir / 'ramp' / 'v1'} (set --proto-dir or RAMP_PROTO_DIR)")
    digest = hashlib.sha256()
    digest.update(f"grpcio-tools {importlib.metadata.version('grpcio-tools')} protobuf {protobuf.__version__}\n".encode())
    for file in files:
        digest.update(str(file.relative_to(proto_dir)).encode() + b"\0" + file.read_bytes() + b"\0")
    key = digest.hexdigest()[:20]

    roots = [cache_home() / "ramp" / "python-worker-stubs", Path(tempfile.gettempdir()) / f"ramp-python-worker-stubs-{os.getuid()}"]
    out = None
    for root in roots:
        candidate = root / key
        if (candidate / ".complete").exists():
            out = candidate
            break
        try:
            root.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".generating-", dir=root))
        except OSError as error:
            log.warning("cannot write stubs to %s: %s", root, error)
            continue
        include = Path(grpc_tools.__file__).resolve().parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"--proto_path={proto_dir}",
            f"--proto_path={include}",
            f"--python_out={work}",
            f"--grpc_python_out={work}",
            *[str(file) for file in files],
        ]
        if protoc.main(args) != 0:
            shutil.rmtree(work, ignore_errors=True)
            raise ConfigError(f"grpcio-tools could not compile the protos in {proto_dir}")
        for package in (work / "ramp", work / "ramp" / "v1"):
            (package / "__init__.py").touch()
        (work / ".complete").touch()
        try:
            os.rename(work, candidate)
        except OSError:
            # Another worker generated the same stubs meanwhile: use theirs.
            shutil.rmtree(work, ignore_errors=True)
        if not (candidate / ".complete").exists():
            raise ConfigError(f"cannot place generated stubs in {candidate}")
        log.info("generated gRPC stubs from %s into %s", proto_dir, candidate)
        out = candidate
        break
    if out is None:
        raise ConfigError("no writable folder for the generated stubs")
    sys.path.insert(0, str(out))
    pb2 = importlib.import_module("ramp.v1.form_service_pb2")
    pb2_grpc = importlib.import_module("ramp.v1.form_service_pb2_grpc")
    return pb2, pb2_grpc


def grpc_target(server: str) -> tuple[str, bool]:
    """`host:port`, `http://host:port` or `https://host[:port]` → (target, tls)."""
    server = server.strip().rstrip("/")
    if "://" not in server:
        if not server:
            raise ConfigError("RAMP_SERVER is empty")
        return server, False
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"RAMP_SERVER {server!r} is not a server address (host:port or http[s]://host:port)")
    tls = parts.scheme == "https"
    try:
        port = parts.port
    except ValueError as error:
        raise ConfigError(f"RAMP_SERVER {server!r}: {error}") from None
    netloc = parts.netloc if port else f"{parts.netloc}:{443 if tls else 80}"
    return netloc, tls


# --- the engine ------------------------------------------------------------------


class EngineCalls:
    """What the Python client lacks (extendLock, unlock), and retries around what it
    has (complete, failure)."""

    def __init__(self, base_url: str, worker_id: str, headers: dict[str, str], timeout: float):
        self.base = base_url.rstrip("/") + "/external-task"
        self.worker_id = worker_id
        self.headers = headers
        self.timeout = timeout

    def extend_lock(self, task_id: str, duration_ms: int) -> None:
        response = requests.post(
            f"{self.base}/{task_id}/extendLock",
            json={"workerId": self.worker_id, "newDuration": duration_ms},
            headers=self.headers,
            timeout=self.timeout,
        )
        if response.status_code != 204:
            raise RuntimeError(f"extendLock answered {response.status_code}: {response.text[:200]}")

    def locked_by_us(self) -> list[str]:
        response = requests.get(self.base, params={"workerId": self.worker_id, "locked": "true"},
                                headers=self.headers, timeout=self.timeout)
        response.raise_for_status()
        return [task["id"] for task in response.json()]

    def unlock(self, task_id: str) -> None:
        response = requests.post(f"{self.base}/{task_id}/unlock", headers=self.headers, timeout=self.timeout)
        if response.status_code != 204:
            raise RuntimeError(f"unlock answered {response.status_code}: {response.text[:200]}")

    def retrying(self, what: str, call) -> None:
        """Calls the library; retries connection errors and 5xx (optimistic locking)
        a few times, gives up at once on 4xx (the task is gone or locked by another
        worker: it moved on without us)."""
        wait = 0.2
        while True:
            try:
                call()
                return
            except requests.RequestException as error:
                reason = f"{type(error).__name__}: {error}"
            except Exception as error:  # the library raises bare Exceptions: "received 404 : ..."
                reason = str(error)
                if not reason.startswith("received 5"):
                    raise
            if wait > 5:
                raise RuntimeError(f"{what} kept failing: {reason}")
            log.debug("%s failed (%s); retrying in %.1fs", what, reason, wait)
            time.sleep(wait)
            wait *= 2


class LockKeeper:
    """Extends a task's lock at half its duration while the task is handled."""

    def __init__(self, engine: EngineCalls, task_id: str, lock_ms: int):
        self.engine, self.task_id, self.lock_ms = engine, task_id, lock_ms
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lock-{task_id[:8]}", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    def _run(self):
        while not self.done.wait(self.lock_ms / 2000):
            try:
                self.engine.extend_lock(self.task_id, self.lock_ms)
                log.debug("extended the lock of task %s", self.task_id)
            except Exception as error:
                log.warning("cannot extend the lock of task %s: %s", self.task_id, error)


# --- the worker --------------------------------------------------------------------


@dataclass
class Settings:
    camunda_url: str
    server: str
    token: str
    topics: list[Topic]
    definition_keys: list[str]
    long_poll_ms: int
    lock_ms: int
    max_in_flight: int
    retries: int
    retry_timeout_ms: int
    proto_dir: Path
    camunda_user: str | None
    camunda_password: str | None
    camunda_timeout_ms: int


@dataclass
class Outcome:
    kind: str  # created | incident | transient | released
    reason: str = ""
    detail: str = ""


class Worker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.id = f"ramp-py-worker-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.topics = {topic.name: topic for topic in settings.topics}
        self.stopping = threading.Event()
        self._in_poll = False
        self._signals = 0
        self._busy = 0
        self._busy_changed = threading.Condition()
        self._threads: set[threading.Thread] = set()

        self.pb2, pb2_grpc = load_stubs(settings.proto_dir)
        target, tls = grpc_target(settings.server)
        credentials = grpc.ssl_channel_credentials() if tls else None
        self.channel = grpc.secure_channel(target, credentials) if tls else grpc.insecure_channel(target)
        self.forms = pb2_grpc.FormServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {settings.token}"),)
        self.server_shown = f"{'https' if tls else 'http'}://{target}"

        config: dict[str, Any] = {
            "maxTasks": settings.max_in_flight,
            "lockDuration": settings.lock_ms,
            "asyncResponseTimeout": settings.long_poll_ms,
            "httpTimeoutMillis": settings.camunda_timeout_ms,
            "includeExtensionProperties": True,
            # Json and Object variables arrive as their JSON text; decode_value parses them.
            "deserializeValues": False,
            "usePriority": True,
        }
        headers = {"Content-Type": "application/json"}
        if settings.camunda_user:
            config["auth_basic"] = {"username": settings.camunda_user, "password": settings.camunda_password or ""}
            basic = base64.b64encode(f"{settings.camunda_user}:{settings.camunda_password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        self.client = ExternalTaskClient(self.id, settings.camunda_url.rstrip("/"), config)
        if settings.definition_keys:
            # The library has no option for it: add the filter to each topic it builds.
            build_topics = self.client._get_topics

            def only_these_definitions(*args, **kwargs):
                topics = build_topics(*args, **kwargs)
                for topic in topics:
                    topic["processDefinitionKeyIn"] = list(settings.definition_keys)
                return topics

            self.client._get_topics = only_these_definitions
        self.engine = EngineCalls(settings.camunda_url, self.id, headers, settings.camunda_timeout_ms / 1000)

    # signals ---------------------------------------------------------------------

    def _on_signal(self, signum, _frame):
        name = signal.Signals(signum).name
        self._signals += 1
        if self._signals == 1:
            self.stopping.set()
            if self._in_poll:
                # An abandoned long poll stays registered in the engine until its
                # timeout, and the engine locks new tasks to it that nobody receives.
                log.info("%s: stopping when the current long poll ends (within %.0f s); %s again stops at once",
                         name, self.settings.long_poll_ms / 1000, name)
            else:
                log.info("%s: stopping (finishing or giving back held tasks)", name)
            return
        if self._in_poll:
            log.info("%s again: abandoning the long poll", name)
            raise Shutdown()
        log.warning("%s again: exiting now; held tasks return to the engine when their locks run out", name)
        os._exit(128 + signum)

    def install_signals(self):
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # the loop ----------------------------------------------------------------------

    def _free_slots(self) -> int:
        with self._busy_changed:
            while self._busy >= self.settings.max_in_flight and not self.stopping.is_set():
                self._busy_changed.wait(0.5)
            return 0 if self.stopping.is_set() else self.settings.max_in_flight - self._busy

    def run(self) -> None:
        topic_names = [topic.name for topic in self.settings.topics]
        log.info("worker %s started: engine %s, ramp %s, topics %s", self.id, self.settings.camunda_url,
                 self.server_shown, ", ".join(str(t) for t in self.settings.topics))
        backoff = 0.2
        while not self.stopping.is_set():
            free = self._free_slots()
            if free == 0:
                break
            self.client.config["maxTasks"] = free
            fetched = None
            try:
                self._in_poll = True
                if self.stopping.is_set():
                    break
                fetched = self.client.fetch_and_lock(topic_names)
                self._in_poll = False
            except Shutdown:
                break
            except Exception as error:
                self._in_poll = False
                log.warning("cannot fetch tasks (%s); retrying in %.1fs", error, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            finally:
                self._in_poll = False
            backoff = 0.2
            for raw in fetched or []:
                if self.stopping.is_set():
                    # A stopping worker takes on nothing new.
                    self._give_back(raw.get("id", ""), "fetched while stopping")
                else:
                    self._start(raw)
        log.info("stopping: %d task(s) in flight", len(self._threads))
        for thread in list(self._threads):
            thread.join()
        self._give_back_stranded()
        self.channel.close()
        log.info("worker %s stopped", self.id)

    def _give_back_stranded(self) -> None:
        """An aborted long poll stays registered in the engine until its timeout,
        and the engine may lock new tasks to it that no one receives. Give back
        those already locked to this worker id; any locked after this wait out
        their lock (--lock-ms) before another worker gets them."""
        try:
            stranded = self.engine.locked_by_us()
        except Exception as error:
            log.warning("cannot look for tasks locked to this worker: %s", error)
            return
        for task_id in stranded:
            self._give_back(task_id, "locked to this worker by its abandoned long poll")

    def _give_back(self, task_id: str, why: str) -> None:
        try:
            self.engine.unlock(task_id)
            log.info("task %s given back to the engine (%s)", task_id, why)
        except Exception as error:
            log.warning("cannot give back task %s (%s): %s", task_id, why, error)

    def _start(self, raw: dict[str, Any]) -> None:
        with self._busy_changed:
            self._busy += 1
        thread = threading.Thread(target=self._handle_safely, args=(raw,), name=f"task-{raw.get('id', '?')[:8]}")
        self._threads.add(thread)
        thread.start()

    def _handle_safely(self, raw: dict[str, Any]) -> None:
        try:
            self.handle(raw)
        except Exception:
            log.exception("unexpected error handling task %s; its lock will run out", raw.get("id"))
        finally:
            self._threads.discard(threading.current_thread())
            with self._busy_changed:
                self._busy -= 1
                self._busy_changed.notify_all()

    # one task ------------------------------------------------------------------------

    def handle(self, raw: dict[str, Any]) -> None:
        task = ExternalTask(raw)
        task_id = task.get_task_id()
        with LockKeeper(self.engine, task_id, self.settings.lock_ms):
            outcome = self.create_form(task, raw)
        activity = task.get_activity_id()
        try:
            if outcome.kind == "created":
                self.engine.retrying("complete", lambda: self.client.complete(task_id, {}, {}))
                log.info("task %s (%s) completed: %s", task_id, activity, outcome.reason)
            elif outcome.kind == "incident":
                log.warning("task %s (%s) fails without retries (incident): %s", task_id, activity, outcome.reason)
                # retries=0 passed straight to the client: ExternalTask.failure() would
                # compute "retries - 1" from the task's own count instead.
                self.engine.retrying("failure", lambda: self.client.failure(
                    task_id, f"{FAILURE_MESSAGE}: {outcome.reason}"[:500], outcome.detail or outcome.reason, 0, 0))
            elif outcome.kind == "transient":
                left, timeout_ms = self.retry_plan(raw.get("retries"))
                if left:
                    log.warning("task %s (%s) failed, %d retr%s left, next in %d ms: %s", task_id, activity, left,
                                "y" if left == 1 else "ies", timeout_ms, outcome.reason)
                else:
                    log.warning("task %s (%s) failed with no retries left (incident): %s", task_id, activity,
                                outcome.reason)
                self.engine.retrying("failure", lambda: self.client.failure(
                    task_id, f"{FAILURE_MESSAGE}: {outcome.reason}"[:500], outcome.detail or outcome.reason, left, timeout_ms))
            else:
                self.engine.retrying("unlock", lambda: self.engine.unlock(task_id))
                log.info("task %s (%s) given back to the engine", task_id, activity)
        except Exception as error:
            text = str(error)
            if text.startswith("received 404") or text.startswith("received 400"):
                log.warning("task %s moved on without us (%s)", task_id, text)
            else:
                log.warning("cannot report the outcome of task %s (%s); its lock will run out", task_id, text)

    def retry_plan(self, retries: int | None) -> tuple[int, int]:
        """Retries left after this failure and the wait before the next try. The
        first failure reports --retries (as the client's ExternalTask.failure does),
        each later one one less; the wait doubles each time."""
        maximum = self.settings.retries
        left = retries - 1 if isinstance(retries, int) and retries >= 1 else maximum
        failures = max(maximum - left + 1, 1)
        timeout = self.settings.retry_timeout_ms * 2 ** min(failures - 1, 20)
        return max(left, 0), min(timeout, 24 * 3600 * 1000)

    def create_form(self, task: ExternalTask, raw: dict[str, Any]) -> Outcome:
        business_key = (task.get_business_key() or "").strip()
        if not business_key:
            return Outcome("incident", "the process has no business key (the user's email)")
        values = decode_variables(raw.get("variables"))
        form_name = task.get_extension_property("ramp.form") or task.get_activity_id()
        message_name = task.get_extension_property("ramp.message") or form_name
        try:
            assignee = choose_assignee(self.topics.get(task.get_topic_name()), values,
                                       task.get_extension_property("ramp.assignee"), business_key)
        except Unresolvable as error:
            return Outcome("incident", f"the assignee cannot be resolved: {error}")

        request = self.pb2.CreateFormTaskRequest(
            external_task_id=task.get_task_id(),
            process_instance_id=task.get_process_instance_id() or "",
            process_definition_id=raw.get("processDefinitionId") or "",
            process_definition_key=raw.get("processDefinitionKey") or "",
            business_key=business_key,
            activity_id=task.get_activity_id(),
            activity_instance_id=raw.get("activityInstanceId") or "",
            execution_id=raw.get("executionId") or "",
            form_name=form_name,
            message_name=message_name,
            assignee=assignee,
            topic_name=task.get_topic_name(),
            tenant_id=task.get_tenant_id() or "",
            context=context_line(task.get_extension_property("ramp.context") or "", values),
        )
        # Prefill with the instance's variables; ramp keeps only the form's own fields.
        try:
            if len(json.dumps(values)) <= PREFILL_LIMIT_BYTES:
                request.prefill.update(values)
            else:
                log.info("task %s: variables too large to prefill; sending none", task.get_task_id())
        except (TypeError, ValueError) as error:
            request.ClearField("prefill")
            log.info("task %s: variables cannot be a prefill (%s); sending none", task.get_task_id(), error)

        attempt = 0
        while True:
            try:
                response = self.forms.CreateFormTask(request, metadata=self.metadata, timeout=30)
                summary = response.form_task.summary
                return Outcome("created", f"form task {summary.id} ({summary.form_name}) for {summary.assignee}"
                                          f"{'' if response.created else ', already there'}")
            except grpc.RpcError as error:
                code, details = error.code(), error.details() or ""
            reason = f"ramp answered {code.name}: {details}"
            if code in RETRY_NOW and attempt < len(CALL_BACKOFF_SECONDS):
                wait = CALL_BACKOFF_SECONDS[attempt] * random.uniform(0.8, 1.2)
                attempt += 1
                log.info("task %s: %s; calling again in %.1fs", task.get_task_id(), reason, wait)
                if self.stopping.wait(wait):
                    return Outcome("released", "stopping")
                continue
            if code in RETRY_NOW:
                return Outcome("transient", reason)
            if code == grpc.StatusCode.UNAUTHENTICATED:
                # A renewed token may fix it: let the engine retry.
                return Outcome("transient", f"ramp refused the worker's token: {details}")
            # INVALID_ARGUMENT, PERMISSION_DENIED, NOT_FOUND, FAILED_PRECONDITION, ...:
            # the same request would be refused again.
            return Outcome("incident", f"ramp refused the form ({code.name}): {details}",
                           detail=f"CreateFormTask answered {code.name}: {details}\nrequest: "
                                  f"form_name={form_name} message_name={message_name} assignee={assignee} "
                                  f"business_key={business_key} activity_id={task.get_activity_id()}")


# --- configuration -------------------------------------------------------------------


def env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None


def parse_args(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(
        description="ramp's external-task worker in Python: send tasks become form tasks "
                    "through ramp.v1.FormService/CreateFormTask. The token comes from RAMP_TOKEN.")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME[:assignee=PATH]",
                        help="a topic to fetch; PATH is a dotted path into a JSON variable; repeatable. "
                             "Default: RAMP_WORKER_TOPICS (comma-separated), else submit_form")
    parser.add_argument("--camunda-url", default=os.environ.get("RAMP_CAMUNDA_URL"),
                        help="the engine's REST base (RAMP_CAMUNDA_URL), e.g. http://127.0.0.1:8080/engine-rest")
    parser.add_argument("--server", default=os.environ.get("RAMP_SERVER") or "http://127.0.0.1:50051",
                        help="ramp's address (RAMP_SERVER): host:port or http[s]://host:port")
    parser.add_argument("--long-poll-ms", type=int, default=env_int("RAMP_WORKER_LONG_POLL_MS", 20_000),
                        help="how long the engine may hold a long poll (RAMP_WORKER_LONG_POLL_MS)")
    parser.add_argument("--lock-ms", type=int, default=env_int("RAMP_WORKER_LOCK_MS", 60_000),
                        help="lock duration of a fetched task, extended while busy (RAMP_WORKER_LOCK_MS)")
    parser.add_argument("--max-in-flight", type=int, default=env_int("RAMP_WORKER_MAX_IN_FLIGHT", 8),
                        help="tasks handled at once at most (RAMP_WORKER_MAX_IN_FLIGHT)")
    parser.add_argument("--retries", type=int, default=env_int("RAMP_WORKER_RETRIES", 3),
                        help="retries reported at the first transient failure (RAMP_WORKER_RETRIES)")
    parser.add_argument("--retry-timeout-ms", type=int, default=env_int("RAMP_WORKER_RETRY_TIMEOUT_MS", 2_000),
                        help="first retry timeout, doubled per failure (RAMP_WORKER_RETRY_TIMEOUT_MS)")
    parser.add_argument("--definition-key", action="append", default=[], metavar="KEY",
                        help="only tasks of these process definition keys (repeatable; RAMP_WORKER_DEFINITION_KEYS, "
                             "comma-separated); all when none is given")
    parser.add_argument("--proto-dir", type=Path, default=Path(os.environ.get("RAMP_PROTO_DIR") or DEFAULT_PROTO_DIR),
                        help="folder holding ramp/v1/*.proto (RAMP_PROTO_DIR; default: the repository's proto/)")
    args = parser.parse_args(argv)

    if args.topic:
        topics = [Topic.parse(text) for text in args.topic]
    else:
        topics = Topic.parse_list(os.environ.get("RAMP_WORKER_TOPICS", "")) or [Topic("submit_form")]
    names = [topic.name for topic in topics]
    if len(set(names)) != len(names):
        raise ConfigError(f"a topic is given twice: {', '.join(names)}")
    if not args.camunda_url:
        raise ConfigError("RAMP_CAMUNDA_URL is not set (e.g. http://127.0.0.1:8080/engine-rest)")
    token = os.environ.get("RAMP_TOKEN", "").strip()
    if not token:
        raise ConfigError("RAMP_TOKEN is not set: give the worker a token with the ramp-worker role")
    if args.max_in_flight < 1:
        raise ConfigError("--max-in-flight must be at least 1")
    if args.lock_ms < 1_000:
        raise ConfigError("--lock-ms must be at least 1000")
    if not 0 < args.long_poll_ms <= 1_800_000:
        raise ConfigError("--long-poll-ms must be between 1 and 1800000")
    if args.retries < 0 or args.retry_timeout_ms < 0:
        raise ConfigError("--retries and --retry-timeout-ms cannot be negative")
    grpc_target(args.server)  # checked now, not at the first task
    return Settings(
        camunda_url=args.camunda_url,
        server=args.server,
        token=token,
        topics=topics,
        definition_keys=[key.strip() for text in (args.definition_key or
                                                  [os.environ.get("RAMP_WORKER_DEFINITION_KEYS", "")])
                         for key in text.split(",") if key.strip()],
        long_poll_ms=args.long_poll_ms,
        lock_ms=args.lock_ms,
        max_in_flight=args.max_in_flight,
        retries=args.retries,
        retry_timeout_ms=args.retry_timeout_ms,
        proto_dir=args.proto_dir,
        camunda_user=os.environ.get("RAMP_CAMUNDA_USER") or None,
        camunda_password=os.environ.get("RAMP_CAMUNDA_PASSWORD"),
        camunda_timeout_ms=env_int("RAMP_CAMUNDA_TIMEOUT_MS", 10_000),
    )


class QuietLibrary(logging.Filter):
    """The Camunda client logs through the root logger (`logging.info`), e.g. its
    whole config at start: keep its records below WARNING out unless debugging."""

    def __init__(self, debug: bool):
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if self.debug or record.levelno >= logging.WARNING:
            return True
        from_library = record.name.startswith("camunda") or f"{os.sep}camunda{os.sep}" in record.pathname
        return not from_library


def setup_logging() -> None:
    # RAMP_LOG uses tracing's syntax (`info,ramp=debug`); take its bare level.
    words = [w.strip() for w in os.environ.get("RAMP_LOG", "info").split(",") if w.strip() and "=" not in w]
    level_name = (words[0] if words else "info").upper()
    level = getattr(logging, "WARNING" if level_name == "WARN" else level_name, logging.INFO)
    if not isinstance(level, int):
        level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(threadName)s %(message)s"))
    handler.addFilter(QuietLibrary(level <= logging.DEBUG))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def main(argv: list[str]) -> int:
    setup_logging()
    try:
        settings = parse_args(argv)
        worker = Worker(settings)
    except ConfigError as error:
        log.error("%s", error)
        return 2
    worker.install_signals()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
