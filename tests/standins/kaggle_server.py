"""A stand-in for Kaggle's API on http://localhost:7777, for the real kaggle client.

kagglesdk sends every call to ``http://localhost:7777`` when
``KAGGLE_API_ENVIRONMENT=TEST``. Each call is ``POST /api/v1/<service>/<method>`` with a
JSON body of camelCase fields (HTTP basic auth for KAGGLE_USERNAME/KAGGLE_KEY, or a
bearer token); an error is any status >= 400, with Kaggle's JSON shape
``{"code": 403, "message": "..."}``. What this stand-in answers, read from kagglesdk
0.1.38 and kaggle 2.2.5:

- ``competitions.CompetitionApiService/ListDataFiles`` ``{competitionName, pageSize,
  pageToken}`` -> ``{files: [{ref, name, totalBytes}], nextPageToken}``.
- ``datasets.DatasetApiService/ListDatasetFiles`` ``{ownerSlug, datasetSlug, pageSize,
  pageToken}`` -> ``{datasetFiles: [{ref, name, totalBytes}], nextPageToken}``.
- ``competitions.CompetitionApiService/DownloadDataFile`` ``{competitionName, fileName}``
  and ``datasets.DatasetApiService/DownloadDataset`` ``{ownerSlug, datasetSlug,
  fileName}`` -> ``302`` to a storage URL whose last path part is the file name (the
  client names the local file after it); requests follows it with a GET. The file's
  answer carries Content-Length (the client checks the final size), Last-Modified
  (``%a, %d %b %Y %H:%M:%S GMT``; it decides whether a local copy is current),
  ETag and ``Accept-Ranges: bytes`` (its resume: ``Range: bytes=N-`` with
  ``If-Range: <etag>``, answered ``206`` with Content-Range, or ``200`` for the whole file).

- ``security.OAuthService/IntrospectToken`` ``{token}`` -> ``{active, username}``: how the
  client checks a KAGGLE_API_TOKEN before using it as a bearer token.

Submissions (kaggle's ``competition_submit`` and ``ListSubmissions``):
- ``competitions.CompetitionApiService/StartSubmissionUpload`` ``{competitionName,
  fileName, contentLength, lastModifiedEpochSeconds}`` -> ``{token, createUrl}``; the
  client then PUTs the file's bytes to ``createUrl`` (200 or 201 means done).
- ``competitions.CompetitionApiService/CreateSubmission`` ``{competitionName,
  blobFileTokens, submissionDescription}`` -> ``{message, ref}``; Kaggle refuses with an
  HTTP error and its JSON message (rules not accepted, daily limit, bad file).
- ``competitions.CompetitionApiService/ListSubmissions`` ``{competitionName, group,
  sortBy, pageSize, pageToken, page}`` -> ``{submissions: [{ref, fileName, date,
  description, status, publicScore, privateScore, errorDescription, totalBytes}],
  nextPageToken}``, newest first; status is an enum name (PENDING, COMPLETE, ERROR),
  scores are strings, dates ISO 8601 with a Z.

Kernels and datasets (``kernels_push``, ``kernels_status``, ``kernels_output``,
``dataset_create_new``, ``dataset_create_version``):
- ``kernels.KernelsApiService/SaveKernel`` ``{slug, newTitle, text, language, kernelType,
  isPrivate, enableGpu, enableInternet, datasetDataSources, competitionDataSources,
  machineShape, ...}`` -> ``{ref, url, versionNumber, error, invalidDatasetSources, ...}``.
- ``kernels.KernelsApiService/GetKernelSessionStatus`` ``{userName, kernelSlug}`` ->
  ``{status, failureMessage}`` (an enum name: QUEUED, RUNNING, COMPLETE, ERROR, ...).
- ``kernels.KernelsApiService/ListKernelSessionOutput`` ``{userName, kernelSlug, pageSize,
  pageToken}`` -> ``{files: [{fileName, url}], log, nextPageToken}``; each url a GET.
- ``blobs.BlobApiService/StartBlobUpload`` ``{type, name, contentLength, ...}`` -> ``{token,
  createUrl}`` (then a PUT of the bytes, as for submissions).
- ``datasets.DatasetApiService/GetDatasetStatus`` ``{ownerSlug, datasetSlug}`` ->
  ``{status}``, 404 for a dataset that does not exist;
  ``CreateDataset`` ``{ownerSlug, slug, title, licenseName, isPrivate, files: [{token}]}``
  and ``CreateDatasetVersion`` ``{ownerSlug, datasetSlug, body: {versionNotes, files}}``
  -> ``{ref, url, status, error}``.

Modes: ``files`` (name -> bytes), ``tokens`` (access token -> user name), ``empty`` (the
lists come back empty), ``forbidden`` (downloads and submissions answer 403 as when the
competition's rules are not accepted; listing still works, as on Kaggle),
``refuse_submissions`` (CreateSubmission answers 400 with this message), ``upload_status``
(the PUT's answer), ``scorer`` (bytes of a submission -> (public, private) score strings;
submissions are COMPLETE at once unless ``pending``). Every request is recorded in
``requests``; submissions received are in ``submissions``.

Use: ``point_kaggle_client_here(monkeypatch, tmp_path / "home", user, key)``, then
``with running_stand_in() as server:`` (a background thread, stopped when the block ends).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HOST, PORT = "127.0.0.1", 7777  # loopback only; the port kagglesdk's TEST environment uses
API = "/api/v1/"
STORAGE = "/storage/"  # stands in for the signed cloud-storage URLs Kaggle redirects to
UPLOADS = "/upload/"  # stands in for the resumable-upload URLs Kaggle hands out
MAX_UPLOAD_BYTES = 256 << 20
MAX_BODY_BYTES = 4 << 20  # JSON bodies: small, but SaveKernel carries a whole script
SOCKET_TIMEOUT_S = 10
LAST_MODIFIED = "Mon, 05 Dec 2016 12:00:00 GMT"  # the competition's close, in the client's format
RULES_MESSAGE = "You must accept this competition's rules before you'll be able to download files."


@dataclass
class Recorded:
    """One request as the stand-in saw it (credentials reduced to the user name)."""

    method: str
    path: str
    body: dict
    user: str | None
    headers: dict[str, str]


@dataclass
class KaggleStandIn:
    """What the stand-in serves, and what it was asked."""

    files: dict[str, bytes] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # KAGGLE_API_TOKEN -> user
    empty: bool = False
    forbidden: bool = False
    max_page_size: int = 200
    refuse_submissions: str = ""
    upload_status: int = 200
    pending: bool = False
    scorer: Callable[[bytes], tuple[str, str]] = lambda content: ("0.5", "0.5")
    uploads: dict[str, dict] = field(default_factory=dict)  # token -> {name, content}
    kernels: dict[str, dict] = field(default_factory=dict)  # "user/slug" -> saved request
    kernel_status: str = "COMPLETE"  # what every pushed kernel reports
    kernel_outputs: dict[str, dict[str, bytes]] = field(default_factory=dict)  # kernel -> files
    push_error: str = ""
    known_datasets: set[str] | None = None  # None: every dataset source is valid
    datasets: dict[str, dict] = field(default_factory=dict)  # "owner/slug" -> files, versions
    submissions: list[dict] = field(default_factory=list)  # as ListSubmissions shows them
    requests: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def calls(self, method_name: str) -> list[Recorded]:
        """Recorded API calls to ``method_name`` (e.g. ``DownloadDataFile``)."""
        return [r for r in self.requests if r.path.endswith("/" + method_name)]

    def downloads(self) -> list[Recorded]:
        """Recorded GETs of file contents."""
        return [r for r in self.requests if r.path.startswith(STORAGE)]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, *args):
        pass  # keep pytest's output clean

    # -- API calls -------------------------------------------------------------------

    def do_POST(self):
        body = self._json_body()
        self._record(body)
        if body is None:
            return self._json(400, {"code": 400, "message": "body must be a JSON object"})
        method = self.path.removeprefix(API)
        if method == "security.OAuthService/IntrospectToken":
            user = self.server.state.tokens.get(body.get("token", ""))
            return self._json(200, {"active": True, "username": user} if user else {})
        if self._user() is None:
            return self._json(401, {"code": 401, "message": "Unauthenticated"})
        if method in (
            "competitions.CompetitionApiService/ListDataFiles",
            "datasets.DatasetApiService/ListDatasetFiles",
        ):
            return self._list(body, "datasetFiles" if method.startswith("datasets") else "files")
        if method in (
            "competitions.CompetitionApiService/DownloadDataFile",
            "datasets.DatasetApiService/DownloadDataset",
        ):
            return self._redirect_to_file(body)
        if method == "competitions.CompetitionApiService/StartSubmissionUpload":
            return self._start_upload(body)
        if method == "competitions.CompetitionApiService/CreateSubmission":
            return self._create_submission(body)
        if method == "competitions.CompetitionApiService/ListSubmissions":
            return self._list_submissions(body)
        if method == "blobs.BlobApiService/StartBlobUpload":
            return self._start_upload({"fileName": body.get("name", "")}, check_rules=False)
        if method.startswith("kernels.KernelsApiService/"):
            return self._kernels(method.rsplit("/", 1)[1], body)
        if method.startswith("datasets.DatasetApiService/") and method.rsplit("/", 1)[1] in (
            "GetDatasetStatus",
            "CreateDataset",
            "CreateDatasetVersion",
        ):
            return self._datasets(method.rsplit("/", 1)[1], body)
        return self._json(404, {"code": 404, "message": f"no such method: {self.path}"})

    def _list(self, body: dict, key: str):
        state = self.server.state
        names = [] if state.empty else sorted(state.files)
        size = min(int(body.get("pageSize") or 20), state.max_page_size)
        start = int(body.get("pageToken") or 0)
        page = names[start : start + size]
        answer = {key: [{"ref": n, "name": n, "totalBytes": len(state.files[n])} for n in page]}
        if start + size < len(names):
            answer["nextPageToken"] = str(start + size)
        self._json(200, answer)

    def _redirect_to_file(self, body: dict):
        state = self.server.state
        if state.forbidden:
            return self._json(403, {"code": 403, "message": RULES_MESSAGE})
        name = body.get("fileName", "")
        if state.empty or name not in state.files:
            return self._json(404, {"code": 404, "message": f"file {name!r} not found"})
        self.send_response(302)
        self.send_header("Location", STORAGE + urllib.parse.quote(name) + "?signature=test")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- submissions -----------------------------------------------------------------

    def _start_upload(self, body: dict, check_rules: bool = True):
        state = self.server.state
        if state.forbidden and check_rules:
            return self._json(403, {"code": 403, "message": RULES_MESSAGE})
        token = f"blob-{len(state.uploads) + 1}"
        with state._lock:
            state.uploads[token] = {"name": body.get("fileName", ""), "content": None}
        host = f"http://localhost:{self.server.server_address[1]}"
        self._json(200, {"token": token, "createUrl": f"{host}{UPLOADS}{token}"})

    def do_PUT(self):
        self._record({})
        state = self.server.state
        token = urllib.parse.urlsplit(self.path).path.removeprefix(UPLOADS)
        content = self._raw_body()
        if token not in state.uploads or content is None:
            return self._json(404, {"code": 404, "message": "no such upload"})
        if state.upload_status not in (200, 201):
            return self._json(state.upload_status, {"code": state.upload_status, "message": "no"})
        with state._lock:
            state.uploads[token]["content"] = content
        self._json(200, {})

    def _create_submission(self, body: dict):
        state = self.server.state
        if state.forbidden:
            return self._json(403, {"code": 403, "message": RULES_MESSAGE})
        if state.refuse_submissions:
            return self._json(400, {"code": 400, "message": state.refuse_submissions})
        upload = state.uploads.get(body.get("blobFileTokens", ""), {})
        content = upload.get("content")
        if content is None:
            return self._json(400, {"code": 400, "message": "the file was not uploaded"})
        public, private = ("", "") if state.pending else state.scorer(content)
        ref = 51000 + len(state.submissions) + 1
        with state._lock:
            state.submissions.insert(
                0,
                {
                    "ref": ref,
                    "fileName": upload["name"],
                    "date": "2026-12-02T12:00:00.000Z",
                    "description": body.get("submissionDescription", ""),
                    "status": "PENDING" if state.pending else "COMPLETE",
                    "publicScore": public,
                    "privateScore": private,
                    "errorDescription": "",
                    "totalBytes": len(content),
                    "submittedBy": self._user(),
                },
            )
        competition = body.get("competitionName", "")
        self._json(200, {"message": f"Successfully submitted to {competition}", "ref": ref})

    def _list_submissions(self, body: dict):
        state = self.server.state
        size = min(int(body.get("pageSize") or 20), state.max_page_size)
        start = int(body.get("pageToken") or 0)
        page = state.submissions[start : start + size]
        answer = {"submissions": page}
        if start + size < len(state.submissions):
            answer["nextPageToken"] = str(start + size)
        self._json(200, answer)

    # -- kernels and datasets ----------------------------------------------------------

    def _kernels(self, name: str, body: dict):
        state = self.server.state
        if name == "SaveKernel":
            kernel = body.get("slug", "")
            with state._lock:
                version = state.kernels.get(kernel, {}).get("versionNumber", 0) + 1
                state.kernels[kernel] = body | {"versionNumber": version}
            sources = body.get("datasetDataSources") or []
            known = state.known_datasets
            return self._json(
                200,
                {
                    "ref": f"/code/{kernel}",
                    "url": f"https://www.kaggle.com/code/{kernel}",
                    "versionNumber": version,
                    "error": state.push_error,
                    "invalidDatasetSources": [] if known is None else sorted(set(sources) - known),
                },
            )
        kernel = f"{body.get('userName', '')}/{body.get('kernelSlug', '')}"
        if kernel not in state.kernels:
            return self._json(404, {"code": 404, "message": f"kernel {kernel} not found"})
        if name == "GetKernelSessionStatus":
            failed = state.kernel_status == "ERROR"
            message = "Your notebook tried to allocate more memory than is available." * failed
            return self._json(200, {"status": state.kernel_status, "failureMessage": message})
        if name == "ListKernelSessionOutput":
            outputs = state.kernel_outputs.get(kernel, {})
            names = sorted(outputs)
            size = min(int(body.get("pageSize") or 20), state.max_page_size)
            start = int(body.get("pageToken") or 0)
            host = f"http://localhost:{self.server.server_address[1]}"
            files = [
                {"fileName": n, "url": f"{host}{STORAGE}{urllib.parse.quote(f'{kernel}/{n}')}"}
                for n in names[start : start + size]
            ]
            answer = {"files": files, "log": f"[{kernel}] the kernel's log\n"}
            if start + size < len(names):
                answer["nextPageToken"] = str(start + size)
            return self._json(200, answer)
        return self._json(404, {"code": 404, "message": f"no such method: {name}"})

    def _datasets(self, name: str, body: dict):
        state = self.server.state
        if name == "GetDatasetStatus":
            ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
            if ref not in state.datasets:
                return self._json(404, {"code": 404, "message": f"dataset {ref} not found"})
            return self._json(200, {"status": "READY"})
        if name == "CreateDataset":
            ref, files = f"{body.get('ownerSlug')}/{body.get('slug')}", body.get("files") or []
        else:
            ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
            files = (body.get("body") or {}).get("files") or []
            if ref not in state.datasets:
                return self._json(404, {"code": 404, "message": f"dataset {ref} not found"})
        uploaded = {}
        for entry in files:
            upload = state.uploads.get(entry.get("token", ""), {})
            if upload.get("content") is None:
                return self._json(400, {"code": 400, "message": "a file was not uploaded"})
            uploaded[upload["name"]] = upload["content"]
        with state._lock:
            known = state.datasets.setdefault(ref, {"versions": 0})
            known.update(files=uploaded, versions=known["versions"] + 1)
            if name == "CreateDataset":
                known.update(private=body.get("isPrivate"), title=body.get("title"))
        answer = {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}
        self._json(200, answer | {"error": ""})

    def _raw_body(self) -> bytes | None:
        """A PUT's bytes, sent with a Content-Length or chunked."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if sum(map(len, chunks)) > MAX_UPLOAD_BYTES:
                    return None
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length <= MAX_UPLOAD_BYTES else None

    # -- file contents ---------------------------------------------------------------

    def do_GET(self):
        self._record({})
        path = urllib.parse.urlsplit(self.path).path
        name = urllib.parse.unquote(path.removeprefix(STORAGE))
        state = self.server.state
        content = state.files.get(name)
        if content is None and "/" in name:  # a kernel's output: "<user>/<slug>/<file>"
            owner, slug, file = name.split("/", 2)
            content = state.kernel_outputs.get(f"{owner}/{slug}", {}).get(file)
        if not path.startswith(STORAGE) or content is None:
            return self._json(404, {"code": 404, "message": "not found"})
        etag = etag_of(content)
        start = self._range_start(etag, len(content))
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.send_header("Last-Modified", LAST_MODIFIED)
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(content[start:])

    def _range_start(self, etag: str, size: int) -> int:
        """Where a ``Range: bytes=N-`` asks to start; 0 (whole file) if absent or stale."""
        wanted = self.headers.get("Range", "")
        if not wanted.startswith("bytes=") or not wanted.endswith("-"):
            return 0
        if self.headers.get("If-Range", etag) != etag:
            return 0
        start = int(wanted.removeprefix("bytes=").removesuffix("-"))
        return start if 0 < start < size else 0

    # -- plumbing --------------------------------------------------------------------

    def _json_body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _user(self) -> str | None:
        """The caller's user name from basic auth or a known bearer token, else None."""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return self.server.state.tokens.get(auth.removeprefix("Bearer "))
        if auth.startswith("Basic "):
            try:
                user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
            return user if user and key else None
        return None

    def _record(self, body: dict | None):
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        self.server.state.record(
            Recorded(self.command, self.path.split("?")[0], body or {}, self._user(), headers)
        )

    def _json(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def etag_of(content: bytes) -> str:
    """The ETag the stand-in sends for ``content`` (quoted MD5, as cloud storage does)."""
    return '"' + hashlib.md5(content, usedforsecurity=False).hexdigest() + '"'


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never keeps pytest from exiting
    allow_reuse_address = True

    def __init__(self, state: KaggleStandIn):
        super().__init__((HOST, PORT), _Handler)
        self.state = state


@contextlib.contextmanager
def running_stand_in(state: KaggleStandIn | None = None) -> Iterator[KaggleStandIn]:
    """Serve ``state`` on 127.0.0.1:7777 from a background thread until the block ends."""
    state = state or KaggleStandIn()
    try:
        server = _Server(state)
    except OSError as error:
        raise RuntimeError(f"the Kaggle stand-in cannot listen on {HOST}:{PORT}: {error}") from None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=SOCKET_TIMEOUT_S)


def point_kaggle_client_here(monkeypatch: pytest.MonkeyPatch, home: Path, user: str, key: str):
    """Send the real kaggle client to the stand-in, with dummy credentials and its own HOME.

    Every KAGGLE_* and proxy variable of the caller's environment is dropped, so no real
    credential is ever read. KaggleApi fixes its config path when first imported in a
    process: it is pointed at ``home`` too.
    """
    for name in list(os.environ):
        if name.startswith("KAGGLE_") or name.lower().endswith("_proxy") or name == "VERBOSE":
            monkeypatch.delenv(name)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")  # kagglesdk: http://localhost:7777
    monkeypatch.setenv("KAGGLE_USERNAME", user)
    monkeypatch.setenv("KAGGLE_KEY", key)
    with contextlib.redirect_stdout(io.StringIO()):  # kaggle authenticates when imported
        from kaggle.api.kaggle_api_extended import KaggleApi
    monkeypatch.setattr(KaggleApi, "config_dir", str(home / ".kaggle"))
    monkeypatch.setattr(KaggleApi, "config", str(home / ".kaggle" / "kaggle.json"))
