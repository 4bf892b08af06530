"""The dashboard: totals (clients, the last day's messages, mailings running), then every
mailing with its state and progress, refreshed while it runs."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from notifyctl.services import dashboard as figures
from notifyctl.services import mailings, stats
from web.deps import SessionDep, SettingsDep
from web.ui.templating import is_htmx, render

router = APIRouter()
PAGE_SIZE = 25


@router.get("/", name="ui_dashboard")
def dashboard(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    offset: int = 0,
    section: str = "",
) -> HTMLResponse:
    cap = settings.frequency_cap
    if is_htmx(request) and section == "totals":
        totals = figures.dashboard_totals(session=session)
        return render(request, "admin/_dashboard_totals.html", {"totals": totals, "cap": cap})
    page = mailings.list_mailings(session=session, limit=PAGE_SIZE, offset=max(offset, 0))
    # Counts of this page's mailings only: the dashboard asks again every 2 s.
    shown = [mailing.id for mailing in page.items]
    by_id = {row.mailing_id: row for row in stats.overall_stats(session=session, mailing_ids=shown)}
    rows = [(mailing, by_id[mailing.id]) for mailing in page.items if mailing.id in by_id]
    if is_htmx(request):
        return render(request, "admin/_dashboard_rows.html", {"rows": rows, "page": page})
    totals = figures.dashboard_totals(session=session)
    return render(
        request,
        "admin/dashboard.html",
        {"rows": rows, "page": page, "totals": totals, "cap": cap},
    )
