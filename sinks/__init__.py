"""Alert delivery: SIEM topic, Slack, PagerDuty, webhooks, JSONL."""
