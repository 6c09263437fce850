"""Webhook activities: POST each event to each endpoint, and record how that went.

Events are created, and their delivery workflows started, by assistants/webhook_announcer.py.
"""

from __future__ import annotations

import json
import logging

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from assistants.db.pool import Pool as DbPool
from assistants.keyring import Keyring
from assistants.netguard import BlockedAddress, resolve_pinned
from assistants.objects import now
from assistants.payloads import DeliverWebhookInput, DeliverWebhookOutput, WebhookDeliveryFailed
from assistants.settings import Settings
from assistants.webhooks import open_secret, signed_headers

log = logging.getLogger(__name__)
_ERROR_CHARS = 500


def event_body(event: dict) -> bytes:  # type: ignore[type-arg]
    """The exact bytes POSTed and signed (ASCII-only JSON, so no encoding can differ)."""
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


class WebhookActivities:
    def __init__(
        self,
        pool: DbPool,
        http: httpx.AsyncClient,
        allow_private: bool = False,
        keyring: Keyring | None = None,
    ) -> None:
        self.pool, self.http = pool, http
        self.keyring = keyring  # opens the sealed signing secrets (assistants/webhooks.py)
        self.allow_private = allow_private  # see assistants.netguard

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, inp: DeliverWebhookInput) -> DeliverWebhookOutput:
        """One POST. 2xx = delivered; anything else raises, and Temporal retries with backoff."""
        attempt = activity.info().attempt
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT w.url, w.secret, e.data FROM webhooks w JOIN webhook_events e ON e.id = %s WHERE w.id = %s",
                    (inp.event_id, inp.webhook_id),
                )
            ).fetchone()
        if row is None:  # the endpoint was deleted (its deliveries with it): nothing to send
            return DeliverWebhookOutput(status="skipped", attempts=attempt)
        body = event_body(row["data"])
        status: int | None = None
        error: str | None = None
        try:
            resp = await post_pinned(
                self.http,
                row["url"],
                body,
                signed_headers(open_secret(self.keyring, inp.webhook_id, row["secret"]), inp.event_id, body),
                self.allow_private,
            )
            status = resp.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {resp.text[:_ERROR_CHARS]}"
        except BlockedAddress as blocked:
            error = f"refused: {blocked.address} is not a public address (ASSISTANTS_WEBHOOK_ALLOW_PRIVATE)"
            await self._record(inp, attempt, None, error)
            raise ApplicationError(
                f"webhook delivery to {inp.webhook_id} {error}", type="WebhookBlocked", non_retryable=True
            ) from None
        except (httpx.HTTPError, OSError) as exc:  # OSError: the name did not resolve
            error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        await self._record(inp, attempt, status, error)
        if error is not None:
            # Retryable by design: the receiver may be down for hours; the delivery window ends it.
            raise ApplicationError(
                f"webhook delivery to {inp.webhook_id} failed: {error}", type="WebhookDeliveryError"
            )
        return DeliverWebhookOutput(status="delivered", attempts=attempt, http_status=status)

    async def _record(
        self, inp: DeliverWebhookInput, attempt: int, status: int | None, error: str | None
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET attempts = greatest(attempts, %s), last_status = %s, last_error = %s,"
                " status = CASE WHEN %s THEN 'delivered' ELSE status END,"
                " delivered_at = CASE WHEN %s THEN %s ELSE delivered_at END WHERE event_id = %s AND webhook_id = %s",
                (attempt, status, error, error is None, error is None, now(), inp.event_id, inp.webhook_id),
            )

    @activity.defn(name="fail_webhook_delivery")
    async def fail_webhook_delivery(self, inp: WebhookDeliveryFailed) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = coalesce(last_error, %s)"
                " WHERE event_id = %s AND webhook_id = %s AND status = 'pending'",
                (inp.error[:_ERROR_CHARS], inp.event_id, inp.webhook_id),
            )


async def post_pinned(
    http: httpx.AsyncClient, url: str, content: bytes, headers: dict[str, str], allow_private: bool = False
) -> httpx.Response:
    """POST to the address that passed the SSRF check (one DNS lookup), not to the name again: the
    URL's host is replaced by that address, while the Host header and the TLS SNI / certificate
    check keep the name."""
    parsed = httpx.URL(url)
    address = await resolve_pinned(parsed.host, allow_private)
    return await http.post(
        parsed.copy_with(host=address),
        content=content,
        headers={**headers, "Host": parsed.netloc.decode("ascii")},
        extensions={"sni_hostname": parsed.raw_host.decode("ascii")},
    )


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """No retries and no redirects of its own: Temporal retries, and a 3xx is not a delivery.
    Proxy variables are ignored (`trust_env=False`): a proxy would resolve the name itself."""
    return httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        transport=httpx.AsyncHTTPTransport(retries=0),
        headers={"user-agent": "assistants-webhooks/1"},
    )
