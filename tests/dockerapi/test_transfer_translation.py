"""Docker's registry credentials and progress, translated (pure: no daemon): the
``X-Registry-Auth`` header as the docker CLI (base64url with padding) and docker-py
(urlsafe_b64encode) encode it, and ``TransferProgress`` as Docker's progress lines."""

from __future__ import annotations

import base64
import json

import pytest
from aiohttp.test_utils import make_mocked_request

from dockerapi.errors import ApiError
from dockerapi.transfers import _PULL_WORDS, _PUSH_WORDS, progress_line, registry_auth
from protocol.messages import RegistryOptions, TransferProgress


def header(value: str) -> RegistryOptions:
    request = make_mocked_request("POST", "/images/create",
                                  headers={"X-Registry-Auth": value} if value else {})
    return registry_auth(request)


def test_as_the_docker_cli_and_docker_py_encode_it() -> None:
    auth = {"username": "alice", "password": "correct horse+/?", "serveraddress": "r:5000"}
    padded = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()
    assert header(padded) == RegistryOptions(username="alice", password="correct horse+/?")
    assert header(padded.rstrip("=")) == header(padded)  # unpadded, as some clients send it
    token = base64.urlsafe_b64encode(b'{"identitytoken": "tok"}').decode()
    assert header(token) == RegistryOptions(identity_token="tok")
    basic = base64.b64encode(b"bob:pw:with:colons").decode()
    combined = base64.urlsafe_b64encode(json.dumps({"auth": basic}).encode()).decode()
    assert header(combined) == RegistryOptions(username="bob", password="pw:with:colons")


def test_empty_means_anonymous() -> None:
    assert header("") == RegistryOptions()
    assert header(base64.urlsafe_b64encode(b"{}").decode()) == RegistryOptions()


@pytest.mark.parametrize("bad", ["%%%", base64.urlsafe_b64encode(b"[1]").decode(),
                                 base64.urlsafe_b64encode(b"not json").decode(), "x" * 20000])
def test_garbage_is_a_bad_parameter(bad: str) -> None:
    with pytest.raises(ApiError) as refused:
        header(bad)
    assert refused.value.status == 400 and "X-Registry-Auth" in refused.value.message


def test_progress_lines() -> None:
    blob = "sha256:" + "ab" * 32
    moving = progress_line(TransferProgress(blob=blob, action="downloading", current=500,
                                            total=1000), _PULL_WORDS)
    assert moving["status"] == "Downloading" and moving["id"] == "ab" * 6
    assert moving["progressDetail"] == {"current": 500, "total": 1000}
    assert moving["progress"].startswith("[" + "=" * 24 + ">") and moving["progress"].endswith(
        "500B/1kB")
    assert progress_line(TransferProgress(blob=blob, action="done"), _PULL_WORDS) == \
        {"status": "Pull complete", "progressDetail": {}, "id": "ab" * 6}
    assert progress_line(TransferProgress(blob=blob, action="exists"), _PUSH_WORDS)["status"] \
        == "Layer already exists"
