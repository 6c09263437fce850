"""WebhookDeliveryWorkflow: one event to one endpoint. Workflow id = `webhook-<event>-<webhook>`
(`assistants.webhooks.delivery_workflow_id`), so announcing an event twice finds the delivery
already under way instead of sending it twice. assistants/webhook_announcer.py starts it.

The POST is an activity that Temporal retries with backoff until the receiver answers 2xx or the
delivery window (days) is spent; then the delivery is recorded as failed.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from assistants.payloads import DeliverWebhookInput, DeliverWebhookOutput, WebhookDeliveryFailed
    from workflows import webhook_options as options
    from workflows.activity_refs import WebhookActivities


@workflow.defn
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, inp: DeliverWebhookInput) -> DeliverWebhookOutput:
        try:
            return await workflow.execute_activity_method(
                WebhookActivities.deliver_webhook,
                inp,
                start_to_close_timeout=options.DELIVER_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=timedelta(seconds=inp.delivery_window_seconds),
                retry_policy=options.DELIVER_RETRY,
            )
        except ActivityError as err:
            # Usually the schedule-to-close timeout; the last attempt's own error is already recorded.
            await workflow.execute_activity_method(
                WebhookActivities.fail_webhook_delivery,
                WebhookDeliveryFailed(
                    event_id=inp.event_id, webhook_id=inp.webhook_id, error=str(err.cause or err)
                ),
                start_to_close_timeout=options.RECORD_TIMEOUT,
                retry_policy=options.RECORD_RETRY,
            )
            return DeliverWebhookOutput(status="failed")
