"""A job's input kept in its folder (``manifests/input/input.manifest``): the input extended with
``--append`` (the combined manifest, duplicates skipped), or copied whole when its URL or an
appended one carries a secret.

A URL with a password (``https://user:pw@host/...``) or a query (a presigned signature, a token)
is not written into ``job.json``, which people copy, share and attach to tickets: the job records
it redacted (``redact_url``) and reads the copy it made when it started, and so do ``resume``,
``clone`` and the same ``annotate`` again (a presigned URL has expired by then). A URL without a
secret is recorded as it is and read in place: a 100 GB manifest on S3 is not copied.

(The scan of the input before a job starts is ``scan_ranges``.)
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .._errors import JobError, TotaskError, UsageError
from .._manifest.io import read_lines, write_lines
from .._manifest.line import Line
from .._storage import carries_secret, redact_secret_url, redact_url
from .config import JobConfig
from .layout import JobLayout
from .scan_ranges import raise_for_no_data, raise_for_problems, scan_input, sha256_of
from .state import JobState

log = logging.getLogger("totask_manifest")


def _identity(record: dict, resolve: Callable[[str], str]) -> tuple[str, str] | None:
    """What makes two lines the same data object: inline text as written, a ``source-ref`` as the
    file or URL it names (``images/x.jpg`` in two manifests' folders is two images; compared as
    text, a second dataset laid out like the first was skipped whole)."""
    ref = record.get("source-ref")
    if isinstance(ref, str):
        return "source-ref", resolve(ref)
    value = record.get("source")
    return ("source", value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=64)
def _resolver(base: str) -> Callable[[str], str]:
    """``resolve_reference(ref, base)`` for one base, with a fast path for the common plain
    relative path (no ``.`` segment, ``//``, end slash or surrounding space), where joining is
    all it does: the full call per line doubled the time of combining a 200,000-line input."""
    from .._fetch import resolve_reference

    prefix = None
    if base and not base.startswith("file://"):
        prefix = base.rstrip("/") + "/" if "://" in base else os.path.normpath(base) + "/"
        if prefix in ("//", "///", "./"):  # these join as normpath does on its own
            prefix = None

    def resolve(ref: str) -> str:
        if prefix and ref and ref[0] not in "/. \t" and ref[-1] not in "/ \t\r\n" and "://" not in ref \
                and "/." not in ref and "//" not in ref and "\\" not in ref:
            return prefix + ref
        return resolve_reference(ref, base)

    return resolve


def _base_at(index: int, input_base: str, earlier: Sequence[Sequence]) -> str:
    """The folder an input line's relative references resolve against: that of the manifest an
    earlier job appended it from (``[first line index, folder]`` pairs), else the input's."""
    base = input_base
    for start, folder in earlier:
        if start <= index:
            base = folder
    return base


@dataclass
class Appended:
    """What ``combine_with_appended`` did: lines added, duplicates skipped (counted, with the
    first few named), and where each appended manifest's lines start in the combined input
    (``[first line index, folder]``: its relative references resolve against its own folder)."""

    added: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)
    starts: list[list] = field(default_factory=list)

    def summary(self) -> str:
        """One line however many duplicates there were."""
        text = f"appended {self.added} data object(s); {self.skipped} duplicate(s) skipped"
        if self.examples:
            text += f" (first: {self.examples[0]})"
        return text


