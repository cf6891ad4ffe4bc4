"""The real kaggle client, authenticated lazily, with its failures turned into one-line advice.

Every stage that talks to Kaggle (data downloads, submissions, kernels) goes through
`authenticated_api` and `kaggle_errors`. ``import kaggle`` authenticates at import: without
credentials it raises OSError, exits (SystemExit) or prints a help text, depending on the
version, so the client is imported here, inside the functions, never at module level.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

from deepsync.errors import DeepSyncError

CREDENTIALS_ADVICE = (
    "no usable Kaggle credentials: save kaggle.json from https://www.kaggle.com/settings/api "
    "as ~/.kaggle/kaggle.json (chmod 600), or set KAGGLE_USERNAME and KAGGLE_KEY, or a "
    "current KAGGLE_API_TOKEN"
)

# (HTTP status, where) -> advice, or None for the generic text. ``where`` names the action,
# the status and Kaggle's own message: "submitting x.csv: HTTP 403 (You must accept...)".
HttpAdvice = Callable[[int | None, str], str | None]


def authenticated_api(advice: str = ""):
    """A fresh, authenticated KaggleApi (never the one ``import kaggle`` caches).

    ``advice`` is appended to the no-credentials message (what else the user can do).
    """
    missing = CREDENTIALS_ADVICE + (f"; {advice}" if advice else "")
    api = client_class()()
    _check_credentials_file(Path(api.config), advice)
    try:
        # Checking a KAGGLE_API_TOKEN asks the server: its failures are Kaggle errors.
        help_text = contextlib.redirect_stdout(io.StringIO())  # printed when none is found
        with kaggle_errors("checking the Kaggle token"), help_text:
            api.authenticate()
    except (OSError, SystemExit):  # how kaggle <= 1.7 and 1.8-2.2.3 say "no credentials"
        raise DeepSyncError(missing) from None
    values = getattr(api, "config_values", {})
    if not (values.get("token") or (values.get("username") and values.get("key"))):
        raise DeepSyncError(missing)  # a client that only printed its help
    return api


def _check_credentials_file(path: Path, advice: str) -> None:
    """A one-line error for a kaggle.json that is not a JSON object in UTF-8 text.

    The client reads it with its errors swallowed (a UTF-16 file counts as none) or not
    at all (a JSON list ends in a TypeError deep inside it).
    """
    try:
        values = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return
    except OSError as error:
        why = f"cannot be read ({error.strerror})"
    except UnicodeDecodeError:
        why = "is not UTF-8 text"
    except ValueError:
        why = "is not JSON"
    else:
        if isinstance(values, dict):
            return
        why = f"holds a JSON {type(values).__name__}, not an object"
    raise DeepSyncError(
        f"the Kaggle credentials file {path} {why}: it must be a JSON object with your "
        "username and key, as downloaded from https://www.kaggle.com/settings/api"
        + (f"; {advice}" if advice else "")
    )


def client_class():
    """KaggleApi, building its HTTP client the way kagglesdk itself does.

    kaggle 2.2.5 sends every call to api.kaggle.com unless KAGGLE_API_ENVIRONMENT=LOCALHOST,
    while kagglesdk honours every value of it (TEST: a local stand-in): building the
    client with kagglesdk's own environment keeps production the same and lets tests
    drive the real client. Verbose mode stays off: it prints request headers,
    credentials included.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from kaggle.api.kaggle_api_extended import KaggleApi
            from kagglesdk import KaggleClient
            from kagglesdk.kaggle_env import get_env
    except ImportError as error:
        raise DeepSyncError(
            f"the kaggle client is not installed ({error}): run `make setup`"
        ) from error
    except (OSError, SystemExit):
        raise DeepSyncError(CREDENTIALS_ADVICE) from None

    class DeepSyncKaggleApi(KaggleApi):
        def build_kaggle_client(self):
            return KaggleClient(
                env=get_env(),
                verbose=False,
                username=self.config_values.get(self.CONFIG_NAME_USER),
                password=self.config_values.get(self.CONFIG_NAME_KEY),
                api_token=self.config_values.get(self.CONFIG_NAME_TOKEN),
                response_processor=self.get_response_processor(),
            )

    return DeepSyncKaggleApi


@contextlib.contextmanager
def kaggle_errors(action: str, advice: HttpAdvice | None = None, retry: str = "rerun"):
    """Turn the client's HTTP and network failures while ``action`` into one-line advice."""
    import requests

    try:
        yield
    except requests.HTTPError as error:
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        said = server_message(response)
        where = f"{action}: HTTP {status}{f' ({said})' if said else ''}"
        text = (advice(status, where) if advice else None) or _common_advice(status, where, retry)
        raise DeepSyncError(text) from error
    except requests.RequestException as error:
        raise DeepSyncError(
            f"could not reach Kaggle while {action} ({type(error).__name__}): check the "
            f"network connection or proxy, then {retry}"
        ) from error


def _common_advice(status: int | None, where: str, retry: str) -> str:
    if status == 401:
        return (
            f"Kaggle refused the credentials while {where}: replace ~/.kaggle/kaggle.json or "
            "KAGGLE_USERNAME/KAGGLE_KEY (or KAGGLE_API_TOKEN) with a new token from "
            "https://www.kaggle.com/settings/api"
        )
    if status == 429:
        return f"Kaggle is rate-limiting us while {where}: wait a few minutes, then {retry}"
    return f"Kaggle failed while {where}: try again later ({retry})"


def server_message(response) -> str:
    """Kaggle's error message from a JSON body (``{"code": .., "message": ..}``), one line."""
    try:
        message = str(response.json().get("message", ""))
    except Exception:  # no body, not JSON, not a dict: nothing to quote
        return ""
    return " ".join(message.split())[:200]
