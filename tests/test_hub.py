"""The hub, unreachable: one sentence, at once, whatever HTTP library huggingface_hub is built on.

The "hub" is an address on 127.0.0.1 where nothing listens (the connection is refused), with an empty
cache and without HF_HUB_OFFLINE, as on a machine whose network is down. Nothing leaves this machine.
"""

from __future__ import annotations

import socket

import pytest

from conftest import run_cli


@pytest.fixture
def refusing_hub(tmp_path) -> dict[str, str]:
    """Environment for a CLI run whose HF_ENDPOINT refuses connections and whose hub cache is empty."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: connecting to it is refused
    (tmp_path / "hub").mkdir()
    return {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "",
            "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("what", [["--vocoder", "bigvgan:nvidia/bigvgan_base_22khz_80band"],
                                  ["--checkpoint", "someone/some-model"]])
def test_download_from_an_unreachable_hub_is_one_sentence_without_retries(refusing_hub, what):
    done = run_cli("download", *what, env=refusing_hub, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no retry chatter, no traceback
    assert "internal error" not in lines[0] and "is not in the local cache and the hub cannot be reached" in lines[0]
    assert "Connection refused" in lines[0] and "while online, or pass a local folder" in lines[0]


def test_convert_with_a_hub_vocoder_and_no_network_is_one_sentence(refusing_hub, tiny_bundle, speech_clips, tmp_path):
    done = run_cli("convert", "--source", str(speech_clips["source"]), "--target", str(speech_clips["target"]),
                   "--output", str(tmp_path / "out.wav"), "--checkpoint", str(tiny_bundle),
                   "--vocoder", "hifigan:someone/a-hifigan", env=refusing_hub, timeout=120)
    assert done.returncode == 1 and not (tmp_path / "out.wav").exists()
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "vc-app download --vocoder hifigan:someone/a-hifigan" in done.stderr


def test_network_errors_of_every_http_client_are_recognised():
    import httpx
    import requests

    from vc_app.hub import is_network_error

    assert is_network_error(httpx.ConnectError("refused"))
    assert is_network_error(requests.ConnectionError("refused"))
    assert is_network_error(ConnectionRefusedError(111, "refused")) and is_network_error(TimeoutError())
    assert is_network_error(socket.gaierror(-2, "Name or service not known"))
    try:
        import httpx2
    except ImportError:
        pass
    else:
        assert is_network_error(httpx2.ConnectError("refused"))
    assert not is_network_error(ValueError("a bug")) and not is_network_error(FileNotFoundError("x"))
