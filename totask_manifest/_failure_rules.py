"""Why a line failed, as a short stable id, and when failures say the job itself is wrong.

A failure reason is for people: it names the key, the status, the URL (redacted). Its *rule*
(``url-key-missing``, ``http-404``, ``schema-invalid``...) is for grouping: ``-metadata``
``failure-rule``, ``failures.jsonl``, ``stats`` and ``report`` count failures by it, and it never
holds a path or URL. An annotator may name the rule (``Failed(reason, rule=...)``); one that
passes only a reason gets the rule this module reads from it (``rule_of``), so older and
third-party annotators keep working.

Some rules point at the job's configuration rather than at the data: a wrong ``--url-key``, a
missing ``--allow-root``, credentials refused on every file, a model that fails on every image.
``SystematicFailure`` watches the first lines a run finishes: when each of the first
``min(FAIL_FAST_LINES, lines selected in this run)`` failed with the same configuration rule,
the job stops FAILED with that one reason instead of failing every line the same way. Both the
``file`` and the ``inference`` methods (and any plugin) go through it: the job's recorder owns it.

It also watches the rest of the run for what breaks mid-run: a GPU whose CUDA error leaves the
model failing every later image in that process, credentials that expire. A streak of
``MID_RUN_LINES`` lines in a row failed with one of ``MID_RUN_RULES``, after at least one line
worked, stops the job as well: before, a million-line job labeled a thousand images and then
failed the rest one by one, quickly, and said COMPLETED (exit 0). Only rules that one stretch of
the data hardly explains (a URL key or a file's status can: a block of lines of another kind) are
watched there, and the streak is long, so data with a bad stretch does not stop at every resume.
``connection-error`` and ``timeout`` are the trade-off: mostly a file server gone down or hung
mid-run (the job said COMPLETED with most lines failed, to be chained again), they are also 256
lines in a row whose files all sit on one dead host. So are ``permission-denied`` and ``http-403``:
a 403 on one object is that line's data (its ACL), but S3 answers credentials revoked or expired
mid-run with 403 too, never 401, and the job went on failing every later line, COMPLETED; 256 in a
row are also a block of objects the credentials may not read. Such a job stops at them on each
resume, until ``--keep-going`` records them failed (the stop's reason says so).

The lines a run stops on (the window, the streak) are not final outcomes: the job's recorder
holds the failures that may yet stop it back from the checkpoint (``at_stake``, at most
``MID_RUN_LINES``) and, when it stops (``undone``), gives them to that run's output manifest and
failures.jsonl only, so ``resume``, the cause fixed, labels them. Before, they were recorded
failed, and only a chained job tried them again.
"""

from __future__ import annotations

import re

from ._errors import JobError, agreeing, counted, each_of
from ._retry import retryable_status

#: lines a run must finish, all failed with one configuration rule, before it stops
FAIL_FAST_LINES = 32
#: lines in a row, after one worked, all failed with one ``MID_RUN_RULES`` rule, before a run stops
MID_RUN_LINES = 256
#: the rules a streak of which, mid-run, says the job's means broke rather than its data
MID_RUN_RULES = frozenset({
    "model-error",                # the model raises on every image (a CUDA error ends its process's GPU)
    "http-401",                   # credentials refused: a token that expired
    # credentials revoked or expired mid-run: S3 answers 403 (``permission-denied``; over HTTP, a
    # presigned URL that expired, ``http-403``), a session token it no longer reads 400
    "http-403",
    "permission-denied",
    "storage-credentials-refused",
    "storage-credentials-missing",  # a store's credentials gone (temporary ones that lapsed)
    # the host that serves the files went down, or hangs: every later line failed so, and the job
    # said COMPLETED with most of its lines failed (a chained job had to try them again)
    "connection-error",
    "timeout",
})
#: rules of a failure the fetcher tries again before it gives up (``_retry.Transient``: a connection
#: dropped or refused, a timeout, a body cut short, a store's error; an ``http-NNN`` by
#: ``_retry.retryable_status``): a later try may work where these did not
RETRIED_RULES = frozenset({"connection-error", "timeout", "body-cut-short", "storage-error"})
#: the rule of a failure whose reason says nothing this module recognises
UNCLASSIFIED = "failed"