def combine_with_appended(input_url: str, extra: Iterable[str], out_url: str, *, input_base: str | None = None,
                          earlier: Sequence[Sequence] = ()) -> Appended:
    """Write input + the appended manifests' lines to ``out_url``, skipping data objects already
    present (same ``source`` text, or ``source-ref`` naming the same file once resolved: the
    input's against ``input_base``, default its folder, or ``earlier`` appended folders; each
    appended manifest's against its own). One pass over each manifest: the input's data objects
    are noted as its lines are copied, all of them before the first appended line."""
    from .._fetch import base_of

    extra = list(extra)
    input_base = input_base or base_of(redact_secret_url(input_url))
    resolve_input = _resolver(input_base)
    seen: set[tuple[str, str]] = set()
    result = Appended()

    def lines() -> Iterable[Line | bytes]:
        last_had_newline = True
        index = 0
        for line in read_lines(input_url):
            if extra and not line.is_blank:  # a plain copy compares nothing
                ident = _identity(line.record(), _resolver(_base_at(index, input_base, earlier)) if earlier else resolve_input)
                if ident is not None:
                    seen.add(ident)
            last_had_newline = line.newline != b""
            index += 1
            yield line
        for url in extra:
            base = base_of(redact_secret_url(url))  # job.json keeps it: its folder without the secret
            resolve = _resolver(base)
            result.starts.append([index, base])
            for line in read_lines(url):
                if line.is_blank:
                    continue
                record = line.record()
                ident = _identity(record, resolve)
                if ident is not None and ident in seen:
                    result.skipped += 1
                    if len(result.examples) < 3:
                        result.examples.append(f"{redact_url(url)} line {line.number}: {record.get(ident[0])!r}")  # as written
                    continue
                if ident is not None:
                    seen.add(ident)
                if not last_had_newline:
                    yield b"\n"
                    last_had_newline = True
                yield line.prefix.replace(b"\xef\xbb\xbf", b"") + line.body + b"\n"
                index += 1
                result.added += 1

    write_lines(out_url, lines())
    return result


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


def job_input(config: JobConfig, sources: InputSources, layout: JobLayout) -> tuple[str, str]:
    """The manifest the new job reads, and the checksum of its input as given when it was copied with
    ``--append`` manifests (``""`` otherwise: a plain copy's is the copy's): the input where it is, or its copy in the job folder (with any ``--append``
    manifests' lines, duplicates skipped). Each manifest is checked on its own first, so a bad line is
    named by its own file and line number, and nothing is written for a job that cannot start."""
    if not (sources.append or sources.copied):
        return sources.input, ""
    shown = (config.input, *config.append)  # the URLs as job.json records them, for messages
    scans = [scan_input(url, config.label_attribute, checksum=sources.copied and i == 0 and bool(sources.append))
             for i, url in enumerate((sources.input, *sources.append))]
    for url, scan, what in zip(shown, scans, ("input manifest", *["--append manifest"] * len(sources.append)), strict=False):
        raise_for_problems(url, scan, what)
    raise_for_no_data(sources.input, scans[0], appended=list(zip(sources.append, scans[1:], strict=True)))
    from .._fetch import APPENDED_BASES

    # appended manifests' relative references resolve in their own folders; a chained job keeps the
    # folders of lines an earlier job appended (they lie inside its input, before the new ones)
    earlier = list(config.options.get(APPENDED_BASES) or ())
    appended = combine_with_appended(sources.input, sources.append, layout.input_manifest,
                                     input_base=config.options.get("relative_to"), earlier=earlier)
    if sources.append:
        (log.warning if appended.skipped else log.info)("%s", appended.summary())
        earlier = [e for e in earlier if e[0] < appended.starts[0][0]]
        config.options[APPENDED_BASES] = [*earlier, *appended.starts]
    return layout.input_manifest, scans[0].sha256


def refuse_changed_copy(state: JobState, sources: InputSources) -> None:
    """The same ``annotate`` again, for a job that copied its input: the URL given (signed anew, say)
    must serve the manifest the job copied, else the job would label another input than the one
    named (refused, as ``resume`` refuses a changed input). A URL that cannot be read now (expired)
    is not needed: the job goes on from its copy, as ``resume`` would."""
    if not state.copied_sha256 or not sources.copied:
        return
    try:
        sha = sha256_of(sources.input)
    except (TotaskError, OSError) as exc:
        log.info("the input manifest %s cannot be read now (%s); job %s goes on from its copy",
                 redact_url(sources.input), type(exc).__name__, state.config.job_name)
        return
    if sha != state.copied_sha256:
        raise JobError(f"the input manifest {redact_url(sources.input)} is not the one job {state.config.job_name!r} "
                       "copied when it started (checksum differs); clone or chain a new job for it, or choose another "
                       "--job-name")
