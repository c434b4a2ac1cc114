"""The exceptions users can catch.

Every error a user can cause carries enough context to be fixed without a traceback: the
command line turns ``TotaskError`` subclasses into one message and a non-zero exit code.
"""

from __future__ import annotations

import errno
import os


class TotaskError(Exception):
    """Base of every error raised on purpose by this package."""

    exit_code = 1

    def say_also(self, more: str) -> None:
        """Add ``more`` (``"; ..."``) to what the error says, before its ``[rule]`` tag where it has
        one: the tag ends the line (``ManifestError``), so it still names the rule the data broke,
        not what is said after it."""
        text, tag = str(self), _rule_tag(getattr(self, "rule", ""))
        if tag and text.endswith(tag):
            text = text[: -len(tag)]
        self.args = (f"{text}{more}{tag}",)


def _rule_tag(rule: str) -> str:
    """`` [rule]``, how an error names the rule it reports (at the end of its line); "" for none."""
    return f" [{rule}]" if rule else ""


class UsageError(TotaskError):
    """A bad option, parameter file or argument combination (exit code 2)."""

    exit_code = 2


class StorageError(TotaskError):
    """A URL that cannot be read or written (exit code 2)."""

    exit_code = 2


class StoreRefusedError(StorageError):
    """A storage back end that refused or failed a request (no credentials, access denied, a
    service error), not a file that is missing: the environment's, never the data's, so exit 2
    wherever the URL came from, a mask a manifest's line names included (``convert`` said 1)."""


class ManifestError(TotaskError):
    """A manifest line that breaks a rule; names the line, the key path and the rule."""

    def __init__(self, message: str, *, line: int | None = None, key: str | None = None, rule: str = "") -> None:
        self.line = line
        self.key = key
        self.rule = rule
        self.detail = message
        super().__init__(self._said())

    def _said(self) -> str:
        """``line N, key 'k': detail [rule]``: where, what, then the rule."""
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.key:
            where.append(f"key {self.key!r}")
        prefix = ", ".join(where)
        tag = _rule_tag(self.rule)
        return f"{prefix}: {self.detail}{tag}" if prefix else f"{self.detail}{tag}"

    def say_also(self, more: str) -> None:
        """As ``TotaskError.say_also``, and ``detail`` says it too (a caller re-raising the
        detail under another line or key: ``FormatError(exc.detail, ...)``)."""
        self.detail = f"{self.detail}{more}"
        self.args = (self._said(),)


class InvalidInputError(ManifestError):
    """An input manifest with lines a job must not start on (exit code 1, as ``validate`` gives
    for the same lines); the message lists them with line, key and rule."""


class JobUnavailableError(TotaskError):
    """A folder given as a job that a command cannot use: it holds no job (``NotAJobError``) or a
    live process holds its lease (``JobBusyError``) (exit code 2). The common base lets a caller
    catch both in one clause; each stays apart, for a busy job *is* a job and ``except
    NotAJobError`` must not take it for a missing one."""

    exit_code = 2


class NotAJobError(StorageError, JobUnavailableError):
    """A folder given as a job that holds none (exit code 2, as for any missing input)."""


class LabelAttributeError(UsageError):
    """A label attribute name that Ground Truth would refuse."""

    def __init__(self, message: str, *, rule: str) -> None:
        self.rule = rule
        super().__init__(f"{message}{_rule_tag(rule)}")


class JobError(TotaskError):
    """A job that cannot start, resume or chain in its current state."""


class JobBusyError(JobError, JobUnavailableError):
    """Another live process holds the job folder's lease (exit code 2: retry later, or stop it)."""

    exit_code = 2


class JobExistsError(JobError):
    """A job name already taken, at that output root, by a job with another configuration, or by a
    job whose name differs only in letter case (job names are not case sensitive: ``layout.
    refuse_case_twin``) (exit code 2): the user chose the name, as for a folder of their own files
    there (``UsageError``); nothing is wrong with the data or the job. A ``JobError`` still, for
    callers that catch it."""

    exit_code = 2