#: rules that point at the configuration (options, credentials, model), not at one line's data
CONFIGURATION_RULES = frozenset({
    "url-key-missing",            # --url-key names a key the lines do not have
    "image-key-missing",          # no source-ref / --image-key on the lines (a text manifest, say)
    "target-specification-missing",  # --target-specification-name unknown to the lines
    "synapse-files-missing",      # lines not exported by 'export' used with a specification name
    "allow-root-missing",         # local files without --allow-root
    "outside-allow-root",         # every file outside --allow-root: the root is wrong
    "label-attribute-ref-forbidden",  # documents kept inline under a '-ref' attribute: --native or the attribute
    "host-not-allowed",           # every URL's host outside --allow-host
    "http-401",                   # credentials refused
    "http-403",
    "permission-denied",
    "storage-credentials-missing",  # s3:// (or another store) with no credentials found at all
    "storage-credentials-refused",  # a session token (or signature) the store cannot read: 400, not 403
    "storage-package-missing",    # s3:// (or another store) whose fsspec package is not installed
    "tls-untrusted",
    "connection-error",           # nothing answers at that host
    "class-name-missing",         # class ids without --class-names
    "model-error",                # the model fails on every image
})

#: configuration rules fixed by one of the job's own options, which are its identity: a resume keeps
#: them and meets the same stop, so the way on is a job chained from it with the option given
OPTION_FIXES = {
    "url-key-missing": ("--url-key K", "url_key"),
    "image-key-missing": ("--image-key K", "image_key"),
    "target-specification-missing": ("--target-specification-name S", "target_specification_name"),
    "allow-root-missing": ("--allow-root DIR", "allow_root"),
    "outside-allow-root": ("--allow-root DIR", "allow_root"),
    "host-not-allowed": ("--allow-host HOST", "allow_hosts"),
    "class-name-missing": ("--class-names FILE", "class_names"),
}


def keep_going(lines: int) -> str:
    """How to finish a job whose ``lines`` truly fail so, said after each stop's reason."""
    return (f"; if the data is at fault, 'resume --keep-going' (Python: keep_going=True) records {_them(lines)} "
            "failed and goes on")


def _them(lines: int | None) -> str:
    """The pronoun for the lines a stop left: ``it`` for one ("the 1 line ... label them" read
    wrong); ``them`` for several, or where the count is not known (``apply``'s advice, from job.json)."""
    return "them" if lines is None else agreeing(lines, "it", "them")


def _those_lines(lines: int | None) -> str:
    """``that line`` or ``those lines``, as ``_them`` chooses."""
    return "those lines" if lines is None else agreeing(lines, "that line", "those lines")


def _first(lines: int) -> str:
    """The label of the reason a stop quotes: the first of several lines' reasons, or the one line's."""
    return agreeing(lines, "its reason", "first")


def way_on(rule: str, options: frozenset[str] | None = None, files: frozenset[str] = frozenset(),
           model: str | None = None, lines: int | None = None) -> str:
    """What a stop on configuration rule ``rule`` says to do next: a chained job with the option
    that fixes it where that option is the job's own (``OPTION_FIXES``) and its method has it
    (``options``: the method's option names; None: any), else a resume once the cause is fixed
    (credentials, an endpoint, a GPU). A method without the flag (the ToTask action's
    pre-processor) would refuse the chain advised. ``files``: the options whose files the job
    recorded (``job.json``'s ``option-files``), which a resume refuses changed: a ``model-error``
    of such a ``--model`` is mended by a job chained with the fixed file (``fixed_model``).
    ``lines``: how many lines the stop left, for the words that refer to them (None: several)."""
    if (fixed := fixed_model(rule, files, model, lines)) is not None:
        return f"a resume tries {_those_lines(lines)} again once a passing cause is gone (a GPU's error); {fixed}"
    fix = OPTION_FIXES.get(rule)
    if fix is None or (options is not None and fix[1] not in options):
        return f"a resume tries {_those_lines(lines)} again"
    flag = fix[0]
    return (f"{flag.split()[0]} is the job's own option, which a resume keeps (it would stop the same way): label {_them(lines)} "
            f"in a job chained from this one with it given (totask-manifest chain JOB_DIR --job-name NEW {flag})")


def model_flag(model: str | None) -> str:
    """``--model FILE`` as the job gave its model: ``FILE:factory`` where it named a factory of a
    ``.py`` file (``m/net.py:make``): the advice followed with a bare ``.py`` was refused as no
    TorchScript file."""
    if isinstance(model, str) and ":" in model and model.rsplit(":", 1)[0].endswith(".py"):
        return f"--model FILE:{model.rsplit(':', 1)[1]}"
    return "--model FILE"


