"""A job's input kept in its folder (``manifests/input/input.manifest``): the input extended with
``--append`` (the combined manifest, duplicates skipped), or copied whole when its URL or an
appended one carries a secret.

A URL with a password (``https://user:pw@host/...``) or a query (a presigned signature, a token)
is not written into ``job.json``, which people copy, share and attach to tickets: the job records
it redacted (``redact_url``) and reads the copy it made when it started, and so do ``resume``,
``clone`` and the same ``annotate`` again (a presigned URL has expired by then). A URL without a
secret is recorded as it is and read in place: a 100 GB manifest on S3 is not copied.

(The scan of the input before a job starts is ``scan_ranges``; the input combined with
``--append`` manifests, in one read of each, is ``combine``'s.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .._errors import JobError, StorageError, TotaskError, UsageError
from .._storage import carries_secret, exists, redact_secret_url, redact_url
from .combine import combine_with_appended
from .config import JobConfig
from .held_labels import JobClasses
from .input_identity import open_file_text, stands_for_open_file
from .layout import JobLayout
from .scan_ranges import InputScan, sha256_of
from .state import JobState

log = logging.getLogger("totask_manifest")


@dataclass
class InputSources:
    """The manifests a new job reads, as given (secrets included), while its configuration records
    them redacted; ``copied``: the job reads only the copy it makes in its folder."""

    input: str
    append: list[str]
    copied: bool = False

    def refuse_missing(self) -> None:
        """A manifest given that is not there, named: also where a job of that name exists with
        another configuration, whose refusal ("differs in: input; choose another --job-name")
        sent a user who mistyped the input's path to change the name instead."""
        if not exists(self.input):
            raise UsageError(f"input manifest not found: {redact_url(self.input)}")
        for url in self.append:
            if not exists(url):
                raise UsageError(f"--append manifest not found: {redact_url(url)}")


def keep_secrets_out(config: JobConfig, copy_of: str | None = None) -> InputSources:
    """What the job reads, and ``config``'s URLs redacted where they carry a secret, before
    ``relative_to`` defaults to the input's folder (then without the secret: the data objects a
    manifest names relatively are fetched without its password or signature, in every run alike).
    ``copy_of``: a clone of a job that copied its input reads that copy, which holds the appended
    lines too. A ``relative_to`` given with a secret is refused: job.json would keep it."""
    relative_to = config.options.get("relative_to")
    if isinstance(relative_to, str) and carries_secret(relative_to):
        raise UsageError("option relative_to must not carry a user name, password or query ('user:pw@', '?...'): "
                         "job.json would keep it; give the folder's plain URL")
    if copy_of is not None:
        return InputSources(copy_of, [], copied=True)
    sources = InputSources(config.input, list(config.append))
    if any(carries_secret(url) for url in (config.input, *config.append)):
        sources.copied = True
        config.input = redact_secret_url(config.input)
        config.append = [redact_secret_url(url) for url in config.append]
    return sources


@dataclass
class JobInput:
    """What a new job reads (``url``); ``scan``: that manifest's scan when the job wrote it (a
    copy, checked and scanned as it was written), None for an input read where it is (not read
    yet); ``given_sha256``: the checksums of the manifests a copy was made from, as read (the
    input, then each ``--append`` manifest), which the same ``annotate`` again compares."""

    url: str
    scan: InputScan | None = None
    given_sha256: list[str] = field(default_factory=list)


def job_input(config: JobConfig, sources: InputSources, layout: JobLayout, classes: JobClasses | None = None) -> JobInput:
    """The manifest the new job reads: the input where it is, or its copy in the job folder (with
    any ``--append`` manifests' lines, duplicates skipped), made in one read of each manifest
    (``combine``): each is checked on its own as it is copied, so a bad line is named by its own
    file and line number, and nothing is written for a job that cannot start. ``classes``: the
    job's class names, held to the labels it passes over (``held_labels.JobClasses``)."""
    if not (sources.append or sources.copied):
        return JobInput(sources.input)
    from .._fetch import APPENDED_BASES

    # appended manifests' relative references resolve in their own folders; a chained job keeps the
    # folders of lines an earlier job appended (they lie inside its input, before the new ones)
    earlier = list(config.options.get(APPENDED_BASES) or ())
    appended = combine_with_appended(sources.input, sources.append, layout.input_manifest, config.label_attribute,
                                     task_type=config.task_type, shown=(config.input, *config.append),  # as job.json records them
                                     input_base=config.options.get("relative_to"), earlier=earlier, classes=classes)
    if sources.append:
        (log.warning if appended.skipped else log.info)("%s", appended.summary())
        earlier = [e for e in earlier if e[0] < appended.starts[0][0]]
        config.options[APPENDED_BASES] = [*earlier, *appended.starts]
    return JobInput(layout.input_manifest, appended.scan, appended.given_sha256)


def refuse_changed_copy(state: JobState, sources: InputSources) -> None:
    """The same ``annotate`` again, for a job that copied its input (a URL with a secret, or
    ``--append``): each manifest given (a URL signed anew, say) must serve what the job copied,
    else the job would go on labeling its copy while the command names other data (refused, as
    ``resume`` refuses a changed input). A URL that cannot be read now (expired) is not needed:
    the job goes on from its copy, as ``resume`` would. Jobs written before ``given_sha256`` was
    kept compare their input alone (``copied_sha256``), when its URL carried a secret."""
    given = (sources.input, *sources.append)
    if len(state.given_sha256) == len(given):
        recorded = state.given_sha256
    elif state.copied_sha256 and sources.copied:
        recorded = [state.copied_sha256]
    else:
        return
    for k, (url, recorded_sha) in enumerate(zip(given, recorded, strict=False)):
        try:
            sha = sha256_of(url)
        except (TotaskError, OSError) as exc:
            log.info("the %s %s cannot be read now (%s); job %s goes on from its copy",
                     "--append manifest" if k else "input manifest", redact_url(url), type(exc).__name__,
                     state.config.job_name)
            continue
        if sha == recorded_sha:
            continue
        what, done = ("--append manifest", "combined") if k else ("input manifest", "copied")
        raise JobError(f"the {what} {redact_url(url)} is not the one job {state.config.job_name!r} {done} when it "
                       "started (checksum differs); clone or chain a new job for it, or choose another --job-name")