class JobFolderNameError(JobError):
    """A job folder renamed or copied under another name than its job's, given to a command that
    writes or chains it (exit code 2): the folder's name is the mistake, as a ``--job-name`` taken
    (``JobExistsError``); its ``job.json`` would lead the command into the original's folder."""

    exit_code = 2


class DamagedCheckpoint(JobError):
    """A checkpoint part that cannot be read as one (torn by a crash without sync, or damaged by
    its store): its lines are not recorded. ``resume`` sets a damaged *last* part aside and labels
    its lines again (``_jobs.damaged_parts``); the message says what to do with any other."""

    def __init__(self, url: str, why: str) -> None:
        self.url = url
        self.why = why
        from ._redaction import redact_url  # on use: the errors module imports nothing at start

        super().__init__(
            f"checkpoint part {redact_url(url)} is damaged ({why}); its lines are not recorded: run resume, which sets a "
            "damaged last part aside (renamed, kept) and labels its lines again")


class RaisedInThread(Exception):
    """What a thread an annotator started raised (its ``__cause__``), raised again where the engine
    runs the annotator (``_annotators.base.thread_errors``). Python's hook printed a traceback
    and the job went on, COMPLETED, with whatever that thread left undone."""

    def __init__(self, thread: str) -> None:
        super().__init__(thread)
        self.thread = thread

    def __str__(self) -> str:
        cause = self.__cause__
        said = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        return f"{said} in its thread {self.thread!r}"


#: what was added to an exception that is not ours (``say_also``): the command line says it too
_ALSO_SAID = "_totask_also_said"


def say_also(exc: BaseException, more: str) -> None:
    """Add ``more`` (``"; ..."``: the lease a failing command could not release) to what ``exc``
    says, so one line says both. A ``TotaskError``'s text takes it (``TotaskError.say_also``).
    Any other (an ``OSError``, a Ctrl-C) keeps Python's text: it gets ``more`` as a note, which
    Python prints with its traceback, and the command line ends its one line for it with
    ``also_said`` (a warning line of its own before that line read as a second failure)."""
    if isinstance(exc, TotaskError):
        exc.say_also(more)
        return
    setattr(exc, _ALSO_SAID, also_said(exc) + more)
    exc.add_note(more.removeprefix("; "))


def also_said(exc: BaseException) -> str:
    """What ``say_also`` added to an exception that is not ours, for the end of its line; "" for none."""
    said = getattr(exc, _ALSO_SAID, "")
    return said if isinstance(said, str) else ""


class FetchError(TotaskError):
    """A URL that could not be fetched for one line; fails that line, never the job."""


class SynapseError(TotaskError):
    """An error answered by, or about, the Synapse backend."""


class FatalSynapseError(SynapseError):
    """An error after which no further task can succeed (revoked token, project gone, backend down)."""


#: modules whose exceptions are storage back-end refusals (credentials, access, service errors);
#: aiohttp's are those of fsspec's ``http(s)://`` file system (a 500, a redirect loop, a body cut short)
_BACKEND_MODULES = ("botocore", "aiobotocore", "s3fs", "gcsfs", "adlfs", "google.auth", "azure", "aiohttp")


#: errors of writing itself (not of reading what is written): no space, quota, file size, read-only
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def write_failure(shown: str, exc: OSError) -> str:
    """What a failed write says (a full disk, a quota): ``cannot write URL: No space left on
    device``, in words (not ``[Errno 28]``), naming the file the user knows (``shown``: its URL
    without secrets), never the temporary written for it."""
    return f"cannot write {shown}: {file_size_limit(exc) or exc.strerror or exc}"


