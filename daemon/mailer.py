"""The daily statistics email over SMTP (stdlib smtplib), with retries that never crash.

smtplib is enough here: one message a day, sent from a housekeeping thread.
"""

import smtplib
import ssl
from email.message import EmailMessage

from loguru import logger
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from daemon.retry import mail_policy
from notifyctl.config import Settings, SmtpSecurity
from notifyctl.services.report import Report, render_html, render_text

SMTP_TIMEOUT = 20.0  # seconds for the connection and each command


class MailError(Exception):
    """The report could not be sent (after the retries)."""


def compose(settings: Settings, report: Report) -> EmailMessage:
    """The email: plain text with an HTML alternative."""
    zone = settings.report_zone
    message = EmailMessage()
    day = report.until.strftime("%Y-%m-%d")
    message["Subject"] = f"notifyctl: {len(report.rows)} mailings in the 24 hours to {day}"
    message["From"] = settings.report_from
    message["To"] = ", ".join(settings.report_to)
    message.set_content(render_text(report, tz=zone))
    message.add_alternative(render_html(report, tz=zone), subtype="html")
    return message


def _send_once(settings: Settings, message: EmailMessage) -> None:
    host, port = settings.smtp_host, settings.smtp_port
    if settings.smtp_security is SmtpSecurity.tls:
        connection = smtplib.SMTP_SSL(
            host, port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context()
        )
    else:
        connection = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
    with connection as smtp:
        if settings.smtp_security is SmtpSecurity.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        smtp.send_message(message)


def send_report(settings: Settings, report: Report, *, wait_scale: float = 1.0) -> None:
    """Send the report to NOTIFY_REPORT_TO; raise MailError when every try failed."""
    if not (settings.smtp_host and settings.report_to):
        raise MailError("set NOTIFY_SMTP_HOST and NOTIFY_REPORT_TO to send the report")
    message = compose(settings, report)
    policy = mail_policy(wait_scale=wait_scale)

    def before_sleep(state) -> None:
        logger.warning(
            "sending the report failed ({error}); try {attempt} of {total} in {pause:.1f}s",
            error=str(state.outcome.exception()),
            attempt=state.attempt_number + 1,
            total=policy.quick_tries,
            pause=state.upcoming_sleep,
        )

    retrying = Retrying(
        retry=retry_if_exception_type((OSError, smtplib.SMTPException)),
        wait=lambda state: policy.quick_pause(state.attempt_number) or 0.0,
        stop=stop_after_attempt(policy.quick_tries),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        retrying(_send_once, settings, message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}") from exc
    logger.info(
        "report sent to {recipients} recipients: {mailings} mailings",
        recipients=len(settings.report_to),
        mailings=len(report.rows),
    )
