#!/bin/sh
# render.sh IN OUT: Alertmanager's config IN with the operator's SIFT_ALERT_WEBHOOK_URL in place
# of the placeholder, written to OUT. Alertmanager reads no environment variables itself.
set -eu
url="${SIFT_ALERT_WEBHOOK_URL:?set SIFT_ALERT_WEBHOOK_URL to the webhook that receives alerts (docs/operations.md)}"
case "$url" in
  *\"*|*\\*|*[[:space:]]*)
    echo "SIFT_ALERT_WEBHOOK_URL: no quotes, backslashes or spaces in a URL" >&2; exit 2 ;;
  http://*|https://*) ;;
  *) echo "SIFT_ALERT_WEBHOOK_URL: an http:// or https:// URL, got '$url'" >&2; exit 2 ;;
esac
# sed's replacement: escape the delimiter and & (the matched text).
escaped=$(printf '%s' "$url" | sed 's/[|&]/\\&/g')
sed "s|https://sift-alert-webhook.invalid/|$escaped|" "$1" > "$2"
