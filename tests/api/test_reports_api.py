"""``/reports``: the reports built on the served shop, listed newest first and paginated,
each scope's key seeing only its own (another region's report answers 404, like one that
does not exist), the HTML and PDF served as files, and every path input checked: encoded
``../`` and the like get a problem detail, never a file outside the reports."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.reports import WHOLE_BUSINESS, BuiltReport, build_reports
from lakehouse.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api")]

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def built(api: TestClient, served: Settings) -> list[BuiltReport]:
    reports = build_reports(served)
    api.app.state.serving.refresh_now()  # type: ignore[attr-defined]
    return reports


@pytest.fixture(scope="module")
def week(built: list[BuiltReport]) -> str:
    return built[0].week.isoformat()


def _problem(response, status: int) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["type"].startswith("urn:lakehouse:problem:")
    assert "Traceback" not in response.text
    return body  # type: ignore[no-any-return]


def test_the_whole_business_key_lists_every_report(
    api: TestClient, key: dict[str, str], built: list[BuiltReport]
) -> None:
    got = api.get("/reports", params={"limit": 100}, headers=key).json()
    listed = [(r["scope"], r["week"]) for r in got["items"]]
    assert listed[: len(built)] == [(b.scope, b.week.isoformat()) for b in built]
    assert got["total"] == len(listed) and got["next_offset"] is None
    first = got["items"][0]
    assert first["scope"] == WHOLE_BUSINESS and first["narrative_source"] == "template"
    assert first["links"]["pdf"].endswith(f"/reports/all/{first['week']}/report.pdf")
    # pages join up to the whole list, without a gap or a repeat
    pages, offset = [], 0
    while offset is not None:
        page = api.get("/reports", params={"limit": 2, "offset": offset}, headers=key).json()
        pages += [(r["scope"], r["week"]) for r in page["items"]]
        offset = page["next_offset"]
    assert pages == listed
    latest = api.get("/reports", params={"latest": True}, headers=key).json()["items"]
    assert sorted(r["scope"] for r in latest) == sorted({b.scope for b in built})


def test_a_region_key_sees_only_its_region(
    api: TestClient,
    region_key: dict[str, str],
    served: Settings,
    built: list[BuiltReport],
    week: str,
) -> None:
    region = served.superset_region_roles[0]
    others = [b.scope for b in built if b.scope != region]
    assert region in {b.scope for b in built} and WHOLE_BUSINESS in others
    got = api.get("/reports", headers=region_key).json()
    assert {r["scope"] for r in got["items"]} == {region}
    assert api.get(f"/reports/{region}/{week}", headers=region_key).status_code == 200
    html = api.get(f"/reports/{region}/{week}/report.html", headers=region_key)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    for other in others:
        for tail in ("", "/report.html", "/report.pdf"):
            body = _problem(api.get(f"/reports/{other}/{week}{tail}", headers=region_key), 404)
            assert body["detail"] == f"no report of {other} for the week of {week}"
    # the same answer as a report that was never built: nothing tells them apart
    never = _problem(api.get(f"/reports/{region}/2000-01-03", headers=region_key), 404)
    assert never["type"] == "urn:lakehouse:problem:no-report"


def test_a_report_s_metadata_and_files(
    api: TestClient, key: dict[str, str], built: list[BuiltReport], week: str
) -> None:
    whole = next(b for b in built if b.scope == WHOLE_BUSINESS)
    got = api.get(f"/reports/all/{week}", headers=key).json()
    assert got["scope"] == "all" and got["week"] == week
    assert got["week_end"] == date.fromordinal(whole.week.toordinal() + 6).isoformat()
    assert got["narrative_reason"] == "no llm_base_url is set"
    pdf = api.get(got["links"]["pdf"], headers=key)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == (whole.folder / "report.pdf").read_bytes()
    html = api.get(got["links"]["html"], headers=key)
    assert html.text == (whole.folder / "report.html").read_text()


def test_latest_names_each_scope_s_newest_report(
    api: TestClient,
    key: dict[str, str],
    region_key: dict[str, str],
    served: Settings,
    built: list[BuiltReport],
    week: str,
) -> None:
    """``latest`` in place of a week (the viewer Superset links to fetches these files)."""
    region = served.superset_region_roles[0]
    latest = api.get("/reports/all/latest/report.html", headers=key)
    assert latest.text == api.get(f"/reports/all/{week}/report.html", headers=key).text
    assert api.get("/reports/all/latest", headers=key).json()["week"] == week
    assert api.get(f"/reports/{region}/latest", headers=region_key).json()["week"] == week
    _problem(api.get("/reports/all/latest/report.pdf", headers=region_key), 404)
    _problem(api.get("/reports/nowhere/latest", headers=key), 404)


def test_no_key_or_a_wrong_one_is_refused(
    api: TestClient, served: Settings, built: list[BuiltReport], week: str
) -> None:
    wrong = served.api_secret()[:-1] + ("0" if served.api_secret()[-1] != "0" else "1")
    for path in ("/reports", f"/reports/all/{week}", f"/reports/all/{week}/report.pdf"):
        _problem(api.get(path), 401)
        _problem(api.get(path, headers={"X-API-Key": wrong}), 401)
        _problem(api.get(path, headers={"Authorization": f"Bearer {wrong}"}), 401)


@pytest.mark.parametrize(
    "path",
    [
        "/reports/..%2F..%2Fsecrets/{week}/report.html",
        "/reports/%2e%2e/{week}/report.html",
        "/reports/%2E%2E%2F%2E%2E/{week}",
        "/reports/all/..%2F..%2F..%2Fsecrets%2Fapi.key",
        "/reports/all/{week}%2F..%2F..%2F..%2Fsecrets/report.html",
        "/reports/all/{week}/..%2F..%2F..%2Fsecrets%2Fapi.key",
        "/reports/all/{week}/report.html%00.pdf",
        "/reports/all/{week}/report.json",
        "/reports/all/{week}/facts.json",
        "/reports/all/{week}/narrative.json",
        "/reports/all%00/{week}",
        "/reports/ALL/{week}",
        "/reports/%20all/{week}",
        "/reports/all/2025-04-29",
        "/reports/all/2025-02-30",
        "/reports/all/25-04-28",
        "/reports/all/2025-04-28T00:00",
        "/reports/all/latest%2F..%2F..",
        "/reports/all/Latest",
        "/reports/" + "a" * 80 + "/{week}",
    ],
)
def test_a_bad_path_gets_a_problem_and_no_file(
    api: TestClient, key: dict[str, str], served: Settings, week: str, path: str
) -> None:
    response = api.get(path.format(week=week), headers=key)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == PROBLEM
    assert served.api_secret() not in response.text
    assert not response.content.startswith(b"%PDF")


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"offset": -1}, {"latest": "maybe"}]
)
def test_bad_paging_gets_a_problem(
    api: TestClient, key: dict[str, str], built: list[BuiltReport], params: dict[str, str | int]
) -> None:
    _problem(api.get("/reports", params=params, headers=key), 422)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scope=st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(["all", "north", ".."])),
    week=st.one_of(st.text(min_size=1, max_size=14), st.dates().map(date.isoformat)),
    tail=st.sampled_from(["", "/report.html", "/report.pdf", "/report.txt"]),
)
def test_no_report_path_makes_a_server_error(
    api: TestClient,
    region_key: dict[str, str],
    built: list[BuiltReport],
    scope: str,
    week: str,
    tail: str,
) -> None:
    """Whatever the scope and week (percent-encoded whole), a region's key gets its own
    region's report or a problem detail, never a 500 and never another scope's file."""
    response = api.get(
        f"/reports/{quote(scope, safe='')}/{quote(week, safe='')}{tail}", headers=region_key
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM
    else:
        assert scope == "north", (scope, week, tail)
