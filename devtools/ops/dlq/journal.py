"""The replay's memory across kills: one line per dead-letter message id and step,
appended and synced before the step it guards.

The protocol of the journalled replay (`replay`). Per batch, with `id` a dead-letter message id:
  1. receive (hidden for the hold);          journal `sending id hidden_until`  (synced)
  2. SendMessageBatch to the events queue;   journal `sent id hidden_until`     (synced)
                                          or `unsent id` when SQS refused it for certain;
  3. DeleteMessageBatch with the fresh receipt handle; journal `deleted id`.
Rules on every later run, whatever happened in between:
  - `sent`: never sent again. Deleted when next received; until then it stays in the journal,
    even if no scan finds it: a message hidden by a killed run's hold (in flight) is absent
    from a scan and still on the queue, and absence proves nothing.
  - `sending` without an answer (killed during the send, or its answer lost): in doubt. It may
    be on the events queue, so it is sent again only when the consumer's dedupe table will
    answer for a copy that landed, or the operator accepts the risk (`resend_in_doubt`), and
    deleted only when that table says it was delivered (`in_doubt`): never on a guess.
  - an entry is forgotten only when its delete is confirmed, or once the dead-letter queue's
    retention period has passed since its receive: then SQS has dropped the message for sure.
The one thing the journal cannot survive is being lost (another machine, a deleted file):
then a message of the batch in flight at the kill is sent again (≤ 10 per interrupted run),
carrying the `replay_of` attribute with the same dead-letter message id and the same event id.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final

HOLD_MARGIN_SECONDS: Final = 1.0  # a delete later than this before the hold ends is unconfirmed


class EntryState(Enum):
    IN_DOUBT = "sending"  # the send was started; its answer never came
    SENT = "sent"  # on the events queue; the dead-letter copy must be deleted, never re-sent


@dataclass(frozen=True)
class Entry:
    state: EntryState
    hidden_until: float  # unix seconds when the hold of the receive that sent it ends


class JournalBusyError(RuntimeError):
    """Another replay on this machine holds the journal."""


class Journal:
    """The replay's memory across kills: one line per dead-letter message id and step, appended
    and synced before the step it guards. Only one replay may use a journal at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, Entry] = {}
        self._locked = False
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                self._apply(line.split())

    def _apply(self, fields: list[str]) -> None:
        if len(fields) < 2:
            return  # a line torn by a crash mid-write: its step never started
        action, message_id = fields[0], fields[1]
        if action in ("sending", "sent"):
            try:
                # Old journals have no time: keep such an entry a full retention from now.
                hidden_until = float(fields[2]) if len(fields) > 2 else time.time()
            except ValueError:
                hidden_until = time.time()
            self.entries[message_id] = Entry(EntryState(action), hidden_until)
        elif action in ("unsent", "deleted"):
            self.entries.pop(message_id, None)

    @property
    def pending(self) -> set[str]:
        """Ids that must not be sent again (sent, or in doubt)."""
        return set(self.entries)

    def state(self, message_id: str) -> EntryState | None:
        entry = self.entries.get(message_id)
        return entry.state if entry else None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Two replays sharing a journal would each take the other's entries for their own.
        Re-entrant for one Journal object (a settling pass inside a move)."""
        if self._locked:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(self.path.name + ".lock").open("a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JournalBusyError(
                    f"another replay is using {self.path}; wait for it to finish"
                ) from None
            self._locked = True
            try:
                yield
            finally:
                self._locked = False
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _append(self, lines: list[str], durable: bool) -> None:
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as journal:
            journal.writelines(line + "\n" for line in lines)
            if durable:
                journal.flush()
                os.fsync(journal.fileno())
        for line in lines:
            self._apply(line.split())

    def sending(self, message_ids: Sequence[str], hidden_until: float) -> None:
        """On disk before the send starts: a send cut off half-way is then known to be in doubt."""
        self._append([f"sending {i} {hidden_until:.3f}" for i in message_ids], durable=True)

    def sent(self, message_ids: Sequence[str], hidden_until: float) -> None:
        """On disk before the delete starts: this line is what prevents a resend."""
        self._append([f"sent {i} {hidden_until:.3f}" for i in message_ids], durable=True)

    def unsent(self, message_ids: Sequence[str]) -> None:
        # Not synced: if lost, the entry stays in doubt, which only asks the operator to decide.
        self._append([f"unsent {i}" for i in message_ids], durable=False)

    def deleted(self, message_ids: Sequence[str]) -> None:
        # Not synced: if lost, the entry stays `sent` until seen again or expired; never resent.
        self._append([f"deleted {i}" for i in message_ids], durable=False)

    def expire(self, retention_seconds: float, now: float) -> list[str]:
        """Forget entries whose message SQS has dropped for certain (older than the retention)."""
        gone = [i for i, e in self.entries.items() if e.hidden_until + retention_seconds < now]
        for message_id in gone:
            del self.entries[message_id]
        return gone

    def compact(self) -> None:
        """Keep only the live entries (atomically, synced); no file at all when none are."""
        if not self.entries:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.writelines(
                f"{e.state.value} {i} {e.hidden_until:.3f}\n" for i, e in self.entries.items()
            )
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
