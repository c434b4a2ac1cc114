"""A secret of a few characters (a tenant ``a``, a proxy password ``pw``, a placeholder token
``x``) was masked wherever its letters stood, so every message came out garbled
(``Synaps*** answ***r***d 401``). Now a secret of 8 characters or more is masked anywhere, a
shorter one as a word of its own, one under 4 only where it stands as a credential (``Token x``,
``token=x``, ``"tenant": "x"``, ``://user:x@``); Synapse's tokens and the model's credential that
short are refused. Each test checks both sides: the secret is gone, the other words are whole.

Real parts: the CLI as a subprocess, the contract server and a closed port on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest._errors import UsageError
from totask_manifest._models.runners import MODEL_AUTHORIZATION, model_authorization
from totask_manifest._redaction import hide_secrets
from totask_manifest.testing.builders import TOKEN

pytest_plugins = ["totask_manifest.testing.fixtures"]

ORDINARY = ('Synapse answered 401 Unauthorized to GET /projects/1/: {"detail":"Invalid token."}; '
            "a proxy at http://127.0.0.1:3128 (from the environment variable HTTPS_PROXY) is not reached")


@pytest.mark.parametrize("secret", ["e", "to", "a", "GET", "acme", "prox", "hunter2"])
def test_a_short_secret_leaves_ordinary_text_whole(secret: str) -> None:
    assert hide_secrets(ORDINARY, [secret]) == ORDINARY
    assert hide_secrets(ORDINARY, [secret], cut=True) == ORDINARY


@pytest.mark.parametrize("secret", ["e", "to", "ab1"])
@pytest.mark.parametrize(("shown", "masked"), [
    ("Authorization: Token {}", "Authorization: Token ***"),
    ("Bearer {} was refused", "Bearer *** was refused"),
    ("GET /x?token={}&a=1", "GET /x?token=***&a=1"),
    ('{{"tenant": "{}", "detail": "unknown"}}', '{"tenant": "***", "detail": "unknown"}'),
    ("Synapse-Tenant: Token {}", "Synapse-Tenant: Token ***"),
    ("http://me:{}@127.0.0.1:3128/", "http://me:***@127.0.0.1:3128/"),
    ("password={}", "password=***"),
])
def test_a_secret_under_four_characters_is_masked_where_it_stands_as_a_credential(secret: str, shown: str,
                                                                                   masked: str) -> None:
    assert hide_secrets(shown.format(secret), [secret]) == masked


@pytest.mark.parametrize("secret", ["acme", "hunter2"])
def test_a_secret_of_four_to_seven_characters_is_masked_as_a_word_of_its_own(secret: str) -> None:
    text = f"tenant {secret} unknown ({secret}); not {secret}s nor x{secret}"
    assert hide_secrets(text, [secret]) == f"tenant *** unknown (***); not {secret}s nor x{secret}"
    # a cut right after its head masks that head only when it starts a word
    assert hide_secrets(f"a reason cut at {secret[:3]}", [secret], cut=True) == "a reason cut at ***"
    assert hide_secrets(f"a reason cut at x{secret[:3]}", [secret], cut=True) == f"a reason cut at x{secret[:3]}"


def test_a_long_secret_is_masked_anywhere_also_glued_to_other_text() -> None:
    assert hide_secrets(f"x{TOKEN}y and {TOKEN}", [TOKEN]) == "x***y and ***"
    assert hide_secrets(f"cut at x{TOKEN[:5]}", [TOKEN], cut=True) == "cut at x***"


@pytest.mark.parametrize("value", ["e", "to", "tok", "Token x"])
@pytest.mark.parametrize("variable", ["SYNAPSE_ACCESS_TOKEN", "SYNAPSE_PLUGIN_RUN_USER_TOKEN"])
def test_a_synapse_token_too_short_to_be_one_is_refused_before_any_request(synapse, tmp_path, variable: str,
                                                                           value: str) -> None:
    out = tmp_path / "x.manifest"
    env = {"SYNAPSE_HOST": synapse.url, "SYNAPSE_ACCESS_TOKEN": "", variable: value,
           "SYNAPSE_PLUGIN_RUN_TENANT": "acme"}
    r = run_cli("export", "--project", "1", "-o", str(out), env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"totask-manifest export: error: {variable} is too short to be a token (under 4 "
                        "characters); set it to the whole token\n")
    assert synapse.requests == [] and not out.exists()


def test_a_model_credential_too_short_to_be_one_is_refused(monkeypatch) -> None:
    monkeypatch.setenv(MODEL_AUTHORIZATION, "Bearer x")
    with pytest.raises(UsageError, match=f"^{MODEL_AUTHORIZATION} is too short to be a token"):
        model_authorization()
    monkeypatch.setenv(MODEL_AUTHORIZATION, "Bearer abcd")
    assert model_authorization() == "Bearer abcd"


def test_a_one_letter_tenant_garbles_no_error_and_is_masked_where_echoed(synapse, tmp_path) -> None:
    """The backend wants the tenant ``acme`` and is sent ``e``: its 403, then one that echoes the
    header it was sent, read whole, with the tenant masked only where it stands as the credential."""
    synapse.tenant = "acme"
    env = {"SYNAPSE_HOST": synapse.url, "SYNAPSE_ACCESS_TOKEN": TOKEN, "SYNAPSE_PLUGIN_RUN_TENANT": "e"}
    args = ["export", "--project", "1", "-o", str(tmp_path / "x.manifest")]
    refused = run_cli(*args, env=env)
    assert refused.stderr.startswith("totask-manifest export: error: Synapse answered 403 Forbidden to GET "
                                     '/projects/1/: {"detail":"Invalid tenant."}'), refused.stderr
    synapse.add_fault(status=403, body={"detail": "Synapse-Tenant: Token e is not a member here"})
    echoed = run_cli(*args, env=env)
    assert ('Synapse answered 403 Forbidden to GET /projects/1/: {"detail":"Synapse-Tenant: Token *** is not '
            'a member here"}') in echoed.stderr, echoed.stderr


def test_a_proxy_password_of_one_letter_garbles_no_error(synapse, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("export", "--project", "1", "-o", str(tmp_path / "x.manifest"),
                env={"HTTPS_PROXY": f"http://me:e@127.0.0.1:{port}", "NO_PROXY": "",
                     "SYNAPSE_HOST": synapse.url.replace("http://", "https://")})
    assert r.returncode == 2, r.stderr
    assert (f"totask-manifest export: error: the proxy http://127.0.0.1:{port} (from the environment variable "
            "HTTPS_PROXY) cannot be reached, so Synapse was not asked GET /projects/1/") in r.stderr, r.stderr
    assert "me:e@" not in r.stderr