def file_size_limit(exc: OSError) -> str | None:
    """What ``EFBIG`` ("File too large") says when this process's file size limit (``ulimit -f``,
    ``RLIMIT_FSIZE``; Python ignores its ``SIGXFSZ``, so a write past it fails so) is what stopped
    it: the limit, and that it is the process's, so another folder (``TMPDIR``) does not help. None
    for any other error, and for ``EFBIG`` without a limit set (a file system's largest file, where
    another folder does)."""
    if exc.errno != errno.EFBIG:
        return None
    try:
        import resource
    except ImportError:  # no such limit (Windows)
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft == resource.RLIM_INFINITY:
        return None
    return (f"{exc.strerror or exc}: this process's file size limit ({soft} bytes, ulimit -f) was reached; raise it "
            "(ulimit -f unlimited) and run it again: the limit is the process's, another folder does not help")


def backend_error_message(exc: BaseException) -> str | None:
    """One line for an exception raised by a storage back end (``NoCredentialsError: Unable to
    locate credentials``), None for any other exception. The back ends' own exception classes
    are not imported: they are recognised by the module they come from."""
    from ._redaction import scrub_urls  # aiohttp's messages quote the URL whole: its query is a signature

    for cls in type(exc).__mro__:
        if cls.__module__.startswith(_BACKEND_MODULES):
            status = getattr(exc, "status", None)
            if isinstance(status, int) and hasattr(exc, "request_info"):  # aiohttp's answer errors
                reason = getattr(exc, "message", "")  # (its text quotes the URL; a redirect loop has no status)
                reason = reason if isinstance(reason, str) else ""
                text = f"HTTP {status} {reason}".strip() if status else reason
            else:
                text = " ".join(scrub_urls(str(exc)).split())
            hint = " (set AWS credentials, e.g. AWS_PROFILE or AWS_ACCESS_KEY_ID)" if "Credential" in cls.__name__ else ""
            return f"{type(exc).__name__}: {text[:300]}{hint}" if text else f"{type(exc).__name__}{hint}"
    return None


def file_changed(url: str, changed: str = "replaced or rewritten") -> StorageError:
    """The one refusal of a file that changed while a command read it, whoever found it: a
    comparison of its versions before and after the reads (``ranges.refuse_changed``), an HTTP
    answer of another version (``_http_ranges``), or the store refusing a read of the version it
    opened (``is_file_expired``). Each said it in its own words, s3fs's without ``s3://``."""
    from ._redaction import redact_url

    return StorageError(f"cannot read {redact_url(url)}: the file changed while it was read ({changed}); "
                        "run the command again once it is no longer being written")


def is_file_expired(exc: BaseException) -> bool:
    """Whether ``exc`` is s3fs's (or fsspec's) ``FileExpired``: the object a read had opened was
    replaced, and the next block asked of it (with ``If-Match``) found another version."""
    return any(cls.__name__ == "FileExpired" and cls.__module__.startswith(("s3fs", "fsspec"))
               for cls in type(exc).__mro__)


def backend_refusal(exc: OSError) -> str | None:
    """What a back end's refusal that came as a bare ``OSError`` says, or None for any other
    ``OSError`` (a missing file is the caller's to name). s3fs turns S3's errors into
    ``OSError(EINVAL, "Bad Request")``, botocore's error its cause, naming no file: a session token
    S3 refuses printed ``error: Bad Request`` alone. A 400 without a reason (S3 gives none to a
    HEAD) names the variable that is the likely cause where it is set."""
    if (isinstance(exc, FileNotFoundError) or exc.filename is not None
            or exc.__cause__ is None or backend_error_message(exc.__cause__) is None):
        return None
    text = exc.strerror or str(exc)
    if text == "Bad Request" and os.environ.get("AWS_SESSION_TOKEN"):
        text += _TOKEN_HINT
    return text


#: what a bare 400 says while a session token is set: S3 answers a token it cannot read so, and a HEAD no reason
_TOKEN_HINT = (" (S3 answered 400 and no reason; AWS_SESSION_TOKEN is set: a malformed or expired session "
               "token is answered so)")
#: S3's codes for credentials it refuses, which s3fs raises as ``OSError(EINVAL)`` like a bad argument (a
#: key or a signature it refuses is a 403, a ``PermissionError``: ``permission-denied`` already)
_REFUSED_CREDENTIAL_CODES = frozenset({"InvalidToken", "ExpiredToken", "TokenRefreshRequired",
                                       "AuthorizationHeaderMalformed", "CredentialsNotSupported"})