def fixed_model(rule: str, files: frozenset[str], model: str | None = None, lines: int | None = None) -> str | None:
    """The way on for a ``model-error`` whose model is a file the job recorded (``files`` holds
    ``model``: a TorchScript or ``.pt2`` file, a ``file.py:factory``'s ``.py``), else None. A
    resume refuses that file fixed (``_option_files``: a job labels every line with the same
    files), so "resume once the model is fixed" led to a refusal; a chained job takes the fixed
    file and labels the lines still unlabeled. An endpoint or ``package.module:factory`` is not
    recorded: a resume reaches it repaired. ``lines`` as ``way_on`` takes it."""
    if rule != "model-error" or "model" not in files:
        return None
    return ("a model fixed in its --model file is refused by a resume (a job labels every line with the same files): "
            f"label {_them(lines)} in a job chained from this one with the fixed file "
            f"(totask-manifest chain JOB_DIR --job-name NEW {model_flag(model)})")


# (pattern over the reason, rule), first match wins; reasons are our own messages
_PATTERNS: list[tuple[re.Pattern[str], str]] = [(re.compile(p), rule) for p, rule in [
    (r"empty annotation file", "empty-annotation-file"),
    # the SDK's own code for a result with no annotation, never submitted (``formats.native.EMPTY_RESULT``)
    (r"^TASK_INFERENCE_EMPTY_RESULT\b", "empty-result"),
    # its file-method counterpart: a label file holding no annotation (``formats.native.empty_document``)
    (r"^empty document: ", "empty-result"),
    (r"^no URL: the line has no key ", "url-key-missing"),
    (r"^no URL: the line has no synapse\.files", "synapse-files-missing"),
    (r"^no URL: synapse\.files has no specification", "target-specification-missing"),
    (r"^no URL: ", "url-empty"),
    (r"^no image: the line has no ", "image-key-missing"),
    (r"needs --allow-root", "allow-root-missing"),
    (r"is outside the allowed root", "outside-allow-root"),
    (r"is not in --allow-host", "host-not-allowed"),
    (r"refused by policy", "refused-by-policy"),
    # the model endpoint's own answer (a wrong --model URL, an endpoint that is down): the model
    # fails, whatever the status; a file's status stays http-NNN (data: that file is missing)
    (r"^model endpoint: HTTP \d{3}\b", "model-error"),
    # an answer off the protocol (an HTML page, a wrong count of predictions): the endpoint is
    # wrong for every batch, as for a status; "model endpoint, for this image: ..." stays data
    (r"^model endpoint(?: \S+: (?:response is not JSON|\d+ predictions? for|no 'predictions' list)"
     r"|: a prediction(?: must be|'s ))", "model-error"),
    (r"\bHTTP (\d{3})\b", "http-{0}"),
    (r"too large", "too-large"),
    (r"timed out|\btimeout\b", "timeout"),
    (r"body cut short", "body-cut-short"),
    (r"TLS certificate not trusted", "tls-untrusted"),
    (r"connection error|cannot connect|connection refused|name resolution", "connection-error"),
    (r"permission denied", "permission-denied"),
    (r"no storage credentials", "storage-credentials-missing"),
    (r"storage credentials refused", "storage-credentials-refused"),
    # ``_storage.url_to_fs``: fsspec's ImportError ("Install s3fs to access S3"), our hint for s3
    (r"(?i)no filesystem for protocol .*\binstall \w", "storage-package-missing"),
    (r"no such (file|object)", "file-missing"),
    (r"is a folder", "not-a-file"),
    (r"no name for class id|names no class id|(?:an empty|no) name in (?:class-(?:map|name)|categories)|pass class_names|--class-names",
     "class-name-missing"),
    (r"^schema: ", "schema-invalid"),
    (r"^format: ", "format-invalid"),
    (r"^parse: .*not UTF-8", "not-utf8"),
    (r"^parse: ", "not-json"),
    (r"^image size: ", "image-size-unknown"),
    (r"^image: ", "image-unreadable"),
    (r"^model: ", "model-error"),
    (r"^mask: ", "mask-error"),
    (r"^internal error: ", "internal-error"),
    # ``ray_driver.Driver.crashed``: the line killed the worker process annotating it, every time
    (r"^worker crashed: ", "worker-crashed"),
    (r"storage error", "storage-error"),
    (r"^fetch: ", "fetch-failed"),
]]
_RULE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def rule_of(reason: str) -> str:
    """The stable id of a failure reason; ``UNCLASSIFIED`` when none applies."""
    for pattern, rule in _PATTERNS:
        m = pattern.search(reason)
        if m:
            return rule.format(*m.groups())
    return UNCLASSIFIED


def retried(rule: str) -> bool:
    """Whether a failure of ``rule`` is one the fetcher tries again (``RETRIED_RULES``, a 5xx or 429):
    a later try may work. Any other (a 404, ``too-large``, ``not-json``, ``format-invalid``) comes
    back the same however often the file is read, so a job may remember it (``file_shared``)."""
    status = rule.removeprefix("http-")
    if status != rule and status.isdigit():
        return retryable_status(int(status))
    return rule in RETRIED_RULES


