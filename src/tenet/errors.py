"""The one exception hierarchy of tenet.

Every error tenet raises on purpose derives from :class:`TenetError`. Client
errors carry the HTTP status the API answers with; backend errors are re-raised
from the exception that caused them (``raise StoreUnavailable(...) from exc``).

::

    TenetError
     +-- ClientError                (status 400; bad input from a user or a caller)
     |    +-- ValidationError       (422; names the field and the reason)
     |    +-- NotFoundError         (404; names the kind and the id or key, and the
     |    |                          field when a reference names nothing it may)
     |    +-- PermissionDenied      (403)
     |    +-- ConflictError         (409)
     |    |    +-- TxnConflict      (a compare-and-set failed: someone else wrote first)
     |    |    +-- ReferenceConflict(a change would leave a dangling or broken reference)
     |    |    +-- AlreadyExists    (the key or the name is taken)
     |    +-- TooLarge              (413; more than one store transaction may hold)
     +-- StoreError                 (503; the store could not do what was asked)
     |    +-- StoreUnavailable      (the backend is down or unreachable; retry)
     |    +-- WatchCompacted        (a watch asked for history that was compacted)
     |    +-- LeaseExpired          (the lease is gone; its keys were deleted)
     +-- PacketError                (a frame is truncated or malformed)
     +-- NotImplementedYet          (501; a kind of record nothing implements yet:
     |                               the reason names it and what brings it)
     +-- DatapathUnavailable        (this host cannot run the datapath asked for)
"""

from __future__ import annotations


class TenetError(Exception):
    """Root of every error tenet raises on purpose."""

    status: int = 500


class ClientError(TenetError):
    """The caller asked for something that cannot be done as asked."""

    status = 400


class ValidationError(ClientError):
    """A value is malformed or inconsistent. ``field`` is a dotted path."""

    status = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason

    def within(self, prefix: str) -> ValidationError:
        """The same error with ``prefix`` put in front of the field path."""
        if not prefix:
            return self
        if not self.field:
            field = prefix
        elif self.field.startswith("["):
            field = prefix + self.field
        else:
            field = f"{prefix}.{self.field}"
        return ValidationError(field, self.reason)


class NotFoundError(ClientError):
    """Nothing of that kind and id (that the caller may see). ``field`` names the
    field of a request whose reference found nothing."""

    status = 404

    def __init__(self, kind: str, ident: object, field: str | None = None) -> None:
        what = f"{kind} {ident} does not exist"
        super().__init__(f"{field}: {what}" if field else what)
        self.kind = kind
        self.ident = ident
        self.field = field


class PermissionDenied(ClientError):
    status = 403


class ConflictError(ClientError):
    status = 409


class TxnConflict(ConflictError):
    """A transaction's compare failed; nothing of it was applied.

    ``keys`` are the keys whose revision was not the one expected.
    """

    def __init__(self, keys: tuple[str, ...], message: str = "") -> None:
        super().__init__(message or f"revision conflict on {', '.join(keys)}")
        self.keys = keys


class ReferenceConflict(ConflictError):
    """The change would break a reference between objects."""


class AlreadyExists(ConflictError):
    """The key, id or name is taken."""


class TooLarge(ClientError):
    """A change needs more than one store transaction may hold."""

    status = 413


class StoreError(TenetError):
    status = 503


class StoreUnavailable(StoreError):
    """The store backend could not be reached or failed; the change was not applied."""


class WatchCompacted(StoreError):
    """A watch started before the oldest revision the store still keeps.

    The watcher must re-read the current state (``list``) and watch again from
    ``compact_revision``.
    """

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(
            f"revision {requested} was compacted; history starts at {compact_revision}"
        )
        self.requested = requested
        self.compact_revision = compact_revision


class LeaseExpired(StoreError):
    def __init__(self, lease: int) -> None:
        super().__init__(f"lease {lease} expired or was revoked")
        self.lease = lease


class PacketError(TenetError):
    """A frame is truncated or malformed. The only error packet parsing raises."""

    status = 400


class NotImplementedYet(TenetError):
    """Something tenet accepts the shape of but does not do yet (a planned kind of
    record); the message names it and says why."""

    status = 501


class DatapathUnavailable(TenetError):
    """This host cannot run the requested datapath (the reason says what is missing)."""