def credentials_refusal(exc: BaseException) -> str | None:
    """What a back end's refusal of the request's credentials says (``backend_refusal``'s line), or
    None where it refuses something else or is no refusal. The commands' own reads and a job's data
    items share it: a session token S3 cannot read failed each data item as a retried
    ``storage-error``, recorded final, where the same read of a manifest named ``AWS_SESSION_TOKEN``."""
    if not isinstance(exc, OSError) or (text := backend_refusal(exc)) is None:
        return None
    response = getattr(exc.__cause__, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return text if code in _REFUSED_CREDENTIAL_CODES or text.endswith(_TOKEN_HINT) else None


def yaml_error_text(exc: BaseException) -> str:
    """One line for a YAML parse error: where (``line 2, column 1``) and what. PyYAML's own text
    spreads over several lines, puts the context (``while parsing a flow node``) first and the
    position after it, so its first line alone names neither the problem nor the line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")


def json_kind(value: object) -> str:
    """What a value is called in JSON (``null``, ``number``, ``object``...), for messages about
    data users wrote as JSON: ``NoneType`` and ``dict`` are Python's words, not theirs."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def json_text(value: object, limit: int = 80) -> str:
    """A value as JSON text (``null``, ``true``, ``"cat"``), cut to ``limit`` characters."""
    import json

    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def counted(n: int, noun: str, plural: str | None = None, *, grouped: bool = False) -> str:
    """``n`` and its noun as a message says it: ``1 sample``, ``2 samples`` (``plural`` where adding
    an ``s`` is wrong: ``box``, ``boxes``); ``grouped``: thousands separated (``1,234 lines``), as
    a summary of a whole file writes them. A summary line printed ``(1 failures)``."""
    return (f"{n:,}" if grouped else str(n)) + " " + agreeing(n, noun, plural or noun + "s")


def agreeing(n: int, one: str, many: str) -> str:
    """The word of ``one`` and ``many`` that agrees with a count of ``n``: a verb (``agreeing(n,
    "holds", "hold")``: "1 line holds", "2 lines hold"), a pronoun, or a noun said without its number
    (``unknown options 'a', 'b'``). The one rule ``counted`` follows too; each module had its own
    (``'s' if n != 1``, ``'s' if n > 1``, a tuple indexed by ``n != 1``)."""
    return one if n == 1 else many


def each_of(n: int, noun: str, plural: str | None = None) -> str:
    """``each of the 2 lines``, or ``the 1 line`` where there is one: a message saying that every
    one of ``n`` things failed reads "each of the 1 line" otherwise."""
    return ("the " if n == 1 else "each of the ") + counted(n, noun, plural)


#: the words Python's ``json.dumps`` writes for a float that is no number (``allow_nan=True``, its
#: default), which no JSON reader of the standard takes; orjson says only "unexpected character"
_NOT_JSON_NUMBERS = ("NaN", "Infinity")


def json_error_detail(exc: ValueError) -> str:
    """A JSON parse error (orjson's or ``json``'s ``JSONDecodeError``) as a message says it: where
    it points at ``NaN``, ``Infinity`` or ``-Infinity``, that this is not JSON and where it comes
    from, at the same place; otherwise the error's own words."""
    doc, pos = getattr(exc, "doc", None), getattr(exc, "pos", None)
    if isinstance(doc, str) and isinstance(pos, int):
        for word in _NOT_JSON_NUMBERS:
            if doc.startswith(word, pos):
                minus = word == "Infinity" and pos > 0 and doc[pos - 1] == "-"  # orjson points past the sign
                return (f"{'-' if minus else ''}{word} is not JSON (Python's json.dumps writes it for a float "
                        f"that is no number: pass allow_nan=False): line {getattr(exc, 'lineno', '?')} column "
                        f"{getattr(exc, 'colno', 1) - minus}")
    return str(exc)