# -- jobs written before secrets were kept out of job.json -----------------------------------------

def secret_fields(state: JobState) -> list[str]:
    """The fields of ``job.json`` that hold a secret (user info, a query): a job written before
    input URLs were recorded redacted kept its input's URL whole, and the folder with the password
    as ``relative_to``."""
    from .._fetch import APPENDED_BASES

    def held(url: object) -> bool:  # a URL recorded redacted (``?…``) holds none
        return isinstance(url, str) and carries_secret(url) and redact_secret_url(url) != url

    c = state.config
    found = ["input.url", "config.input"] if held(c.input) else []
    if held(state.effective_input):
        found.append("input.read")
    if any(map(held, c.append)):
        found.append("config.append")
    if held(c.options.get("relative_to")):
        found.append("options.relative_to")
    bases = c.options.get(APPENDED_BASES)
    if isinstance(bases, list) and any(isinstance(b, list) and b and held(b[-1]) for b in bases):
        found.append(f"options.{APPENDED_BASES}")
    return found


def secret_warning(state: JobState, found: list[str], why: str) -> str:
    """One line saying that the job folder holds a secret, and where, without showing it."""
    return (f"job.json of job {state.config.job_name!r} holds a secret (a user name and password, or a URL query) in "
            f"{', '.join(found)}, as versions before this one wrote it; {why}; do not share the job folder as it is")


class InputMissing(StorageError):
    """A job's input is not there (not: the store could not say, a ``StorageError`` of its own)."""


def refuse_missing_input(state: JobState) -> None:
    """``resume`` of a job whose input is gone: one ``StorageError`` saying that it is the job's
    input, where it was, and what to do (it said only ``no such file: PATH``). The input is what
    the job reads: the manifest given, or the copy it made in its folder (``--append``, a URL with
    a secret), named with what it was made of."""
    read = state.effective_input
    c = state.config
    if stands_for_open_file(read):  # not exists(): /dev/stdin "exists", as this command's own input
        raise InputMissing(open_file_text(c.job_name, read))
    if exists(read):
        return
    made_of = ""
    if read == state.layout.input_manifest:  # redacted again: a version before the redaction wrote them whole
        given = "".join(f" with --append {redact_url(url)}" if i == 0 else f", --append {redact_url(url)}"
                        for i, url in enumerate(c.append))
        made_of = f" (the copy it made of {redact_url(c.input)}{given})"
    raise InputMissing(
        f"job {c.job_name!r} cannot be resumed: its input manifest {redact_url(read)}{made_of} is missing; "
        "restore it at that path and run resume again (it reads the input again and checks that its checksum "
        "is the one the job started with)")


class _Changed(Exception):
    """The input a URL serves now is not the one the job read."""


def move_secret_input(state: JobState) -> None:
    """``resume`` of a job that reads its input from a URL with a secret (written before such a URL
    was kept out of ``job.json``): copy the input into the job folder, as a new job does, check it
    against the checksum the job recorded, then rewrite ``job.json`` with the URL redacted (both
    atomic: a kill between them leaves the old job.json, and the copy is made again next time).
    Not done, with a one-line warning, where it would change what the job reads or fetches: a
    ``relative_to`` with the password (the rest of the data objects would be fetched without it),
    a job with ``--append`` manifests, an input that cannot be read now or has changed."""
    found = secret_fields(state)
    if not found:
        return
    c = state.config
    why = None
    if any(f.startswith("options.") for f in found):
        why = "kept: the job fetches the data objects its manifest names relatively with it"
    elif c.append or state.effective_input != c.input:
        why = "kept: a job with --append manifests is not changed (it reads its combined copy)"
    else:
        try:
            sha = _copy_checked(c.input, state.layout.input_manifest, state.input_sha256)
        except (TotaskError, OSError) as exc:
            why = f"kept: its input cannot be read now to copy it into the job folder ({type(exc).__name__})"
        except _Changed:
            why = "kept: the input its URL serves now is not the one the job read (checksum differs)"
        else:
            state.effective_input, state.copied_sha256 = state.layout.input_manifest, sha
            c.input = redact_secret_url(c.input)
            state.save()
            log.info("job %s: its input copied into %s and its URL's secret removed from job.json",
                     c.job_name, redact_url(state.layout.input_manifest))
            return
    log.warning("%s", secret_warning(state, found, why))


def _copy_checked(url: str, copy: str, expected: str) -> str:
    """Copy ``url`` to ``copy`` atomically; its checksum. ``_Changed`` (nothing written) when it is
    not ``expected`` (where one is recorded)."""
    import hashlib

    from .._manifest.ranges import CHUNK
    from .._storage import AtomicWriter, open_read

    digest = hashlib.sha256()
    with open_read(url) as f, AtomicWriter(copy) as out:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
        if expected and digest.hexdigest() != expected:
            raise _Changed
    return digest.hexdigest()
