"""Every error streamdiv raises on purpose derives from :class:`StreamdivError`."""

from __future__ import annotations

import functools


class StreamdivError(Exception):
    """Base class of all streamdiv errors: catch this to catch them all."""


class SourceError(StreamdivError):
    """A source could not be opened or read (missing file, unknown format, unreadable stream)."""


class SchemaError(StreamdivError):
    """The columns asked for do not exist, or have a type that cannot be scored."""


class MissingColumnError(SchemaError):
    """A column named is not in the source's schema (its first file's, for several files)."""


class ColumnTypeError(SchemaError):
    """A column holds values of a type its role (``probs``, ``labels``, ``weights``, ...) cannot take; ``role``
    says which, so that the caller, who knows the column and the file, can name them."""

    def __init__(self, message: str, role: str, row: int | None = None):
        # all in args: the error pickles (a Dask worker's reaches the caller)
        super().__init__(message, role, row)
        self.role = role
        self.row = row  # the row of the batch at fault, where one is

    def __str__(self) -> str:
        return str(self.args[0])


class IncompatibleStateError(StreamdivError):
    """Two accumulators (or saved states) that describe different problems cannot be merged."""


class CorruptStateError(StreamdivError):
    """Bytes that are not an intact saved state: not a state at all, truncated, changed since they were written
    (the checksum does not match), or a header that cannot be read or that disagrees with the arrays' sizes."""


class StateVersionError(StreamdivError):
    """An intact saved state in a newer format version than this streamdiv reads: upgrade streamdiv."""


class StateLayoutError(IncompatibleStateError):
    """A saved state whose slots (names, order or number) are not this streamdiv's: the message names the first
    region that differs; read it with the streamdiv that wrote it."""


class CheckpointError(StreamdivError):
    """A checkpoint cannot be written or resumed: not an intact checkpoint, or one written for other sources or
    other options (the message names what changed), or a source that is not made of files."""


class InvalidRowError(StreamdivError):
    """A row holds a value that cannot be scored, and ``on_invalid="error"`` was asked for.

    The message names the file, the row within it (0-based), the column and the value.
    """

    def __init__(self, message: str, *, path: str, row: int, column: str, value: object, reason: str):
        super().__init__(message)
        self.path = path
        self.row = row
        self.column = column
        self.value = value
        self.reason = reason

    def __reduce__(self) -> tuple:
        # Exception's own pickling calls the class with the message alone, which the keywords above refuse:
        # an error raised in another process (a Dask worker) would not reach the caller.
        rebuild = functools.partial(type(self), path=self.path, row=self.row, column=self.column, value=self.value,
                                    reason=self.reason)
        return rebuild, (str(self),), self.__dict__