def checked_rule(rule: str) -> str:
    """A rule id as given by an annotator: lower-case words joined by hyphens."""
    if not _RULE.match(rule):
        raise ValueError(f"a failure rule is lower-case words joined by hyphens, not {rule!r}")
    return rule


class SystematicFailure:
    """Watches the lines of a run in input order; ``observe`` raises ``JobError`` when each of the
    first ``window`` lines failed with the same configuration rule, or, once a line worked, when
    ``mid_run`` lines in a row failed with the same ``MID_RUN_RULES`` rule."""

    def __init__(self, selected: int, window: int = FAIL_FAST_LINES, mid_run: int = MID_RUN_LINES, *,
                 watch: bool = True, options: frozenset[str] | None = None,
                 files: frozenset[str] = frozenset(), model: str | None = None) -> None:
        """``watch`` False (``--keep-going``): no stop, every failure final. A user whose last lines
        fail with a configuration rule because of their data (objects their credentials may not read,
        URLs outside the root) would otherwise see every resume stop on them, and never finish.
        ``options``: the job's method's option names, and ``files`` the options whose files it
        recorded, for the stop's advice (``way_on``)."""
        self.watch = watch
        self.options = options
        self.files = files
        self.model = model  # the job's --model as given, for the advice's form (``model_flag``)
        self.window = min(window, selected) if watch else 0
        #: the window is the whole run (a resume with few lines left): no line is left untried
        self.whole_run = self.window == selected
        self.seen = 0
        self.rule: str | None = None
        self.reason = ""
        self.active = self.window > 0
        self.mid_run = mid_run
        #: lines of this run that worked (labeled or routed), and the current streak of one
        #: mid-run rule's failures: its rule, length and first reason
        self.worked = 0
        self.streak: tuple[str | None, int, str] = (None, 0, "")
        #: the lines (the last ones observed) whose failures stopped the run: not final outcomes
        self.undone = 0
        #: the configuration rule the run stopped on, recorded in job.json (``stop-rule``) for the
        #: advice that follows (``Job.require``): read there, not from the error's words
        self.stopped_on: str | None = None

    def at_stake(self) -> int:
        """How many of the last lines observed would not be final outcomes should the run stop on
        the next ones: the fail-fast window's failures so far, or the current mid-run streak once
        a line worked. The recorder holds them back from the checkpoint until they are decided,
        so a stop leaves them for ``resume`` (the cause fixed, they are tried again) instead of
        recording them failed, which only a chained job would have labeled again."""
        if not self.watch:
            return 0
        window = self.seen if self.active else 0
        streak = self.streak[1] if self.worked else 0
        return max(window, streak)

    def observe(self, status: str, rule: str | None, reason: str | None) -> None:
        if not self.watch:
            return
        self._watch_streak(status, rule, reason)
        if not self.active:
            return
        if status != "failed" or rule not in CONFIGURATION_RULES or (self.rule is not None and rule != self.rule):
            self.active = False
            return
        if self.rule is None:
            self.rule, self.reason = rule, reason or ""
        self.seen += 1
        if self.seen >= self.window:
            self.active = False
            self.undone = self.seen
            self.stopped_on = self.rule
            what = (f"{each_of(self.seen, 'line')} this run tried" if self.whole_run
                    else f"each of the first {counted(self.seen, 'line')}")
            then = "" if self.whole_run else "; stopped without trying the rest"
            way = way_on(self.rule, self.options, self.files, self.model, self.seen)
            raise JobError(f"{what} failed with {self.rule!r}, which points at the job's configuration rather "
                           f"than the data{then}; {way} ({_first(self.seen)}: {self.reason}){keep_going(self.seen)}")

    def _watch_streak(self, status: str, rule: str | None, reason: str | None) -> None:
        if status != "failed":
            self.worked += 1
            self.streak = (None, 0, "")
            return
        if rule not in MID_RUN_RULES:
            self.streak = (None, 0, "")
            return
        known, length, first = self.streak
        self.streak = (rule, length + 1, first) if rule == known else (rule, 1, reason or "")
        if self.streak[1] >= self.mid_run and self.worked:
            rule, length, first = self.streak
            self.streak = (None, 0, "")
            self.undone = length
            fixed = "" if (way := fixed_model(rule, self.files, self.model, length)) is None else f"; {way}"
            raise JobError(f"the last {counted(length, 'line')} failed with {rule!r} after {counted(self.worked, 'line')} of this run "
                           f"worked: the job's means broke mid-run rather than the data (a model whose GPU failed, "
                           f"credentials that expired); stopped without trying the rest: fix it and resume, which "
                           f"tries {_those_lines(length)} again{fixed} ({_first(length)}: {first}){keep_going(length)}")
