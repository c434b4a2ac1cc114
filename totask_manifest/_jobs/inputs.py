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

from .._errors import JobError, TotaskError, UsageError
from .._storage import carries_secret, redact_secret_url, redact_url
from .combine import combine_with_appended
from .config import JobConfig
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


def job_input(config: JobConfig, sources: InputSources, layout: JobLayout) -> JobInput:
    """The manifest the new job reads: the input where it is, or its copy in the job folder (with
    any ``--append`` manifests' lines, duplicates skipped), made in one read of each manifest
    (``combine``): each is checked on its own as it is copied, so a bad line is named by its own
    file and line number, and nothing is written for a job that cannot start."""
    if not (sources.append or sources.copied):
        return JobInput(sources.input)
    from .._fetch import APPENDED_BASES

    # appended manifests' relative references resolve in their own folders; a chained job keeps the
    # folders of lines an earlier job appended (they lie inside its input, before the new ones)
    earlier = list(config.options.get(APPENDED_BASES) or ())
    appended = combine_with_appended(sources.input, sources.append, layout.input_manifest, config.label_attribute,
                                     shown=(config.input, *config.append),  # as job.json records them
                                     input_base=config.options.get("relative_to"), earlier=earlier)
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
