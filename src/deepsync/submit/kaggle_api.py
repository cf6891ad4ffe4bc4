"""Submissions through the real kaggle client: send one, list them all with their scores.

``competition_submit`` uploads the file (StartSubmissionUpload, a PUT of the bytes to the
URL Kaggle gives, CreateSubmission); ``ListSubmissions`` pages through what the account
submitted, with publicScore and privateScore (a closed competition scores late
submissions on both splits). Every failure is a one-line `DeepSyncError`; the file stays
where it is.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from deepsync.errors import DeepSyncError
from deepsync.kaggle_client import authenticated_api, kaggle_errors

PAGE_SIZE = 100
MAX_PAGES = 50  # 5,000 submissions: far beyond any account's, a guard against a loop


@dataclass(frozen=True)
class KaggleSubmission:
    """One submission as Kaggle lists it."""

    ref: str
    file_name: str
    date: str
    description: str
    status: str  # PENDING | COMPLETE | ERROR
    public_score: float | None
    private_score: float | None
    error: str


def submit(path: Path, message: str, competition: str) -> str:
    """Send ``path`` to ``competition``; Kaggle's reference of the new submission."""
    api = authenticated_api(f"the file stays in {path.parent}/ to submit later")
    action = f"submitting {path.name}"
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    retry = "rerun `make submit SUBMIT=1`"
    errors = kaggle_errors(action, _advice(competition, path.parent), retry)
    with errors, quiet[0], quiet[1]:
        response = api.competition_submit(str(path), message, competition, quiet=True)
    ref = getattr(response, "ref", None)
    said = " ".join(str(getattr(response, "message", "") or "").split())
    if not ref:
        raise DeepSyncError(
            f"Kaggle did not take {path.name}: {said or 'no reason given'}; the file stays in "
            f"{path.parent}; rerun `make submit SUBMIT=1` later"
        )
    return str(ref)


def submissions(competition: str) -> list[KaggleSubmission]:
    """Every submission of this account to ``competition``, newest first."""
    from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest

    api = authenticated_api()
    found, token = [], ""
    errors = kaggle_errors(f"listing the submissions to {competition}", _advice(competition))
    with errors, api.build_kaggle_client() as client:
        for _ in range(MAX_PAGES):
            request = ApiListSubmissionsRequest()
            request.competition_name = competition
            request.page_size = PAGE_SIZE
            request.page_token = token
            response = client.competitions.competition_api_client.list_submissions(request)
            found += [_submission(s) for s in response.submissions or []]
            token = response.next_page_token or ""
            if not token or not response.submissions:
                break
    return found


def _submission(item) -> KaggleSubmission:
    status = getattr(item.status, "name", str(item.status or ""))
    return KaggleSubmission(
        ref=str(item.ref or ""),
        file_name=item.file_name or "",
        date=str(item.date or ""),
        description=item.description or "",
        status=status,
        public_score=_number(item.public_score),
        private_score=_number(item.private_score),
        error=item.error_description or "",
    )


def _number(text) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _advice(competition: str, folder: Path | None = None):
    def advice(status: int | None, where: str) -> str | None:
        if status == 403:
            return (
                f"Kaggle refused {where}: accept the rules at "
                f"https://www.kaggle.com/competitions/{competition}/rules (or join the "
                "competition), then rerun"
            )
        if status == 400:
            return f"Kaggle refused {where}; the file stays in {folder or 'submissions'}/"
        if status == 404:
            return f"Kaggle does not know {where}: check data.competition={competition}"
        return None

    return advice
